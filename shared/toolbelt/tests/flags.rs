//! Feature flags that travel, on the local stack: an operator sets them on a request (the
//! `bazaar-flags` header, refused with 403 for anyone else) or on a user
//! (`PUT /users/{username}/flags`, carried by the user's tokens). A `test-order` flow keeps its
//! flag at every hop, also after a crash and redelivery, a DLQ replay and a timeout; it is
//! charged in the provider's test mode and notifies no customer. `search-ranking-v2` changes
//! the search order for flagged callers only.

#[path = "../../localstack/tests/common.rs"]
mod common;

use std::sync::Arc;

use bazaar_contracts::{Envelope, Flags};
use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use bazaar_platform::faults::FaultPoint;
use bazaar_platform::item::Query;
use bazaar_toolbelt::dlq::{self, Quiet, Selection};
use bazaar_toolbelt::{LocalBackend, Target};
use chrono::Duration;
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

fn target(s: &TestStack) -> Target {
    Target::new(
        s.stack.model().clone(),
        Arc::new(LocalBackend::new(s.stack.engine().clone(), "test")),
    )
}

const PASSWORD: &str = "correct horse battery";

/// A user `username` with `role` and a password, as sign-up and approval would leave it.
async fn user(s: &TestStack, username: &str, role: &str) {
    let identity = s.stack.table_of("IdentityApiFunction").unwrap();
    identity_api::ensure_user(identity.as_ref(), username, PASSWORD, &[role])
        .await
        .unwrap();
}

/// `Authorization` for a real sign-in of `username`.
async fn sign_in(s: &TestStack, username: &str) -> String {
    let r = s
        .stack
        .http(HttpRequest::json(
            "POST",
            "/auth/token",
            &json!({ "username": username, "password": PASSWORD }),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    format!("Bearer {}", r.json()["access_token"].as_str().unwrap())
}

async fn set_flags(s: &TestStack, who: &str, username: &str, flags: Value) -> HttpResponse {
    s.stack
        .http(
            HttpRequest::json(
                "PUT",
                &format!("/users/{username}/flags"),
                &json!({ "flags": flags }),
            )
            .header("authorization", who),
        )
        .await
}

async fn flow(s: &TestStack, order_id: &str) -> Vec<Envelope> {
    let target = target(s);
    let ops = target.backend.table(&target.ops_table().unwrap());
    ops.query_all(Query::partition(format!("CORR#{order_id}")))
        .await
        .unwrap()
        .iter()
        .map(|i| Envelope::from_json(i["envelope"].as_str().unwrap()).unwrap())
        .collect()
}

/// Every message of the order's flow carries `test-order`; returns their types.
async fn all_flagged(s: &TestStack, order_id: &str) -> Vec<String> {
    let envelopes = flow(s, order_id).await;
    assert!(!envelopes.is_empty(), "the flow of {order_id} is archived");
    for e in &envelopes {
        assert!(
            e.flags.test_order(),
            "{} of {order_id} carries test-order: {:?}",
            e.message_type,
            e.flags
        );
    }
    envelopes.into_iter().map(|e| e.message_type).collect()
}

fn order_id(r: &HttpResponse) -> String {
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["order_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn only_an_operator_may_set_flags_on_a_request_and_only_words() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let customer = bearer("customer-1", "customer");
    let operator = bearer("ops-1", "operator");
    let body =
        json!({ "items": [{ "sku": "MUG-01", "quantity": 1 }], "payment": { "token": "tok_ok" } });

    let r = s
        .stack
        .http(
            HttpRequest::json("POST", "/orders", &body)
                .header("authorization", &customer)
                .header("idempotency-key", "k-1")
                .header("bazaar-flags", "test-order"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("bazaar-flags"),
        "says what was refused"
    );
    s.stack.settle().await;
    let orders = s
        .stack
        .http(HttpRequest::get("/orders").header("authorization", &customer))
        .await
        .json();
    assert_eq!(orders["orders"], json!([]), "nothing placed");

    // Nobody's header is ignored either: anonymous callers get 403 on a public route.
    let r = s
        .stack
        .http(HttpRequest::get("/search?q=mug").header("bazaar-flags", "search-ranking-v2"))
        .await;
    assert_eq!(r.status, 403);

    // An operator's header must be words.
    for bad in [
        "bad name",
        "a=b=c",
        "x=",
        "é",
        &(0..17)
            .map(|i| format!("f{i}"))
            .collect::<Vec<_>>()
            .join(","),
    ] {
        let r = s
            .stack
            .http(
                HttpRequest::get("/search?q=mug")
                    .header("authorization", &operator)
                    .header("bazaar-flags", bad),
            )
            .await;
        assert_eq!(
            r.status,
            400,
            "{bad:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["field"], "bazaar-flags");
    }
    let r = s
        .stack
        .http(
            HttpRequest::get("/search?q=mug")
                .header("authorization", &operator)
                .header("bazaar-flags", "search-ranking-v2, test-order=true"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // Setting a user's flags is for operators; names and values are words.
    user(&s, "tester", "customer").await;
    let r = set_flags(&s, &customer, "tester", json!({ "test-order": "true" })).await;
    assert_eq!(r.status, 403);
    let r = set_flags(&s, &operator, "tester", json!({ "test order": "true" })).await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let r = set_flags(
        &s,
        &operator,
        "nobody-here",
        json!({ "test-order": "true" }),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_test_order_keeps_its_flag_through_crashes_a_dlq_replay_and_a_timeout_and_charges_and_notifies_no_one()
 {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let operator = bearer("ops-1", "operator");
    user(&s, "tester", "customer").await;
    let r = set_flags(&s, &operator, "tester", json!({ "test-order": "true" })).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["flags"], json!({ "test-order": "true" }));
    let items = json!([{ "sku": "MUG-01", "quantity": 1 }]);
    // Signed in afresh for each order: the simulated clock runs past a token's 15 minutes.
    let tester = sign_in(&s, "tester").await;

    // A crash after the saga's commit: the message comes again, its copy still flagged.
    s.faults.crash("orders-saga", FaultPoint::AfterCommit, 1);
    let crashed = order_id(
        &s.place_as(&tester, "k-crash", items.clone(), "tok_ok")
            .await,
    );
    s.stack.settle().await;
    assert!(!s.faults.crashed().is_empty(), "the crash happened");
    assert_eq!(s.order(&crashed).await["status"], "confirmed");

    // The provider down until the charge task is dead-lettered; replayed once it is back.
    s.provider_down();
    let tester = sign_in(&s, "tester").await;
    let replayed = order_id(&s.place_as(&tester, "k-dlq", items.clone(), "tok_ok").await);
    s.stack.settle().await;
    let target = target(&s);
    let dead = target.dead_letter_queue("payments-worker").unwrap();
    assert_eq!(dlq::letters(&target, &dead).await.unwrap().len(), 1);
    s.provider()
        .set_switches(bazaar_fake_provider::Switches::default());
    let report = dlq::replay(
        &target,
        &dead,
        &Selection::default(),
        None,
        false,
        300,
        &mut Quiet,
    )
    .await
    .unwrap();
    assert_eq!(report.moved, 1);
    s.stack.settle().await;
    assert_eq!(s.order(&replayed).await["status"], "confirmed");

    // A payment the provider decides in an hour: the order's timeout keeps the flag.
    s.provider().set_callback_delay(Duration::hours(1));
    let tester = sign_in(&s, "tester").await;
    let timed_out = order_id(&s.place_as(&tester, "k-late", items, "tok_async").await);
    s.stack.run_for(Duration::minutes(17)).await;
    s.stack.settle().await;
    let order = s.order(&timed_out).await;
    assert_eq!(order["cancel_reason"], "timeout", "{order}");

    let types = all_flagged(&s, &crashed).await;
    assert!(types.contains(&"order.confirmed".to_string()), "{types:?}");
    let types = all_flagged(&s, &replayed).await;
    assert!(types.contains(&"payment.captured".to_string()), "{types:?}");
    let types = all_flagged(&s, &timed_out).await;
    for t in ["orders.order.expire", "order.cancelled"] {
        assert!(types.contains(&t.to_string()), "{t} in {types:?}");
    }

    // No real charge: the provider recorded every one as a test.
    let ledger = s.provider().ledger();
    assert_eq!(ledger.len(), 3, "{ledger:?}");
    assert!(ledger.iter().all(|c| c.test), "{ledger:?}");

    // No customer notification: marked test, kept apart, sent to no one.
    let notes = s.stack.table_of("NotifierFunction").unwrap();
    assert_eq!(
        notifier::notifications_of(notes.as_ref(), "tester")
            .await
            .unwrap(),
        []
    );
    let tests = notifier::test_notifications_of(notes.as_ref(), "tester")
        .await
        .unwrap();
    assert_eq!(tests.len(), 3, "{tests:?}");
    assert!(tests.iter().all(|n| n.test));

    // The flag is the user's: an unflagged customer's order is real.
    let real = s
        .placed(
            "customer-1",
            "k-real",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    s.stack.settle().await;
    assert_eq!(s.order(&real).await["status"], "confirmed");
    assert!(flow(&s, &real).await.iter().all(|e| e.flags.is_empty()));
    let charge = s
        .provider()
        .ledger()
        .into_iter()
        .find(|c| c.reference == real)
        .unwrap();
    assert!(!charge.test, "a real charge");
    assert_eq!(s.notified("customer-1").await, ["confirmed"]);
}

async fn search(s: &TestStack, who: Option<&str>, flags: Option<&str>) -> Vec<String> {
    let mut request = HttpRequest::get("/search?q=lamp");
    if let Some(who) = who {
        request = request.header("authorization", who);
    }
    if let Some(flags) = flags {
        request = request.header("bazaar-flags", flags);
    }
    let r = s.stack.http(request).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sku"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_ranking_v2_puts_title_matches_first_for_flagged_callers_only() {
    let s = stack();
    for (sku, title, description) in [
        ("DESK-01", "Oak desk", "Has a hook for a lamp."),
        ("LAMP-01", "Reading lamp", "Warm light."),
        ("SHELF-01", "Shelf", "Holds a lamp, or books."),
    ] {
        s.merchant_put(
            &format!("/products/{sku}"),
            json!({ "title": title, "description": description, "category": "home" }),
        )
        .await;
        s.set_price(sku, 1500).await;
        s.merchant_put(&format!("/inventory/{sku}"), json!({ "available": 3 }))
            .await;
    }
    s.stack.settle().await;

    let plain = ["DESK-01", "LAMP-01", "SHELF-01"];
    let ranked = ["LAMP-01", "DESK-01", "SHELF-01"];
    assert_eq!(
        search(&s, None, None).await,
        plain,
        "sku order for everyone"
    );
    assert_eq!(
        search(&s, Some(&bearer("customer-1", "customer")), None).await,
        plain
    );
    let flagged = format!(
        "Bearer {}",
        bazaar_embedded::identity::token_with_flags(
            "customer-2",
            &["customer"],
            Flags::SEARCH_RANKING_V2
        )
    );
    assert_eq!(
        search(&s, Some(&flagged), None).await,
        ranked,
        "words in the title first, for the flagged user"
    );
    assert_eq!(
        search(
            &s,
            Some(&bearer("ops-1", "operator")),
            Some("search-ranking-v2")
        )
        .await,
        ranked,
        "or an operator's flagged request"
    );

    // Paging by relevance returns every result once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/search?q=lamp&limit=1&cursor={c}"),
            None => "/search?q=lamp&limit=1".into(),
        };
        let r = s
            .stack
            .http(HttpRequest::get(&path).header("authorization", &flagged))
            .await
            .json();
        seen.extend(
            r["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["sku"].as_str().unwrap().to_string()),
        );
        match r["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ranked);
}
