//! The whole saga under a bad day, on the simulated clock: 1,000 accepted orders from 50 customers for
//! five skus, paid with approving, declining and asynchronous cards, while the payment provider
//! is down for a while, sometimes slow or failing at random, sometimes deciding only after the
//! order's deadline, and every message is delivered one to three times in a random order.
//!
//! Whatever happens, the books must balance: every order ends confirmed or cancelled; for each
//! sku, initial stock = committed + available; no order is charged twice; a cancelled order
//! that was charged is refunded; every final order is notified exactly once; no message is
//! dead-lettered.

mod common;

use std::collections::BTreeMap;

use bazaar_fake_provider::Switches;
use chrono::Duration;
use common::stack;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const STOCK: [(&str, i64); 5] = [
    ("MUG-01", 700),
    ("TEE-01", 600),
    ("POSTER-01", 60),
    ("LAMP-01", 500),
    ("BAG-01", 500),
];

#[tokio::test]
async fn a_thousand_orders_on_a_bad_day_balance_the_books() {
    let s = stack();
    for (sku, n) in STOCK {
        s.set_stock(sku, n).await;
    }
    s.stack.engine().set_chaos_at_most(2, 2026);
    s.provider().chaos(Some((7, 0.08, 0.08)));
    let mut rng = SmallRng::seed_from_u64(11);

    let mut placed = Vec::new();
    let mut refused = 0;
    // Until 1,000 orders are accepted (orders for a sold-out sku are refused at the door).
    let mut i = 0;
    while placed.len() < 1000 {
        i += 1;
        // A two-minute outage early on, and a stretch where asynchronous payments are decided
        // only after the orders' 15-minute deadline.
        match i {
            300 => s.provider().set_switches(Switches {
                down: true,
                ..Switches::default()
            }),
            360 => s.provider().set_switches(Switches::default()),
            600 => s.provider().set_callback_delay(Duration::minutes(20)),
            700 => s
                .provider()
                .set_callback_delay(bazaar_fake_provider::DEFAULT_CALLBACK_DELAY),
            _ => {}
        }
        let token = match rng.random_range(0..100) {
            0..55 => "tok_ok",
            55..70 => "tok_declined",
            70..95 => "tok_async",
            _ => "tok_async_declined",
        };
        let first = rng.random_range(0..STOCK.len());
        let mut items = vec![json!({ "sku": STOCK[first].0, "quantity": rng.random_range(1..=3) })];
        if rng.random_bool(0.3) {
            let second = (first + 1 + rng.random_range(0..STOCK.len() - 1)) % STOCK.len();
            items.push(json!({ "sku": STOCK[second].0, "quantity": 1 }));
        }
        let customer = format!("customer-{}", i % 50);
        let r = s
            .place_paying(&customer, &format!("order-{i}"), json!(items), token)
            .await;
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
        s.stack.run_for(Duration::seconds(2)).await;
    }
    // Long enough for every deadline, every late decision and every retry.
    s.stack.run_for(Duration::minutes(90)).await;
    s.stack.settle().await;

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
    for outcome in [
        "confirmed",
        "cancelled:out_of_stock",
        "cancelled:payment_declined",
        "cancelled:timeout",
    ] {
        assert!(
            outcomes.get(outcome).copied().unwrap_or(0) > 0,
            "the mix reaches {outcome}: {outcomes:?}"
        );
    }

    // Stock: nothing leaked, nothing oversold, nothing still held.
    for (sku, initial) in STOCK {
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
    assert!(refunded > 0, "late captures were refunded");

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
}
