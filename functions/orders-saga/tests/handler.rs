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

#[tokio::test]
async fn a_sale_is_imported_once_as_a_paid_order_of_its_channel() {
    let world = Fixture::new();
    let deps = world.deps("orders-saga", Some("orders"), &["order", "tasks"]);
    let function = orders_saga::function(deps.clone()).expect("valid settings");
    let sale = event("orders-saga.sale-placed.sqs.json");
    // A second delivery of the same notification carries a new envelope id.
    let again = bazaar_embedded::testing::with_envelope(sale.clone(), |e| {
        e["id"] = serde_json::json!("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0999");
    });
    for e in [sale, again] {
        let r = function.invoke(e).await.unwrap();
        assert_eq!(r["batchItemFailures"], serde_json::json!([]));
    }
    let placed = world.sent("order");
    assert_eq!(placed.len(), 1, "imported once: {placed:?}");
    assert_eq!(placed[0].message_type, "order.placed");
    let data = placed[0].data.value();
    let id = bazaar_orders::keys::channel_order_id("agora", "ag-sample");
    assert_eq!(data["order_id"], serde_json::json!(id));
    assert_eq!(data["customer"], "channel:agora");
    assert_eq!(data["source"]["external_id"], "ag-sample");
    let order: bazaar_orders::Order = deps
        .table()
        .unwrap()
        .get_as(&orders_saga::order_key(&id))
        .await
        .unwrap()
        .expect("imported");
    assert_eq!(order.total.unwrap().amount_cents, 2500);
    assert_eq!(order.status, bazaar_orders::Status::Pending);
}

#[tokio::test]
async fn a_cancellation_before_its_sale_keeps_the_sale_from_being_imported() {
    let world = Fixture::new();
    let deps = world.deps("orders-saga", Some("orders"), &["order", "tasks"]);
    let function = orders_saga::function(deps).expect("valid settings");
    let cancelled = event("orders-saga.sale-cancelled.sqs.json");
    let r = function.invoke(cancelled.clone()).await.unwrap();
    assert_eq!(r["batchItemFailures"], serde_json::json!([]));
    // Repeated, and then the sale (of the same souk order) arrives late.
    let again = bazaar_embedded::testing::with_envelope(cancelled, |e| {
        e["id"] = serde_json::json!("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0998");
    });
    function.invoke(again).await.unwrap();
    let late_sale =
        bazaar_embedded::testing::with_envelope(event("orders-saga.sale-placed.sqs.json"), |e| {
            e["data"]["channel"] = serde_json::json!("souk");
            e["data"]["external_id"] = serde_json::json!("sk-sample");
        });
    let r = function.invoke(late_sale).await.unwrap();
    assert_eq!(r["batchItemFailures"], serde_json::json!([]));
    assert!(world.sent("order").is_empty(), "nothing imported");
    assert!(world.sent("tasks").is_empty(), "nothing reserved");
    assert!(world.parked("orders-saga").is_empty());
}

#[tokio::test]
async fn fulfilment_announcements_move_a_confirmed_order_forward_only_and_tell_the_customer_once() {
    use bazaar_embedded::testing::with_envelope;
    let world = Fixture::new();
    let deps = world.deps("orders-saga", Some("orders"), &["order", "tasks"]);
    let mut order = bazaar_orders::Order::place(
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
    order.status = bazaar_orders::Status::Confirmed;
    deps.table()
        .unwrap()
        .put(record(&orders_saga::order_key("o-sample"), &order), None)
        .await
        .unwrap();
    let function = orders_saga::function(deps.clone()).expect("valid settings");
    let status = || async {
        let item = deps
            .table()
            .unwrap()
            .get(&orders_saga::order_key("o-sample"))
            .await
            .unwrap()
            .unwrap();
        bazaar_platform::item::parse::<bazaar_orders::Order>(item)
            .unwrap()
            .status
    };
    let step = |id: &str, progress: &str| {
        let (id, progress) = (id.to_string(), progress.to_string());
        with_envelope(
            event("orders-saga.fulfilment-shipped.sqs.json"),
            move |env| {
                env["id"] = serde_json::json!(id);
                env["data"]["order_progress"] = serde_json::json!(progress);
            },
        )
    };

    let partly = step("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0fa1", "partly_shipped");
    function.invoke(partly).await.unwrap();
    assert_eq!(status().await, bazaar_orders::Status::PartlyShipped);
    assert!(world.sent("order").is_empty(), "nobody is told of a part");

    for _ in 0..2 {
        let out = function
            .invoke(event("orders-saga.fulfilment-shipped.sqs.json"))
            .await
            .unwrap();
        assert_eq!(out["batchItemFailures"], serde_json::json!([]));
    }
    assert_eq!(status().await, bazaar_orders::Status::Shipped);
    // Late: the partial step again, after the whole.
    let late = step("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0fa2", "partly_shipped");
    function.invoke(late).await.unwrap();
    assert_eq!(status().await, bazaar_orders::Status::Shipped);
    let sent = world.sent("order");
    assert_eq!(
        sent.iter()
            .map(|e| e.message_type.as_str())
            .collect::<Vec<_>>(),
        ["order.shipped"]
    );
    assert_eq!(sent[0].data.value()["customer"], "customer-1");
}
