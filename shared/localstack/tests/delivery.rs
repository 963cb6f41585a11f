//! Delivery guarantees on the local stack: poison messages are parked on their first
//! receive, crashes lose nothing, the batching window and redrive behave as on AWS.

mod common;

use std::collections::BTreeMap;

use bazaar_embedded::filter::Attribute;
use bazaar_platform::faults::FaultPoint;
use bazaar_platform::item::{Key, Query, SortKey};
use bazaar_platform::telemetry::Outcome;
use chrono::Duration;
use common::stack;
use serde_json::json;

fn attrs() -> BTreeMap<String, Attribute> {
    BTreeMap::new()
}

/// Sends `n` bodies no consumer can read to `queue` (each parked on its first receive).
fn send_unreadable(engine: &bazaar_embedded::Engine, queue: &str, n: usize) {
    for _ in 0..n {
        engine.send(queue, "not json", attrs(), None, None).unwrap();
    }
}

#[tokio::test]
async fn a_malformed_body_is_parked_on_its_first_receive_and_its_batch_mates_are_processed() {
    let s = stack();
    s.set_stock("MUG-01", 1).await;
    let saga_queue = s.queue("OrdersSagaQueue");
    let order = s
        .place(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await
        .json();
    s.stack
        .engine()
        .send(&saga_queue, "this is not json", attrs(), None, None)
        .unwrap();
    let mut unknown = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(
            common::template()
                .with_file_name("events")
                .join("orders-saga.sqs.json"),
        )
        .unwrap(),
    )
    .unwrap()["Records"][0]["body"]
        .as_str()
        .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap())
        .unwrap();
    unknown["type"] = json!("parcel.shipped");
    s.stack
        .engine()
        .send(&saga_queue, &unknown.to_string(), attrs(), None, None)
        .unwrap();

    s.stack.settle().await;

    let dead = s.stack.engine().peek(&s.queue("OrdersSagaDLQ")).unwrap();
    let mut reasons: Vec<_> = dead
        .iter()
        .map(|m| m.attributes["bazaar.reason"].value.clone())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["malformed", "unknown-type"]);
    assert!(
        dead.iter()
            .all(|m| m.attributes["bazaar.function"].value == "orders-saga")
    );
    assert!(
        dead.iter().any(|m| m.body == "this is not json"),
        "the original body is kept for replay"
    );
    assert_eq!(
        s.metrics.count("orders-saga", Outcome::Failed),
        0,
        "parked at once, never retried"
    );
    assert_eq!(s.metrics.count("orders-saga", Outcome::Parked), 2);
    assert_eq!(
        s.order(order["order_id"].as_str().unwrap()).await["status"],
        "confirmed",
        "the batch-mate was processed (and the flow went on)"
    );
}

#[tokio::test]
async fn a_crash_between_commit_and_publish_is_repaired_by_the_redelivery_with_the_same_envelope_id()
 {
    let s = stack();
    s.set_stock("MUG-01", 1).await;
    s.faults.crash("orders-saga", FaultPoint::AfterCommit, 1);
    let order_id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;

    // Deliver order.placed once (after the batching window): the saga commits, then crashes.
    s.stack.run_for(Duration::seconds(1)).await;
    assert_eq!(s.faults.crashed().len(), 1, "the crash happened");
    // The task waits in the inbox record of order.placed, which is still on the queue.
    let queue = s.stack.name_of("OrdersSagaQueue").unwrap();
    let pending = s.stack.engine().peek(&queue).unwrap();
    assert_eq!(pending.len(), 1, "order.placed was not acknowledged");
    let placed = bazaar_contracts::Envelope::from_json(&pending[0].body).unwrap();
    let orders = s.stack.table_of("OrdersSagaFunction").unwrap();
    let inbox = orders
        .get(&Key::new(format!("INBOX#{}", placed.id), "orders-saga"))
        .await
        .unwrap()
        .expect("the unit of work committed");
    let carried = inbox["outbox"].as_array().unwrap();
    assert_eq!(carried.len(), 1, "the task rides in the inbox record");
    let stored = bazaar_contracts::Envelope::from_json(carried[0].as_str().unwrap()).unwrap();
    assert!(
        orders
            .query(Query::partition("OUTBOX"))
            .await
            .unwrap()
            .items
            .is_empty(),
        "and needs no outbox record"
    );
    assert_eq!(stored.message_type, "inventory.stock.reserve");

    s.stack.settle().await;

    assert_eq!(s.order(&order_id).await["status"], "confirmed");
    let inventory = s.stack.table_of("InventoryWorkerFunction").unwrap();
    assert!(
        inventory
            .get(&Key::new(
                format!("INBOX#{}", stored.id),
                "inventory-worker"
            ))
            .await
            .unwrap()
            .is_some(),
        "inventory processed the stored envelope, same id"
    );
    assert_eq!(
        s.metrics.count("inventory-worker", Outcome::Processed),
        2,
        "and only once: one reservation, then one commit on order.confirmed"
    );
    let inbox = orders
        .get(&Key::new(format!("INBOX#{}", placed.id), "orders-saga"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        inbox.get("outbox").is_none(),
        "once published, the inbox record carries nothing a duplicate would send again"
    );
}

#[tokio::test]
async fn a_crash_between_commit_and_publish_of_a_request_is_repaired_by_the_sweeper() {
    let s = stack();
    s.set_stock("MUG-01", 1).await;
    s.faults.crash("orders-api", FaultPoint::AfterCommit, 1);
    let items = json!([{ "sku": "MUG-01", "quantity": 1 }]);

    let crashed = s.place("customer-1", "k", items.clone()).await;
    assert_eq!(crashed.status, 500, "the client sees API Gateway's 500");
    let orders = s.stack.table_of("OrdersApiFunction").unwrap();
    let outbox = orders
        .query(Query::partition("OUTBOX").sort_key(SortKey::Any))
        .await
        .unwrap()
        .items;
    assert_eq!(outbox.len(), 1);
    let stored =
        bazaar_contracts::Envelope::from_json(outbox[0]["envelope"].as_str().unwrap()).unwrap();
    assert!(
        s.stack
            .engine()
            .peek(&s.queue("OrdersSagaQueue"))
            .unwrap()
            .is_empty(),
        "nothing was published"
    );

    // The client retries with its key: the order exists, so it gets the stored answer.
    let retried = s.place("customer-1", "k", items).await;
    assert_eq!(retried.status, 202);
    assert_eq!(
        retried.json()["order_id"].as_str(),
        stored.data.value()["order_id"].as_str()
    );

    // The sweeper runs every minute and publishes what is older than its grace period.
    s.stack.run_for(Duration::minutes(3)).await;
    s.stack.settle().await;

    assert_eq!(
        s.order(stored.data.value()["order_id"].as_str().unwrap())
            .await["status"],
        "confirmed"
    );
    let saga = s.stack.table_of("OrdersSagaFunction").unwrap();
    assert!(
        saga.get(&Key::new(format!("INBOX#{}", stored.id), "orders-saga"))
            .await
            .unwrap()
            .is_some(),
        "the saga got the stored envelope, same id"
    );
}

/// `orders-api` and `orders-timeouts` share the orders table but not their topics: each
/// function's sweeper must publish its own records, and one's records (tasks, which the other
/// has no topic for) must not hold back the other's.
#[tokio::test]
async fn functions_sharing_a_table_each_sweep_their_own_outbox() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    s.provider().set_callback_delay(Duration::hours(1));
    s.faults
        .crash("orders-timeouts", FaultPoint::AfterCommit, 1);
    let held = s
        .placed_paying(
            "customer-1",
            "k1",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
            "tok_async",
        )
        .await;
    s.stack.run_for(Duration::minutes(16)).await;
    assert_eq!(
        s.faults.crashed().len(),
        1,
        "the expiry committed, then crashed"
    );

    // Now an order whose request crashes after its commit, beside the expiry's task.
    s.faults.crash("orders-api", FaultPoint::AfterCommit, 1);
    let items = json!([{ "sku": "MUG-01", "quantity": 1 }]);
    assert_eq!(s.place("customer-2", "k2", items.clone()).await.status, 500);
    let orders = s.stack.table_of("OrdersApiFunction").unwrap();
    let waiting: Vec<String> = orders
        .query(Query::partition("OUTBOX"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(waiting.len(), 2, "{waiting:?}");
    assert!(
        waiting.contains(&"orders.order.expire".to_string()),
        "{waiting:?}"
    );
    assert!(waiting.contains(&"order.placed".to_string()), "{waiting:?}");
    let second = s.place("customer-2", "k2", items).await.json()["order_id"]
        .as_str()
        .unwrap()
        .to_string();

    s.stack.run_for(Duration::minutes(3)).await;
    s.stack.settle().await;

    let order = s.order(&held).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("timeout")),
        "the expiry's task was swept by orders-timeouts"
    );
    assert_eq!(
        s.order(&second).await["status"],
        "confirmed",
        "the order's event was swept by orders-api"
    );
    assert!(
        orders
            .query(Query::partition("OUTBOX"))
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing is left in the outbox"
    );
}

#[tokio::test]
async fn the_batching_window_holds_a_partial_batch_until_it_closes() {
    let s = stack();
    // The notifier keeps the template's 1 s window: nobody waits on a notification.
    let queue = s.queue("NotifierQueue");
    send_unreadable(s.stack.engine(), &queue, 3);
    assert_eq!(
        s.stack.poll_all().await,
        0,
        "3 of 10 and the 1 s window is open: wait"
    );
    s.stack.run_for(Duration::milliseconds(999)).await;
    assert_eq!(
        s.stack.engine().stats(&queue).unwrap().visible,
        3,
        "still waiting just before the window closes"
    );
    s.stack.run_for(Duration::milliseconds(1)).await;
    assert_eq!(
        s.stack.engine().stats(&queue).unwrap().visible,
        0,
        "one invocation took all three when the window closed"
    );
    assert_eq!(s.metrics.count("notifier", Outcome::Parked), 3);
}

#[tokio::test]
async fn a_full_batch_does_not_wait_for_its_window_nor_a_hop_without_one() {
    let s = stack();
    let queue = s.queue("NotifierQueue");
    send_unreadable(s.stack.engine(), &queue, 10);
    assert_eq!(
        s.stack.poll_all().await,
        10,
        "10 of 10: the batch is full, delivered at once, as Lambda does"
    );
    assert_eq!(s.metrics.count("notifier", Outcome::Parked), 10);

    // The order path has no window (a customer waits on it): a lone message goes at once.
    let reserve = s.queue("InventoryWorkerQueue");
    send_unreadable(s.stack.engine(), &reserve, 1);
    assert_eq!(s.stack.poll_all().await, 1, "no window: no wait");
    assert_eq!(s.metrics.count("inventory-worker", Outcome::Parked), 1);
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_redriven_after_max_receive_count_and_had_one_effect() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    // The provider is down, so the order stays reserved and inventory-worker sees one message.
    s.provider_down();
    s.faults
        .crash("inventory-worker", FaultPoint::AfterPublish, 100);
    let order_id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
        )
        .await;

    s.stack.settle().await;

    assert_eq!(
        s.faults.crashed().len(),
        5,
        "received 5 times (maxReceiveCount), then redriven"
    );
    let dead = s
        .stack
        .engine()
        .peek(&s.queue("InventoryWorkerDLQ"))
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        !dead[0].attributes.contains_key("bazaar.reason"),
        "redriven by SQS, not parked by the function"
    );
    assert_eq!(dead[0].receive_count, 5);
    assert_eq!(
        s.stock("MUG-01").await,
        (3, 2),
        "reserved once despite five deliveries"
    );
    assert_eq!(
        s.order(&order_id).await["status"],
        "reserved",
        "the first delivery's answer was published"
    );
}

#[tokio::test]
async fn a_function_error_fails_the_whole_batch_as_on_lambda() {
    // A build of inventory-worker that lost its SQS trigger: every invocation is an error.
    let faults = std::sync::Arc::new(bazaar_localstack::faults::ScriptedFaults::new());
    let metrics = std::sync::Arc::new(bazaar_platform::telemetry::CollectedMetrics::default());
    let mut options = bazaar_localstack::StackOptions::simulated(faults, metrics);
    options.constructors.insert(
        "inventory-worker",
        std::sync::Arc::new(|deps| Ok(bazaar_platform::Function::new(deps))),
    );
    let model =
        bazaar_localstack::StackModel::load_local(&common::template(), &BTreeMap::new()).unwrap();
    let stack = bazaar_localstack::Stack::build(model, options).unwrap();
    let queue = stack.name_of("InventoryWorkerQueue").unwrap();
    for body in ["a", "b", "c"] {
        stack
            .engine()
            .send(&queue, body, attrs(), None, None)
            .unwrap();
    }

    stack.settle().await;

    let dead = stack
        .engine()
        .peek(&stack.name_of("InventoryWorkerDLQ").unwrap())
        .unwrap();
    assert_eq!(
        dead.len(),
        3,
        "no record of a failed invocation is deleted; all are redriven"
    );
    assert!(
        dead.iter()
            .all(|m| m.receive_count == 5 && !m.attributes.contains_key("bazaar.reason"))
    );
}
