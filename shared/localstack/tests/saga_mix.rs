//! The whole saga under every fault at once, on the simulated clock: by default 2,000
//! accepted orders from 50 customers for five skus, paid with approving, declining and
//! asynchronous cards, while
//!
//! - every message is delivered one to five times, in a random order;
//! - consumers crash at random when a message is received, before their commit, after it
//!   (before publishing) and after publishing (before the acknowledgement); HTTP functions
//!   crash after their commit (before publishing), so the caller gets a 500 for a request
//!   that took effect;
//! - every function's table throttles and its transactions conflict, its publishes fail
//!   (some half-way through a batch), and the clocks disagree by up to two seconds;
//! - clients retry a 5xx with the same idempotency key, as the API asks them to, and the
//!   provider retries a callback that was not accepted;
//! - the payment provider is down for a while, sometimes slow or failing at random, sometimes
//!   deciding only after the order's deadline, and answers some callbacks twice.
//!
//! Customers cancel some of their orders (`POST /orders/{id}/cancel`) at any point before,
//! during or after confirmation, and now and then try to cancel someone else's (404).
//!
//! The skus belong to two merchants, so that many orders have a fulfilment for each; now and
//! then a new customer signs up, signs in and orders with its own token. Then the merchants
//! ship most confirmed orders (retrying a 5xx with the same tracking code) with parcels of the
//! fake carrier, which repeats and reorders its callbacks; some orders go back to their
//! merchants whole, some one share only. Every shipped order ends delivered or returned, a
//! returned one refunded in full, a partly returned one its returned share, and the units are
//! on sale again.
//!
//! Meanwhile an attacker who holds the webhook secret sends signed callbacks that do not match
//! any charge (a made-up payment id, one cent instead of the total, another order's payment,
//! a failure the provider never reported), and two merchants race to claim the same skus by
//! describing, pricing and stocking them.
//!
//! Whatever happens, the history checker finds nothing lost, duplicated or unexpected, and the
//! books balance: every order ends confirmed or cancelled; for each sku, initial stock =
//! committed + available; no order is charged twice; a cancelled order that was charged is
//! refunded; no order is confirmed, cancelled or refunded by a forged callback (a confirmed
//! order kept its money at the provider, a cancelled one kept none); an order a customer
//! cancelled ends cancelled (reason `customer`, unless it had been cancelled already for
//! another); every order is notified once per step (confirmed, cancelled), ending with its
//! outcome; each contested sku has one owner and only its truths; the only
//! dead letters are the forged callbacks, parked as `payment-mismatch`.
//!
//! Seeded: `BAZAAR_CAMPAIGN_SEED` replays a run, `BAZAAR_CAMPAIGN_ORDERS` sets the count
//! (`scripts/soak` runs 50,000).

mod common;

use std::collections::BTreeMap;

use bazaar_fake_provider::Switches;
use std::sync::Arc;

use bazaar_localstack::chaos::Chaos;
use bazaar_localstack::faults::RandomFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::history::{Recorder, check};
use bazaar_platform::faults::FaultPoint;
use chrono::Duration;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Stock per 1,000 orders: POSTER-01 sells out (orders for it are then refused at the door,
/// or cancelled out of stock when several race for the last units).
/// The merchant of `STOCK[i]`: two merchants, so that an order of two lines often has a
/// fulfilment for each.
fn merchant_of(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "merchant-1"
    } else {
        "merchant-2"
    }
}

const STOCK: [(&str, i64); 5] = [
    ("MUG-01", 700),
    ("TEE-01", 600),
    ("POSTER-01", 60),
    ("LAMP-01", 500),
    ("BAG-01", 500),
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn thousands_of_orders_under_every_fault_lose_nothing_and_balance_the_books() {
    let orders = env_or("BAZAAR_CAMPAIGN_ORDERS", 2_000) as usize;
    let seed = env_or("BAZAAR_CAMPAIGN_SEED", 2026);
    let scale = orders.div_ceil(1000) as i64;
    let stock: Vec<(&str, i64)> = STOCK.iter().map(|(k, n)| (*k, n * scale)).collect();
    let started = std::time::Instant::now();

    // Every function gets the crashes and the dependency faults; the setup below runs
    // with them disarmed, as it must not fail.
    let functions = common::functions();
    let consumers = common::consumers();
    let recorder = Arc::new(Recorder::new());
    let crashes = Arc::new(RandomFaults::new(
        seed,
        0.01,
        &[
            FaultPoint::Received,
            FaultPoint::BeforeCommit,
            FaultPoint::AfterCommit,
            FaultPoint::AfterPublish,
        ],
        &functions,
    ));
    let chaos = Chaos {
        throttle: 0.01,
        conflict: 0.01,
        publish_failure: 0.01,
        max_skew: Duration::seconds(2),
        functions: functions.clone(),
        ..Chaos::none(seed)
    };
    let injected = chaos.injected.clone();
    // Disarmed while the stack is built and seeded: that must not fail.
    crashes.arm(false);
    injected.arm(false);
    let s = common::stack_with(|o| {
        o.faults = crashes.clone();
        o.history = Some(recorder.clone());
        o.chaos = Some(chaos);
    });
    s.stack.engine().record_sends();
    crashes.arm(false);
    injected.arm(false);
    for (i, (sku, n)) in stock.iter().enumerate() {
        s.set_stock_as(merchant_of(i), sku, *n).await;
    }
    crashes.arm(true);
    injected.arm(true);
    let rivals = rivals_claim_skus(&s, seed).await;
    s.stack.engine().set_chaos_at_most(4, seed);
    s.provider().chaos(Some((seed, 0.08, 0.08)));
    s.provider().set_duplicate_callbacks(Some(7));
    let mut rng = SmallRng::seed_from_u64(seed);

    let mut placed = Vec::new();
    let mut forged: Vec<String> = Vec::new();
    // Orders whose customer's cancellation was accepted (200).
    let mut cancelled_by_customer = std::collections::BTreeSet::new();
    let mut bola_refused = 0;
    let mut refused = 0;
    let mut retried = 0;
    // Until `orders` orders are accepted (orders for a sold-out sku are refused at the door).
    let mut i = 0;
    let at = |tenths: usize| orders * tenths / 10;
    while placed.len() < orders {
        i += 1;
        // A two-minute outage early on, and a stretch where asynchronous payments are decided
        // only after the orders' 15-minute deadline.
        if i == at(3) {
            s.provider().set_switches(Switches {
                down: true,
                ..Switches::default()
            });
        } else if i == at(3) + 60 {
            s.provider().set_switches(Switches::default());
        } else if i == at(6) {
            s.provider().set_callback_delay(Duration::minutes(20));
        } else if i == at(7) {
            s.provider()
                .set_callback_delay(bazaar_fake_provider::DEFAULT_CALLBACK_DELAY);
        }
        let token = match rng.random_range(0..100) {
            0..55 => "tok_ok",
            55..70 => "tok_declined",
            70..95 => "tok_async",
            _ => "tok_async_declined",
        };
        // A rush on the scarce poster: orders placed at once, more than its stock, so that
        // some are accepted at the door and then cancelled out of stock.
        let rush = (20..80).contains(&i);
        let first = if rush {
            2
        } else {
            rng.random_range(0..STOCK.len())
        };
        let quantity = if rush { 3 } else { rng.random_range(1..=3) };
        let mut items = vec![json!({ "sku": STOCK[first].0, "quantity": quantity })];
        if rng.random_bool(0.3) {
            let second = (first + 1 + rng.random_range(0..STOCK.len() - 1)) % STOCK.len();
            items.push(json!({ "sku": STOCK[second].0, "quantity": 1 }));
        }
        // Now and then a new customer signs up, signs in and orders with its own token.
        let (customer, authorization) = if i % 41 == 0 {
            let shopper = format!("shopper-{i}");
            let from = format!("10.9.{}.{}", i / 250, i % 250);
            let token = sign_up(&s, &shopper, from).await;
            (shopper, format!("Bearer {token}"))
        } else {
            let customer = format!("customer-{}", i % 50);
            let authorization = common::bearer(&customer, "customer");
            (customer, authorization)
        };
        // A 5xx is retried with the same idempotency key: the order is placed once, whether
        // the failed attempt took effect or not.
        let mut attempts = 0;
        let r = loop {
            attempts += 1;
            let r = s
                .place_as(&authorization, &format!("order-{i}"), json!(items), token)
                .await;
            // A key still held by an attempt that died before releasing it: retry once the
            // lock lapses, as its Retry-After says.
            let held = r.status == 409
                && r.json()["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("still in progress"));
            if held {
                let wait = r
                    .header("retry-after")
                    .and_then(|v| v.parse::<i64>().ok())
                    .expect("a held key says when to retry");
                s.stack.run_for(Duration::seconds(wait)).await;
            } else if r.status < 500 {
                break r;
            }
            assert!(
                attempts < 20,
                "order {i}: {} after {attempts} attempts",
                r.status
            );
            retried += 1;
        };
        match r.status {
            202 => placed.push((r.json()["order_id"].as_str().unwrap().to_string(), customer)),
            // A sold-out product is withdrawn: orders refuse it at the door.
            422 => {
                assert!(
                    r.json()["detail"]
                        .as_str()
                        .unwrap()
                        .contains("not for sale"),
                    "{}",
                    r.json()
                );
                refused += 1;
            }
            other => panic!("order {i}: {other} {}", String::from_utf8_lossy(&r.body)),
        }
        if !rush {
            s.stack.run_for(Duration::seconds(2)).await;
        }
        if i % 37 == 0 && !placed.is_empty() {
            forged.push(forge_callback(&s, &placed, forged.len(), &mut rng).await);
        }
        if i % 13 == 0 && !placed.is_empty() {
            let (id, customer) = placed[rng.random_range(0..placed.len())].clone();
            match cancel_order(&s, &id, &customer).await {
                200 => {
                    cancelled_by_customer.insert(id.clone());
                }
                409 => {} // cancelled already, for another reason
                other => panic!("cancelling {id}: {other}"),
            }
            // Someone else's order: it does not exist for them.
            let other = format!("customer-{}", (i + 1) % 50);
            if other != customer {
                assert_eq!(cancel_order(&s, &id, &other).await, 404);
                bola_refused += 1;
            }
        }
    }
    // Long enough for every deadline, every late decision and every retry (the outbox
    // sweeper, on its schedule, publishes what a crashed HTTP function committed).
    s.stack.run_for(Duration::minutes(90)).await;
    s.stack.settle().await;
    // The merchant ships, the carrier delivers (or brings back), under the same faults.
    let carried = ship_and_carry(&s, seed, &mut rng).await;
    let (shipped, sent_back) = (carried.shipped, carried.sent_back);
    // The checks below read through the API, which must not fail now.
    crashes.arm(false);
    injected.arm(false);

    // Every order is final.
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut status_of = BTreeMap::new();
    let mut totals: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for (id, _) in &placed {
        let order = s.order(id).await;
        let status = order["status"].as_str().unwrap().to_string();
        let key = match order["cancel_reason"].as_str() {
            Some(r) => format!("{status}:{r}"),
            None => status.clone(),
        };
        assert!(
            matches!(
                status.as_str(),
                "confirmed" | "cancelled" | "delivered" | "returned"
            ),
            "order {id} ended {key}"
        );
        *outcomes.entry(key).or_default() += 1;
        status_of.insert(id.clone(), status);
        totals.insert(id.clone(), order["total"]["amount_cents"].as_i64());
    }
    println!(
        "outcomes: {outcomes:?}, refused as sold out: {refused}, cancelled by their customer: {} \
         (another customer refused {bola_refused} times)",
        cancelled_by_customer.len()
    );
    assert_eq!(
        status_of
            .values()
            .filter(|s| *s == "delivered" || *s == "returned")
            .count(),
        shipped,
        "every shipped order reached its end"
    );
    assert_eq!(
        status_of.values().filter(|s| *s == "returned").count(),
        sent_back,
        "every order sent back is returned"
    );
    for id in &cancelled_by_customer {
        assert_eq!(
            status_of[id], "cancelled",
            "order {id} was cancelled by its customer"
        );
    }
    // The mix is sized so that a thousand orders or more reach every outcome (fewer may miss
    // the late-decision stretch that times orders out).
    let expected: &[&str] = if orders >= 1000 {
        &[
            "confirmed",
            "cancelled:out_of_stock",
            "cancelled:payment_declined",
            "cancelled:timeout",
            "cancelled:customer",
        ]
    } else {
        &["confirmed"]
    };
    for outcome in expected {
        assert!(
            outcomes.get(*outcome).copied().unwrap_or(0) > 0,
            "the mix reaches {outcome}: {outcomes:?}"
        );
    }

    // Stock: nothing leaked, nothing oversold, nothing still held.
    for (sku, initial) in stock.iter().copied() {
        let (available, reserved) = s.stock(sku).await;
        let committed = s.committed(sku).await;
        assert_eq!(reserved, 0, "{sku}: nothing is held by a final order");
        assert_eq!(
            available + committed,
            initial,
            "{sku}: initial = committed + available"
        );
        assert!(available >= 0 && committed >= 0, "{sku}");
    }

    // Money: one charge per order at most; a cancelled order keeps no money.
    let ledger = s.provider().ledger();
    let mut charges: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for entry in &ledger {
        charges
            .entry(entry.reference.as_str())
            .or_default()
            .push(entry);
    }
    let mut refunded = 0;
    for (id, status) in &status_of {
        let entries = charges.get(id.as_str()).cloned().unwrap_or_default();
        assert!(
            entries.len() <= 1,
            "order {id} charged {} times",
            entries.len()
        );
        let kept = entries
            .iter()
            .any(|e| e.status == "succeeded" && !e.refunded);
        for e in &entries {
            assert_eq!(
                e.amount_cents,
                totals[id.as_str()],
                "order {id} is charged its total"
            );
        }
        match status.as_str() {
            "confirmed" => assert!(kept, "{status} order {id} was paid for"),
            "delivered" => {
                assert!(kept, "{status} order {id} was paid for");
                let expected = carried.refunds.get(id.as_str()).copied().unwrap_or(0);
                assert!(
                    entries.iter().all(|e| e.amount_refunded == expected),
                    "delivered order {id}: its returned share ({expected}) refunded: {entries:?}"
                );
            }
            "returned" => {
                assert!(
                    entries
                        .iter()
                        .all(|e| e.refunded && Some(e.amount_refunded) == e.amount_cents),
                    "returned order {id} is refunded in full: {entries:?}"
                );
            }
            _ => {
                assert!(!kept, "cancelled order {id} keeps no money");
                refunded += entries.iter().filter(|e| e.refunded).count();
            }
        }
    }
    println!(
        "charges: {}, refunds of cancelled orders: {refunded}",
        ledger.len()
    );
    assert!(refunded > 0 || orders < 1000, "late captures were refunded");

    // One notification per step of each order (confirmed, cancelled), ending with its outcome.
    let notes = s.stack.table_of("NotifierFunction").unwrap();
    let mut notified: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let customers: std::collections::BTreeSet<&String> = placed.iter().map(|(_, c)| c).collect();
    assert!(
        customers.iter().any(|c| c.starts_with("shopper-")),
        "customers who signed up ordered too"
    );
    for customer in customers {
        for n in notifier::notifications_of(notes.as_ref(), customer)
            .await
            .unwrap()
        {
            let steps = notified.entry(n.order_id.clone()).or_default();
            let outcome = n.outcome.as_str().to_string();
            assert!(
                !steps.contains(&outcome),
                "order {} notified {outcome} twice",
                n.order_id
            );
            steps.push(outcome);
        }
    }
    assert_eq!(
        notified.len(),
        placed.len(),
        "every final order is notified"
    );
    for (id, status) in &status_of {
        let steps = &notified[id];
        assert!(
            steps.contains(status),
            "order {id} ({status}): told {steps:?}"
        );
        match status.as_str() {
            // Shipped, then its end ("shipped" is skipped when the end overtook it).
            "delivered" | "returned" => {
                assert!(
                    steps.iter().any(|s| s == "confirmed"),
                    "shipped order {id} was confirmed first: {steps:?}"
                );
                let allowed = ["confirmed", "shipped", status.as_str()];
                assert!(
                    steps.iter().all(|s| allowed.contains(&s.as_str())),
                    "order {id} ({status}): told {steps:?}"
                );
            }
            _ if steps.len() > 1 => assert!(
                cancelled_by_customer.contains(id) && status == "cancelled",
                "only an order its customer cancelled after confirmation is told twice: {id} {steps:?}"
            ),
            _ => {}
        }
    }

    for dlq in [
        "OrdersSagaDLQ",
        "InventoryWorkerDLQ",
        "NotifierDLQ",
        "FulfilmentWorkerDLQ",
    ] {
        let letters = s.stack.engine().peek(&s.queue(dlq)).unwrap();
        assert!(
            letters.is_empty(),
            "{dlq} stays empty: {:?}",
            letters
                .iter()
                .map(|l| (
                    l.attributes.get("bazaar.reason").map(|a| a.value.clone()),
                    l.attributes.get("bazaar.detail").map(|a| a.value.clone()),
                    l.body.chars().take(400).collect::<String>(),
                ))
                .collect::<Vec<_>>()
        );
    }
    // The payments worker parked the forged callbacks (each at least once: a parked message
    // keeps no inbox record, so each of its 1 to 5 deliveries is parked), and nothing else.
    let mut parked_forgeries = std::collections::BTreeSet::new();
    for letter in s
        .stack
        .engine()
        .peek(&s.queue("PaymentsWorkerDLQ"))
        .unwrap()
    {
        assert_eq!(
            letter.attributes["bazaar.reason"].value, "payment-mismatch",
            "{}",
            letter.body
        );
        let event = bazaar_contracts::Envelope::from_json(&letter.body).unwrap();
        let provider_event = event.data.value()["provider_event"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(forged.contains(&provider_event), "{}", letter.body);
        parked_forgeries.insert(provider_event);
    }
    assert_eq!(
        parked_forgeries.len(),
        forged.len(),
        "every forged callback is parked"
    );
    println!(
        "forged callbacks: {}, all parked as payment-mismatch",
        forged.len()
    );
    rivals_own_their_skus(&s, &rivals).await;
    // The search index equals the truths: a listing for exactly the skus with stock left,
    // at their price (every sku here has master data and a price of 10.00).
    let index =
        search_indexer::entries(s.stack.table_of("SearchIndexerFunction").unwrap().as_ref())
            .await
            .unwrap();
    let mut listed = std::collections::BTreeSet::new();
    for entry in &index {
        if let Some(listing) = &entry.listing {
            assert_eq!(listing.price.amount_cents, 1000, "{}", entry.sku);
            listed.insert(entry.sku.to_string());
        }
    }
    let mut in_stock = std::collections::BTreeSet::new();
    for sku in stock
        .iter()
        .map(|(sku, _)| *sku)
        .chain(rivals.keys().map(String::as_str))
    {
        if s.stock(sku).await.0 > 0 {
            in_stock.insert(sku.to_string());
        }
    }
    assert_eq!(
        listed, in_stock,
        "the index lists exactly the skus in stock"
    );

    // The history: every message owed to a consumer processed or parked, no effect twice,
    // every committed send published, nothing unasked.
    let report = check(&s.stack, &recorder);
    assert!(report.is_clean(), "{report:#?}");
    let (throttled, conflicts, publish_failures) = injected.counts();
    assert!(crashes.crashes() > 0 && throttled > 0 && conflicts > 0 && publish_failures > 0);
    let http_crashes = crashes
        .crashed()
        .iter()
        .filter(|(_, function, _)| !consumers.contains(function))
        .count();
    assert!(
        http_crashes > 0 && retried > 0,
        "HTTP functions crashed ({http_crashes}) and clients retried ({retried})"
    );
    println!(
        "{orders} orders (seed {seed}) in {:.0?}: {} crashes ({http_crashes} in HTTP functions), \
         {retried} client retries, {throttled} throttled calls, {conflicts} conflicts, \
         {publish_failures} failed publishes; {report:?}",
        started.elapsed(),
        crashes.crashes()
    );
}

/// `customer` asks to cancel order `id`; a 5xx or a conflict with a concurrent change is
/// retried, as a client would. Returns the final status code.
async fn cancel_order(s: &common::TestStack, id: &str, customer: &str) -> u16 {
    for _ in 0..20 {
        let r = s
            .stack
            .http(
                bazaar_localstack::gateway::HttpRequest::json(
                    "POST",
                    &format!("/orders/{id}/cancel"),
                    &json!({}),
                )
                .header("authorization", &common::bearer(customer, "customer")),
            )
            .await;
        let changed_meanwhile = r.status == 409
            && r.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("changed while it ran"));
        if r.status < 500 && !changed_meanwhile {
            return r.status;
        }
    }
    panic!("cancelling {id} as {customer} kept failing");
}

/// A signed callback from someone who holds the webhook secret, about a placed order: a
/// made-up payment, one cent, another order's payment, or a failure the provider never
/// reported. Returns its provider event id. A 5xx is retried, as the provider would.
async fn forge_callback(
    s: &common::TestStack,
    placed: &[(String, String)],
    n: usize,
    rng: &mut SmallRng,
) -> String {
    let (order, _) = &placed[rng.random_range(0..placed.len())];
    let ledger = s.provider().ledger();
    let own = ledger.iter().find(|e| e.reference == *order);
    let other = ledger
        .iter()
        .find(|e| e.reference != *order && e.status == "succeeded");
    let id = format!("evt_forged_{n}");
    let made_up = format!("pay_forged_{n}");
    let (kind, payment, cents) = match (n % 4, own, other) {
        // Another order's capture, with its amount: to confirm this order, or to have the
        // other payment refunded when this one is cancelled.
        (0, _, Some(o)) => ("payment.succeeded", o.payment_id.clone(), o.amount_cents),
        // The order's own payment for one cent.
        (1, Some(e), _) => ("payment.succeeded", e.payment_id.clone(), Some(1)),
        // A failure of another order's payment, naming this order.
        (2, _, Some(o)) => ("payment.failed", o.payment_id.clone(), o.amount_cents),
        _ => ("payment.succeeded", made_up, Some(1)),
    };
    let body = json!({
        "id": id, "type": kind, "payment_id": payment, "order_id": order,
        "amount_cents": cents.unwrap_or(1), "currency": "EUR", "reason": "forged",
    })
    .to_string();
    let secret = bazaar_localstack::StackModel::local_secret_value("PaymentsWebhookSecret");
    for _ in 0..20 {
        let now = s.stack.engine().clock().now().timestamp();
        let request = bazaar_localstack::gateway::HttpRequest {
            method: "POST".into(),
            path: "/webhooks/payments".into(),
            body: body.clone().into_bytes(),
            ..Default::default()
        }
        .header("content-type", "application/json")
        .header(
            payments_webhook::SIGNATURE_HEADER,
            &bazaar_platform::webhook::sign(secret.as_bytes(), now, body.as_bytes()),
        );
        let r = s.stack.http(request).await;
        if r.status < 500 {
            assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
            return id;
        }
    }
    panic!("the forged callback {id} was never accepted");
}

/// Two merchants race to claim ten skus: each tries to describe, price and stock each of
/// them, in a random interleaving, under the campaign's faults (a 5xx is retried). Returns
/// each sku's owner: the merchant whose first call succeeded.
async fn rivals_claim_skus(s: &common::TestStack, seed: u64) -> BTreeMap<String, &'static str> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x0123);
    let mut owners = BTreeMap::new();
    for i in 0..10 {
        let sku = format!("RIVAL-{i:02}");
        let mut steps: Vec<(&'static str, u8)> = ["merchant-1", "merchant-2"]
            .iter()
            .flat_map(|m| (0..3).map(move |k| (*m, k)))
            .collect();
        for k in (1..steps.len()).rev() {
            steps.swap(k, rng.random_range(0..=k));
        }
        for (merchant, kind) in steps {
            let (path, body) = match kind {
                0 => (
                    format!("/products/{sku}"),
                    json!({ "title": format!("Rival {i} of {merchant}"), "category": "test" }),
                ),
                1 => (
                    format!("/products/{sku}/price"),
                    json!({ "amount_cents": 1000, "currency": "EUR" }),
                ),
                _ => (format!("/inventory/{sku}"), json!({ "available": 5 })),
            };
            let status = loop {
                let r = s
                    .stack
                    .http(
                        bazaar_localstack::gateway::HttpRequest::json("PUT", &path, &body)
                            .header("authorization", &common::bearer(merchant, "merchant")),
                    )
                    .await;
                if r.status < 500 {
                    break r.status;
                }
            };
            match status {
                200 => assert_eq!(
                    *owners.entry(sku.clone()).or_insert(merchant),
                    merchant,
                    "{sku}: only its owner changes it"
                ),
                404 => assert_ne!(
                    owners.get(&sku),
                    Some(&merchant),
                    "{sku}: the owner refused"
                ),
                other => panic!("{sku}: {merchant} got {other}"),
            }
        }
        assert!(owners.contains_key(&sku), "{sku} has an owner");
        s.stack.run_for(Duration::seconds(2)).await;
    }
    owners
}

/// Each contested sku shows its owner, holds the stock its owner set, and is listed with
/// the owner's truths only.
async fn rivals_own_their_skus(s: &common::TestStack, owners: &BTreeMap<String, &'static str>) {
    for (sku, owner) in owners {
        let shown = s
            .stack
            .http(bazaar_localstack::gateway::HttpRequest::get(&format!(
                "/products/{sku}"
            )))
            .await
            .json();
        assert_eq!(shown["merchant"], *owner, "{sku}: {shown}");
        assert_eq!(
            shown["master"]["title"]
                .as_str()
                .map(|t| t.ends_with(owner)),
            Some(true),
            "{sku}: described by its owner only: {shown}"
        );
        let table = s.stack.table_of("InventoryWorkerFunction").unwrap();
        let stock = table
            .get(&bazaar_platform::item::Key::new(
                format!("SKU#{sku}"),
                "STOCK",
            ))
            .await
            .unwrap()
            .expect("stocked by its owner");
        assert_eq!(stock["owner"], *owner, "{sku}: stock set by its owner only");
        assert_eq!(shown["published"], true, "{sku}: {shown}");
    }
}

/// Signs `name` up (a new customer, from the address `from`) and in; a 5xx is retried, and
/// a retried sign-up that had taken effect answers 409. Returns the access token.
async fn sign_up(s: &common::TestStack, name: &str, from: String) -> String {
    let body = json!({ "username": name, "email": format!("{name}@example.com"), "password": "a long enough passphrase" });
    let mut retried = false;
    loop {
        let mut request = HttpRequest::json("POST", "/users", &body);
        request.source_ip = Some(from.clone());
        let r = s.stack.http(request).await;
        match r.status {
            201 => break,
            409 if retried => break,
            status if status >= 500 => retried = true,
            other => panic!(
                "signing {name} up: {other} {}",
                String::from_utf8_lossy(&r.body)
            ),
        }
    }
    loop {
        let mut request = HttpRequest::json(
            "POST",
            "/auth/token",
            &json!({ "username": name, "password": "a long enough passphrase" }),
        );
        request.source_ip = Some(from.clone());
        let r = s.stack.http(request).await;
        if r.status == 200 {
            return r.json()["access_token"].as_str().unwrap().to_string();
        }
        assert!(
            r.status >= 500,
            "{name} signs in: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// What the shipping phase did.
struct Carried {
    /// Orders shipped whole.
    shipped: usize,
    /// Orders every share of which was sent back.
    sent_back: usize,
    /// Per order with a share sent back: what that share is worth (every sku costs 10.00).
    refunds: BTreeMap<String, i64>,
}

/// Each merchant's open fulfilments, by order.
async fn open_fulfilments(
    s: &common::TestStack,
) -> BTreeMap<String, Vec<(&'static str, serde_json::Value)>> {
    let mut by_order: BTreeMap<String, Vec<(&'static str, serde_json::Value)>> = BTreeMap::new();
    for merchant in ["merchant-1", "merchant-2"] {
        let token = common::bearer(merchant, "merchant");
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/fulfilments?status=open&limit=100&cursor={c}"),
                None => "/fulfilments?status=open&limit=100".to_string(),
            };
            let r = s
                .stack
                .http(HttpRequest::get(&path).header("authorization", &token))
                .await;
            if r.status >= 500 {
                continue;
            }
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let page = r.json();
            for f in page["fulfilments"].as_array().unwrap() {
                let order = f["order_id"].as_str().unwrap().to_string();
                by_order
                    .entry(order)
                    .or_default()
                    .push((merchant, f.clone()));
            }
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
    }
    by_order
}

/// The merchants ship about two thirds of the confirmed orders, every share of each, with
/// parcels booked at the fake carrier (a 5xx or a conflict is retried with the same tracking
/// code, which answers the shipment); the carrier repeats and reorders callbacks. One order in
/// eight is sent back whole, and of another eighth one share only. Runs until every parcel
/// reached its end.
async fn ship_and_carry(s: &common::TestStack, seed: u64, rng: &mut SmallRng) -> Carried {
    let carrier = s.stack.carrier().expect("the stack runs the carrier");
    carrier.set_chaos(seed, 10, 10);
    let mut carried = Carried {
        shipped: 0,
        sent_back: 0,
        refunds: BTreeMap::new(),
    };
    for (order, shares) in open_fulfilments(s).await {
        if !rng.random_bool(0.66) {
            continue;
        }
        let back = rng.random_range(0..8);
        for (n, (merchant, f)) in shares.iter().enumerate() {
            let id = f["fulfilment_id"].as_str().unwrap();
            let code = carrier.book().expect("the carrier is up").tracking_code;
            let mut attempts = 0;
            loop {
                attempts += 1;
                let r = s
                    .stack
                    .http(
                        HttpRequest::json(
                            "POST",
                            &format!("/fulfilments/{id}/ship"),
                            &json!({ "carrier": "fake-carrier", "tracking_code": code }),
                        )
                        .header("authorization", &common::bearer(merchant, "merchant")),
                    )
                    .await;
                if r.status == 200 {
                    break;
                }
                // 409: what the request read changed meanwhile (an injected conflict).
                assert!(
                    (r.status >= 500 || r.status == 409) && attempts < 20,
                    "shipping {id}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            }
            // Sent back: every share (0), or the first share of an order of two (1).
            if back == 0 || (back == 1 && n == 0 && shares.len() > 1) {
                carrier.advance(&code, None).unwrap();
                carrier
                    .advance(
                        &code,
                        Some(bazaar_fake_carrier::ParcelStatus::ReturnedToSender),
                    )
                    .unwrap();
                let units: i64 = f["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["quantity"].as_i64().unwrap())
                    .sum();
                *carried.refunds.entry(order.clone()).or_default() += units * 1000;
            }
        }
        carried.shipped += 1;
        if back == 0 {
            carried.sent_back += 1;
        }
        s.stack.run_for(Duration::seconds(1)).await;
    }
    println!(
        "shipped {} orders, {} sent back whole, {} with a share sent back",
        carried.shipped,
        carried.sent_back,
        carried.refunds.len() - carried.sent_back
    );
    // Pick-up after 30 minutes, delivery 2 hours later, late and repeated callbacks after.
    s.stack.run_for(Duration::hours(3)).await;
    s.stack.settle().await;
    carried
}
