//! orders-saga on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use bazaar_platform::item::record;
use chrono::Utc;

async fn pending_order(deps: &bazaar_platform::Deps) {
    let order = bazaar_orders::Order::place(
        "o-sample".into(),
        "customer-1".into(),
        vec![bazaar_contracts::Line {
            sku: bazaar_contracts::Sku::parse("MUG-01").unwrap(),
            quantity: 2,
        }],
        "tok_ok".into(),
        Utc::now(),
        Utc::now(),
    );
    deps.table()
        .unwrap()
        .put(record(&orders_saga::order_key("o-sample"), &order), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn order_placed_asks_inventory_to_reserve_once_even_when_delivered_twice() {
    let world = Fixture::new();
    let deps = world.deps("orders-saga", Some("orders"), &["tasks"]);
    pending_order(&deps).await;
    let function = orders_saga::function(deps).expect("valid settings");

    let first = function
        .invoke(event("orders-saga.sqs.json"))
        .await
        .unwrap();
    let second = function
        .invoke(event("orders-saga.sqs.json"))
        .await
        .unwrap();

    assert_eq!(first["batchItemFailures"], serde_json::json!([]));
    assert_eq!(second["batchItemFailures"], serde_json::json!([]));
    let tasks = world.sent("tasks");
    assert_eq!(tasks.len(), 1, "a duplicate causes no second message");
    assert_eq!(tasks[0].message_type, "inventory.stock.reserve");
    assert_eq!(
        tasks[0].causation_id.as_deref(),
        Some("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0001")
    );
    assert_eq!(tasks[0].correlation_id, "JKJaXmPLvHcESHA=");
}

#[tokio::test]
async fn order_placed_for_an_unknown_order_is_parked_with_its_reason() {
    let world = Fixture::new();
    let function = orders_saga::function(world.deps("orders-saga", Some("orders"), &["tasks"]))
        .expect("valid settings");

    let response = function
        .invoke(event("orders-saga.sqs.json"))
        .await
        .unwrap();

    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "parked, so acknowledged"
    );
    let parked = world.parked("orders-saga");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].attributes["bazaar.reason"].value, "unknown-order");
}
