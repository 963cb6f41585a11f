//! Deadlines on the local stack: an order that does not reach a final state in time is
//! cancelled with reason `timeout` and its stock released; a final order is left alone.

mod common;

use bazaar_platform::item::Query;
use chrono::Duration;
use common::stack;
use serde_json::json;

#[tokio::test]
async fn an_order_past_its_deadline_is_cancelled_and_its_stock_released() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    // The provider takes an hour to decide about this payment.
    s.provider().set_callback_delay(Duration::hours(1));
    let held = s
        .placed_paying(
            "customer-1",
            "k1",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
            "tok_async",
        )
        .await;
    let rejected = s
        .placed(
            "customer-2",
            "k2",
            json!([{ "sku": "MUG-01", "quantity": 9 }]),
        )
        .await;
    s.stack.run_for(Duration::seconds(5)).await;
    assert_eq!(s.order(&held).await["status"], "reserved");
    assert_eq!(s.stock("MUG-01").await, (3, 2));

    // Nothing moves the reserved order on: its 15 minutes run out.
    s.stack.run_for(Duration::minutes(14)).await;
    assert_eq!(
        s.order(&held).await["status"],
        "reserved",
        "not before the deadline"
    );
    s.stack.run_for(Duration::minutes(2)).await;

    let order = s.order(&held).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("timeout"))
    );
    assert_eq!(
        s.stock("MUG-01").await,
        (5, 0),
        "the reservation is given back"
    );
    let other = s.order(&rejected).await;
    assert_eq!(
        other["cancel_reason"], "out_of_stock",
        "a final order keeps its outcome"
    );
    let orders = s.stack.table_of("OrdersTimeoutsFunction").unwrap();
    assert!(
        orders
            .query(Query::partition("DEADLINE"))
            .await
            .unwrap()
            .items
            .is_empty(),
        "no deadline is left behind"
    );
    let expired = s
        .metrics
        .all()
        .iter()
        .filter(|m| m.function == "orders-saga" && m.message_type == "orders.order.expire")
        .count();
    assert_eq!(
        expired, 1,
        "only the order still open was expired: a final order's deadline is removed"
    );
    let notifications = s.stack.table_of("NotifierFunction").unwrap();
    for (customer, order_id) in [("customer-1", &held), ("customer-2", &rejected)] {
        let notes = notifier::notifications_of(notifications.as_ref(), customer)
            .await
            .unwrap();
        assert_eq!(
            notes
                .iter()
                .map(|n| (n.order_id.as_str(), n.outcome.as_str()))
                .collect::<Vec<_>>(),
            [(order_id.as_str(), "cancelled")],
            "one notification per final order"
        );
    }

    // The provider approves after the hour: the capture of a cancelled order is refunded.
    s.stack.run_for(Duration::hours(1)).await;
    s.stack.settle().await;
    assert_eq!(s.order(&held).await["status"], "cancelled");
    let ledger = s.provider().ledger();
    assert_eq!(
        (ledger.len(), ledger[0].status.as_str(), ledger[0].refunded),
        (1, "succeeded", true)
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
}
