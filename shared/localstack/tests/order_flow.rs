//! The order flow on the local stack with approved cards: placing orders reserves and then
//! commits stock exactly, whatever the delivery does.

mod common;

use std::collections::BTreeMap;

use common::stack;
use serde_json::json;

/// The statuses the orders ended in, and how many times the saga's function handled each
/// message sent to its queue, on average (deliveries over sends).
async fn two_hundred_orders_for_150_units(chaos: Option<u64>) -> (BTreeMap<String, usize>, f64) {
    let s = stack();
    s.set_stock("MUG-01", 150).await;
    if let Some(seed) = chaos {
        s.stack.engine().set_chaos(1, Some(seed));
    }
    s.stack.engine().record_sends();
    let handled_before = s.metrics.count(
        "orders-saga",
        bazaar_platform::telemetry::Outcome::Processed,
    );

    let mut ids = Vec::new();
    for i in 0..200 {
        let r = s
            .place(
                &format!("customer-{}", i % 7),
                &format!("key-{i}"),
                json!([{ "sku": "MUG-01", "quantity": 1 }]),
            )
            .await;
        assert_eq!(
            r.status,
            202,
            "order {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["status"], "pending");
        ids.push(r.json()["order_id"].as_str().unwrap().to_string());
    }
    s.stack.settle().await;

    let mut statuses = BTreeMap::new();
    for id in &ids {
        let order = s.order(id).await;
        let key = match order["cancel_reason"].as_str() {
            Some(reason) => format!("{}:{reason}", order["status"].as_str().unwrap()),
            None => order["status"].as_str().unwrap().to_string(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    assert_eq!(
        (s.stock("MUG-01").await, s.committed("MUG-01").await),
        ((0, 0), 150),
        "exactly 150 units sold, none oversold, nothing left held"
    );
    let notifications = s.stack.table_of("NotifierFunction").unwrap();
    let mut notified = 0;
    for c in 0..7 {
        notified += notifier::notifications_of(notifications.as_ref(), &format!("customer-{c}"))
            .await
            .unwrap()
            .len();
    }
    assert_eq!(
        notified, 200,
        "one notification per final order, whatever the duplicates"
    );
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
    let saga_queue = s.queue("OrdersSagaQueue");
    let sent = s
        .stack
        .engine()
        .sends()
        .iter()
        .filter(|(queue, _)| *queue == saga_queue)
        .count();
    let handled = s.metrics.count(
        "orders-saga",
        bazaar_platform::telemetry::Outcome::Processed,
    ) - handled_before;
    // 200 order.placed, 200 inventory answers, 150 payment.captured.
    assert_eq!(sent, 550, "messages sent to the saga");
    (statuses, handled as f64 / sent as f64)
}

#[tokio::test]
async fn two_hundred_orders_against_150_units_confirm_exactly_150() {
    let (statuses, deliveries) = two_hundred_orders_for_150_units(None).await;
    assert_eq!(deliveries, 1.0, "each message handled once");
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("cancelled:out_of_stock".to_string(), 50),
            ("confirmed".to_string(), 150)
        ])
    );
}

#[tokio::test]
async fn every_message_delivered_twice_in_shuffled_order_gives_the_same_result() {
    for seed in [7, 42] {
        let (statuses, deliveries) = two_hundred_orders_for_150_units(Some(seed)).await;
        assert_eq!(
            deliveries, 2.0,
            "seed {seed}: every message was delivered twice"
        );
        assert_eq!(
            statuses,
            BTreeMap::from([
                ("cancelled:out_of_stock".to_string(), 50),
                ("confirmed".to_string(), 150)
            ]),
            "seed {seed}"
        );
    }
}

#[tokio::test]
async fn an_order_for_several_skus_reserves_all_or_nothing() {
    let s = stack();
    s.set_stock("A", 5).await;
    s.set_stock("B", 1).await;
    let ok = s
        .place(
            "customer-1",
            "k1",
            json!([{ "sku": "A", "quantity": 2 }, { "sku": "B", "quantity": 1 }]),
        )
        .await
        .json();
    let short = s
        .place(
            "customer-1",
            "k2",
            json!([{ "sku": "A", "quantity": 2 }, { "sku": "B", "quantity": 1 }]),
        )
        .await
        .json();
    s.stack.settle().await;

    assert_eq!(
        s.order(ok["order_id"].as_str().unwrap()).await["status"],
        "confirmed"
    );
    let cancelled = s.order(short["order_id"].as_str().unwrap()).await;
    assert_eq!(
        (
            cancelled["status"].as_str(),
            cancelled["cancel_reason"].as_str()
        ),
        (Some("cancelled"), Some("out_of_stock"))
    );
    assert_eq!(
        (s.stock("A").await, s.committed("A").await),
        ((3, 0), 2),
        "the rejected order holds nothing of A"
    );
    assert_eq!((s.stock("B").await, s.committed("B").await), ((0, 0), 1));
}
