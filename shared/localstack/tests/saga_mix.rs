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
//! Whatever happens, the history checker finds nothing lost, duplicated or unexpected, and the
//! books balance: every order ends confirmed or cancelled; for each sku, initial stock =
//! committed + available; no order is charged twice; a cancelled order that was charged is
//! refunded; every final order is notified exactly once; no message is dead-lettered.
//!
//! Seeded: `BAZAAR_CAMPAIGN_SEED` replays a run, `BAZAAR_CAMPAIGN_ORDERS` sets the count
//! (`scripts/soak` runs 50,000).

mod common;

use std::collections::BTreeMap;

use bazaar_fake_provider::Switches;
use std::sync::Arc;

use bazaar_localstack::chaos::Chaos;
use bazaar_localstack::faults::RandomFaults;
use bazaar_localstack::history::{Recorder, check};
use bazaar_platform::faults::FaultPoint;
use chrono::Duration;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Stock per 1,000 orders: POSTER-01 sells out (orders for it are then refused at the door,
/// or cancelled out of stock when several race for the last units).
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
    let s = common::stack_with(|o| {
        o.faults = crashes.clone();
        o.history = Some(recorder.clone());
        o.chaos = Some(chaos);
    });
    s.stack.engine().record_sends();
    crashes.arm(false);
    injected.arm(false);
    for (sku, n) in &stock {
        s.set_stock(sku, *n).await;
    }
    crashes.arm(true);
    injected.arm(true);
    s.stack.engine().set_chaos_at_most(4, seed);
    s.provider().chaos(Some((seed, 0.08, 0.08)));
    s.provider().set_duplicate_callbacks(Some(7));
    let mut rng = SmallRng::seed_from_u64(seed);

    let mut placed = Vec::new();
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
        let customer = format!("customer-{}", i % 50);
        // A 5xx is retried with the same idempotency key: the order is placed once, whether
        // the failed attempt took effect or not.
        let mut attempts = 0;
        let r = loop {
            attempts += 1;
            let r = s
                .place_paying(&customer, &format!("order-{i}"), json!(items), token)
                .await;
            if r.status < 500 {
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
    }
    // Long enough for every deadline, every late decision and every retry (the outbox
    // sweeper, on its schedule, publishes what a crashed HTTP function committed).
    s.stack.run_for(Duration::minutes(90)).await;
    s.stack.settle().await;
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
            status == "confirmed" || status == "cancelled",
            "order {id} ended {key}"
        );
        *outcomes.entry(key).or_default() += 1;
        status_of.insert(id.clone(), status);
        totals.insert(id.clone(), order["total"]["amount_cents"].as_i64());
    }
    println!("outcomes: {outcomes:?}, refused as sold out: {refused}");
    // The mix is sized so that a thousand orders or more reach every outcome (fewer may miss
    // the late-decision stretch that times orders out).
    let expected: &[&str] = if orders >= 1000 {
        &[
            "confirmed",
            "cancelled:out_of_stock",
            "cancelled:payment_declined",
            "cancelled:timeout",
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
            "confirmed" => assert!(kept, "confirmed order {id} was paid for"),
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

    // One notification per final order, with its outcome.
    let notes = s.stack.table_of("NotifierFunction").unwrap();
    let mut notified = BTreeMap::new();
    for c in 0..50 {
        for n in notifier::notifications_of(notes.as_ref(), &format!("customer-{c}"))
            .await
            .unwrap()
        {
            assert!(
                notified
                    .insert(n.order_id.clone(), n.outcome.clone())
                    .is_none(),
                "order {} notified twice",
                n.order_id
            );
        }
    }
    assert_eq!(
        notified.len(),
        placed.len(),
        "every final order is notified"
    );
    for (id, status) in &status_of {
        assert_eq!(notified.get(id), Some(status), "order {id}");
    }

    for dlq in [
        "OrdersSagaDLQ",
        "InventoryWorkerDLQ",
        "NotifierDLQ",
        "PaymentsWorkerDLQ",
    ] {
        assert!(
            s.stack.engine().peek(&s.queue(dlq)).unwrap().is_empty(),
            "{dlq} stays empty"
        );
    }
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
    for (sku, _) in &stock {
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
