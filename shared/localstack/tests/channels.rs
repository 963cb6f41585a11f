//! Listing skus on the outside channels (`channels-api`) through the API: who may list, see
//! and take off which sku, and what a listing records.

mod common;

use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

async fn call(s: &TestStack, request: HttpRequest, who: Option<(&str, &str)>) -> HttpResponse {
    let request = match who {
        Some((subject, role)) => request.header("authorization", &bearer(subject, role)),
        None => request,
    };
    s.stack.http(request).await
}

fn put(channel: &str, sku: &str, body: Option<Value>) -> HttpRequest {
    let path = format!("/channels/{channel}/listings/{sku}");
    match body {
        Some(b) => HttpRequest::json("PUT", &path, &b),
        None => HttpRequest {
            method: "PUT".into(),
            path,
            ..Default::default()
        },
    }
}

fn delete(channel: &str, sku: &str) -> HttpRequest {
    HttpRequest {
        method: "DELETE".into(),
        path: format!("/channels/{channel}/listings/{sku}"),
        ..Default::default()
    }
}

const M1: Option<(&str, &str)> = Some(("merchant-1", "merchant"));
const M2: Option<(&str, &str)> = Some(("merchant-2", "merchant"));
const OPERATOR: Option<(&str, &str)> = Some(("operator", "operator"));
const CUSTOMER: Option<(&str, &str)> = Some(("customer-1", "customer"));

async fn skus(s: &TestStack, query: &str, who: Option<(&str, &str)>) -> Vec<String> {
    let r = call(
        s,
        HttpRequest::get(&format!("/channels/agora/listings{query}")),
        who,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["listings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sku"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn only_the_owner_or_an_operator_lists_a_sku_and_another_merchant_cannot_tell_it_exists() {
    let s = stack();
    s.set_stock("MUG-01", 10).await; // merchant-1's
    let status = |r: HttpResponse| r.status;

    assert_eq!(
        status(call(&s, put("agora", "MUG-01", None), None).await),
        401
    );
    assert_eq!(
        status(call(&s, put("agora", "MUG-01", None), CUSTOMER).await),
        403
    );
    let theirs = call(&s, put("agora", "MUG-01", None), M2).await;
    let nobodys = call(&s, put("agora", "NONE-01", None), M2).await;
    assert_eq!((theirs.status, nobodys.status), (404, 404));
    assert_eq!(
        theirs.json()["detail"]
            .as_str()
            .map(|d| d.replace("MUG-01", "X")),
        nobodys.json()["detail"]
            .as_str()
            .map(|d| d.replace("NONE-01", "X")),
        "another merchant's sku reads as one that does not exist"
    );
    assert_eq!(
        status(call(&s, put("agora", "NONE-01", None), OPERATOR).await),
        404,
        "no owner, nothing to list"
    );
    assert_eq!(
        status(call(&s, put("ebay", "MUG-01", None), M1).await),
        404,
        "no such channel"
    );

    let listed = call(&s, put("agora", "MUG-01", None), M1).await;
    assert_eq!(
        listed.status,
        200,
        "{}",
        String::from_utf8_lossy(&listed.body)
    );
    let l = listed.json();
    assert_eq!(
        (
            &l["channel"],
            &l["sku"],
            &l["merchant"],
            &l["listed"],
            &l["buffer"],
            &l["status"],
            &l["version"]
        ),
        (
            &json!("agora"),
            &json!("MUG-01"),
            &json!("merchant-1"),
            &json!(true),
            &json!(0),
            &json!("pending"),
            &json!(1)
        )
    );
    // An operator changes it for its owner.
    let by_operator = call(
        &s,
        put("agora", "MUG-01", Some(json!({ "buffer": 3 }))),
        OPERATOR,
    )
    .await;
    assert_eq!(by_operator.status, 200);
    assert_eq!(
        (
            &by_operator.json()["merchant"],
            &by_operator.json()["buffer"],
            &by_operator.json()["version"]
        ),
        (&json!("merchant-1"), &json!(3), &json!(2))
    );

    // Seeing: a merchant its own, an operator all, nobody else anything.
    assert_eq!(skus(&s, "", M1).await, ["MUG-01"]);
    assert!(skus(&s, "", M2).await.is_empty());
    assert_eq!(skus(&s, "", OPERATOR).await, ["MUG-01"]);
    assert_eq!(skus(&s, "?status=pending", M1).await, ["MUG-01"]);
    assert!(skus(&s, "?status=in_sync", M1).await.is_empty());
    assert_eq!(
        status(call(&s, HttpRequest::get("/channels/agora/listings"), CUSTOMER).await),
        403
    );
    assert_eq!(
        status(call(&s, HttpRequest::get("/channels/agora/listings"), None).await),
        401
    );
    assert_eq!(
        status(
            call(
                &s,
                HttpRequest::get("/channels/agora/listings?status=done"),
                M1
            )
            .await
        ),
        400
    );
    assert!(
        skus(&s, "", Some(("merchant-1", "merchant"))).await.len() == 1
            && call(&s, HttpRequest::get("/channels/souk/listings"), M1)
                .await
                .json()["listings"]
                == json!([]),
        "a listing is per channel"
    );

    // Taking off: the owner (or an operator), once.
    assert_eq!(status(call(&s, delete("agora", "MUG-01"), M2).await), 404);
    assert_eq!(
        status(call(&s, delete("agora", "MUG-01"), CUSTOMER).await),
        403
    );
    let off = call(&s, delete("agora", "MUG-01"), M1).await;
    assert_eq!(off.status, 200);
    assert_eq!(
        (
            &off.json()["listed"],
            &off.json()["buffer"],
            &off.json()["version"]
        ),
        (&json!(false), &json!(3), &json!(3))
    );
    assert_eq!(
        status(call(&s, delete("agora", "MUG-01"), M1).await),
        404,
        "not listed any more"
    );
    assert_eq!(
        status(call(&s, delete("souk", "MUG-01"), M1).await),
        404,
        "never listed there"
    );
}

#[tokio::test]
async fn a_bad_buffer_or_body_is_refused_naming_the_field() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    for (body, status, field) in [
        (json!({ "buffer": -1 }), 422, "buffer"),
        (json!({ "buffer": 1_000_001 }), 422, "buffer"),
        (
            json!({ "buffer": 9_223_372_036_854_775_807_i64 }),
            422,
            "buffer",
        ),
        (json!({ "buffer": "3" }), 400, "buffer"),
        (json!({ "bufer": 3 }), 400, ""),
    ] {
        let r = call(&s, put("souk", "MUG-01", Some(body.clone())), M1).await;
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        if !field.is_empty() {
            assert_eq!(r.json()["field"], field, "{body}");
        }
    }
    assert!(skus(&s, "", M1).await.is_empty(), "nothing was listed");
    let r = call(&s, HttpRequest::get("/channels/agora/listings?limit=0"), M1).await;
    assert_eq!(r.status, 400);
    let r = call(
        &s,
        HttpRequest::get("/channels/agora/listings?cursor=%%%"),
        M1,
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn listings_are_read_a_page_at_a_time() {
    let s = stack();
    for i in 0..5 {
        let sku = format!("PAGE-{i}");
        s.set_stock(&sku, 1).await;
        assert_eq!(call(&s, put("agora", &sku, None), M1).await.status, 200);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let q = if cursor.is_empty() {
            "?limit=2".to_string()
        } else {
            format!("?limit=2&cursor={cursor}")
        };
        let r = call(
            &s,
            HttpRequest::get(&format!("/channels/agora/listings{q}")),
            M1,
        )
        .await;
        let page = r.json();
        seen.extend(
            page["listings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["sku"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["PAGE-0", "PAGE-1", "PAGE-2", "PAGE-3", "PAGE-4"]);
}

#[tokio::test]
async fn the_stack_runs_the_fake_marketplaces_on_its_clock() {
    use bazaar_channels::{ChannelId, Purchase, Wanted};
    use bazaar_fake_marketplaces::{Call, Marketplaces};

    let s = stack();
    let m: &Marketplaces = s
        .stack
        .marketplaces()
        .expect("the stack runs the marketplaces");
    let mug = Wanted {
        sku: "MUG-01".into(),
        active: true,
        title: "Blue mug".into(),
        description: String::new(),
        category: "kitchen".into(),
        images: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity: 2,
    };
    let put = m.handle(
        &Call::new("PUT", "/agora/api/items/MUG-01")
            .bearer(&m.accounts().agora_key)
            .json(&mug.to_agora()),
    );
    assert_eq!(put.status, 200);
    m.buy(
        ChannelId::Agora,
        &Purchase {
            sku: "MUG-01".into(),
            quantity: 2,
        },
    )
    .unwrap();
    assert_eq!(m.listings(ChannelId::Agora)[0].quantity, 0);
    // agora's call reaches channels-webhook through the gateway, signed as agora signs it;
    // agora's partner API is down, so nobody can answer the order, and agora cancels it at
    // its deadline on the stack's clock, and says so.
    m.set_switches(
        ChannelId::Agora,
        bazaar_fake_marketplaces::Switches {
            down: true,
            ..Default::default()
        },
    );
    s.stack.settle().await;
    s.stack.run_for(chrono::Duration::minutes(11)).await;
    assert_eq!(
        m.listings(ChannelId::Agora)[0].quantity,
        2,
        "cancelled at its deadline, its units back"
    );
    let archive = s.stack.table_of("EventArchiverFunction").unwrap();
    let archived: Vec<String> = event_archiver::archived(
        archive.as_ref(),
        &["sale.placed".into(), "sale.cancelled".into()],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|e| e.message_type)
    .collect();
    assert_eq!(
        archived,
        ["sale.placed", "sale.cancelled"],
        "both calls were accepted"
    );
    assert_eq!(m.next_due(), None, "nothing left to send");
}
