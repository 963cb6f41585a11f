//! inventory-worker on the sample events of events/.

use bazaar_contracts::Sku;
use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_platform::LambdaFunction;
use bazaar_platform::item::item;
use serde_json::json;

async fn stock(deps: &bazaar_platform::Deps, available: i64) {
    let sku = Sku::parse("MUG-01").unwrap();
    deps.table().unwrap().put(item(&inventory_worker::stock_key(&sku), json!({ "sku": "MUG-01", "owner": "merchant-1", "available": available, "reserved": 0 })), None).await.unwrap();
}

#[tokio::test]
async fn the_sample_task_reserves_once_even_when_delivered_twice() {
    let world = Fixture::new();
    let deps = world.deps(
        "inventory-worker",
        Some("inventory"),
        &["inventory", "stock"],
    );
    stock(&deps, 5).await;
    let function = inventory_worker::function(deps.clone()).expect("valid settings");

    function
        .invoke(event("inventory-worker.sqs.json"))
        .await
        .unwrap();
    let again = function
        .invoke(event("inventory-worker.sqs.json"))
        .await
        .unwrap();

    assert_eq!(again["batchItemFailures"], json!([]));
    let s = mugs(&deps).await;
    assert_eq!((s.available, s.reserved), (3, 2));
    let sent = world.sent("inventory");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_type, "inventory.reserved");
    let stock = world.sent("stock");
    assert_eq!(stock.len(), 1, "availability changed once");
    assert_eq!(
        stock[0].data.value(),
        json!({ "sku": "MUG-01", "merchant": "merchant-1", "available": 3, "version": 1 })
    );
}

#[tokio::test]
async fn the_sample_task_is_rejected_when_stock_is_short() {
    let world = Fixture::new();
    let deps = world.deps(
        "inventory-worker",
        Some("inventory"),
        &["inventory", "stock"],
    );
    stock(&deps, 1).await;
    let function = inventory_worker::function(deps.clone()).expect("valid settings");

    function
        .invoke(event("inventory-worker.sqs.json"))
        .await
        .unwrap();

    let sent = world.sent("inventory");
    assert_eq!(sent[0].message_type, "inventory.rejected");
    assert_eq!(sent[0].data.value()["short_skus"], json!(["MUG-01"]));
    let s = mugs(&deps).await;
    assert_eq!((s.available, s.reserved), (1, 0), "nothing held");
}

#[tokio::test]
async fn a_task_breaking_its_contract_is_parked_not_retried() {
    let world = Fixture::new();
    let function = inventory_worker::function(world.deps(
        "inventory-worker",
        Some("inventory"),
        &["inventory"],
    ))
    .expect("valid settings");
    let e = with_envelope(event("inventory-worker.sqs.json"), |env| {
        env["data"]["items"] = json!([])
    });

    let response = function.invoke(e).await.unwrap();

    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(
        world.parked("inventory-worker")[0].attributes["bazaar.reason"].value,
        "contract-violation"
    );
}

#[tokio::test]
async fn a_cancellation_gives_back_what_the_order_holds_once() {
    let world = Fixture::new();
    let deps = world.deps(
        "inventory-worker",
        Some("inventory"),
        &["inventory", "stock"],
    );
    stock(&deps, 5).await;
    let function = inventory_worker::function(deps.clone()).expect("valid settings");
    function
        .invoke(event("inventory-worker.sqs.json"))
        .await
        .unwrap();

    function
        .invoke(event("inventory-worker.order-cancelled.sqs.json"))
        .await
        .unwrap();
    let again = with_envelope(event("inventory-worker.order-cancelled.sqs.json"), |env| {
        env["id"] = json!("another-delivery-with-a-new-id")
    });
    function.invoke(again).await.unwrap();

    let s = mugs(&deps).await;
    assert_eq!(
        (s.available, s.reserved),
        (5, 0),
        "released once, even for a re-sent cancellation"
    );
}

#[tokio::test]
async fn a_cancellation_before_the_reservation_request_makes_it_hold_nothing() {
    let world = Fixture::new();
    let deps = world.deps(
        "inventory-worker",
        Some("inventory"),
        &["inventory", "stock"],
    );
    stock(&deps, 5).await;
    let function = inventory_worker::function(deps.clone()).expect("valid settings");

    function
        .invoke(event("inventory-worker.order-cancelled.sqs.json"))
        .await
        .unwrap();
    function
        .invoke(event("inventory-worker.sqs.json"))
        .await
        .unwrap();

    let s = mugs(&deps).await;
    assert_eq!(
        (s.available, s.reserved),
        (5, 0),
        "nothing held for a cancelled order"
    );
    let sent = world.sent("inventory");
    assert_eq!(
        sent.iter()
            .map(|e| e.message_type.as_str())
            .collect::<Vec<_>>(),
        ["inventory.rejected"]
    );
}

#[tokio::test]
async fn a_confirmation_sells_what_the_order_holds_once() {
    let world = Fixture::new();
    let deps = world.deps(
        "inventory-worker",
        Some("inventory"),
        &["inventory", "stock"],
    );
    stock(&deps, 5).await;
    let function = inventory_worker::function(deps.clone()).expect("valid settings");
    function
        .invoke(event("inventory-worker.sqs.json"))
        .await
        .unwrap();

    let confirmed = |id: &str| {
        with_envelope(event("inventory-worker.order-cancelled.sqs.json"), |env| {
            env["id"] = json!(id);
            env["type"] = json!("order.confirmed");
            env["data"] = json!({ "order_id": "o-sample", "customer": "customer-1", "items": [{ "sku": "MUG-01", "quantity": 2 }] });
        })
    };
    function.invoke(confirmed("c-1")).await.unwrap();
    function.invoke(confirmed("c-2")).await.unwrap();

    let s = mugs(&deps).await;
    assert_eq!(
        (s.available, s.reserved, s.committed),
        (3, 0, 2),
        "sold once; stock is conserved"
    );
    assert!(world.parked("inventory-worker").is_empty());
}

#[tokio::test]
async fn a_confirmation_without_a_reservation_is_parked_for_a_person() {
    let world = Fixture::new();
    let function = inventory_worker::function(world.deps(
        "inventory-worker",
        Some("inventory"),
        &["inventory"],
    ))
    .expect("valid settings");
    let e = with_envelope(event("inventory-worker.order-cancelled.sqs.json"), |env| {
        env["type"] = json!("order.confirmed");
        env["data"] = json!({ "order_id": "o-ghost", "customer": "customer-1", "items": [{ "sku": "MUG-01", "quantity": 1 }] });
    });

    function.invoke(e).await.unwrap();

    assert_eq!(
        world.parked("inventory-worker")[0].attributes["bazaar.reason"].value,
        "unknown-reservation"
    );
}

/// `order.confirmed` and `order.cancelled` (reason `customer`) of the sample order, as
/// delivered (ids distinct).
fn confirmed_then_cancelled_by_the_customer() -> (serde_json::Value, serde_json::Value) {
    let confirmed = with_envelope(event("inventory-worker.order-cancelled.sqs.json"), |env| {
        env["id"] = json!("confirmed-1");
        env["type"] = json!("order.confirmed");
        env["data"] = json!({ "order_id": "o-sample", "customer": "customer-1", "items": [{ "sku": "MUG-01", "quantity": 2 }] });
    });
    let cancelled = with_envelope(event("inventory-worker.order-cancelled.sqs.json"), |env| {
        env["id"] = json!("cancelled-1");
        env["data"]["reason"] = json!("customer");
    });
    (confirmed, cancelled)
}

#[tokio::test]
async fn a_customers_cancellation_after_confirmation_puts_the_sold_units_back_in_either_order() {
    for cancellation_first in [false, true] {
        let world = Fixture::new();
        let deps = world.deps(
            "inventory-worker",
            Some("inventory"),
            &["inventory", "stock"],
        );
        stock(&deps, 5).await;
        let function = inventory_worker::function(deps.clone()).expect("valid settings");
        function
            .invoke(event("inventory-worker.sqs.json"))
            .await
            .unwrap();
        let (confirmed, cancelled) = confirmed_then_cancelled_by_the_customer();
        let deliveries = if cancellation_first {
            [cancelled.clone(), confirmed.clone()]
        } else {
            [confirmed.clone(), cancelled.clone()]
        };
        for e in deliveries {
            let r = function.invoke(e).await.unwrap();
            assert_eq!(r["batchItemFailures"], json!([]));
        }
        // Both again, with new ids (a re-sent event): nothing moves twice.
        for (e, id) in [(confirmed, "confirmed-2"), (cancelled, "cancelled-2")] {
            function
                .invoke(with_envelope(e, |env| env["id"] = json!(id)))
                .await
                .unwrap();
        }

        let s = mugs(&deps).await;
        assert_eq!(
            (s.available, s.reserved, s.committed),
            (5, 0, 0),
            "cancellation first: {cancellation_first}"
        );
        assert!(world.parked("inventory-worker").is_empty());
        let last = world.sent("stock").last().unwrap().data.value();
        assert_eq!(last["available"], 5, "the units are announced back on sale");
    }
}

/// MUG-01's stock record.
async fn mugs(deps: &bazaar_platform::Deps) -> bazaar_inventory::Stock {
    inventory_worker::stock_of(deps.table().unwrap(), &Sku::parse("MUG-01").unwrap())
        .await
        .unwrap()
        .expect("MUG-01 has stock")
}
