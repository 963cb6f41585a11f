//! The README's walk-through, run twice: on a stack over files, stopped and started again
//! over the data the first run left, with a new payment provider process (as `scripts/dev`
//! is restarted). What a restart must not break: ids that start over, and a payment captured
//! at the provider that no order ever hears of.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_embedded::Engine;
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::clock::{Clock, ManualClock};
use bazaar_platform::telemetry::CollectedMetrics;
use chrono::Duration;
use common::{TestStack, bearer};
use serde_json::json;

/// A stack over the engine files under `dir`, on `clock`.
fn start(dir: &std::path::Path, clock: &Arc<ManualClock>) -> TestStack {
    let engine = Engine::open(&dir.join("local.sqlite"), clock.clone()).unwrap();
    let faults = Arc::new(ScriptedFaults::new());
    let metrics = Arc::new(CollectedMetrics::default());
    let model = StackModel::load_local(&common::template(), &BTreeMap::new()).unwrap();
    let options =
        StackOptions::simulated_on(engine, clock.clone(), faults.clone(), metrics.clone());
    TestStack {
        stack: Stack::build(model, options).unwrap(),
        catalogued: Default::default(),
        faults,
        metrics,
    }
}

/// The walk-through's `tok_async` order: placed, reserved, then confirmed by the provider's
/// callback five seconds later. Returns the order's final status.
async fn async_order(s: &TestStack, key: &str) -> String {
    let body = json!({ "items": [{ "sku": "LAMP-01", "quantity": 1 }], "payment": { "token": "tok_async" } });
    let r = s
        .stack
        .http(
            HttpRequest::json("POST", "/orders", &body)
                .header("authorization", &bearer("customer-1", "customer"))
                .header("idempotency-key", key),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["order_id"].as_str().unwrap().to_string();
    // One batching window per hop: placed, reserve, reserved, charge.
    s.stack.run_for(Duration::seconds(4)).await;
    assert_eq!(
        s.order(&id).await["status"],
        "reserved",
        "the provider said pending"
    );
    s.stack.run_for(Duration::seconds(30)).await;
    s.order(&id).await["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_async_payment_of_the_walk_through_confirms_again_after_a_restart_over_its_data() {
    let dir = std::env::temp_dir().join(format!("bazaar-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = Arc::new(ManualClock::at_epoch());
    {
        let s = start(&dir, &clock);
        s.set_stock("LAMP-01", 10).await;
        assert_eq!(async_order(&s, "tok_async").await, "confirmed");
    }
    // Stopped and started again over the same files, with a new provider process; the
    // customer runs the walk-through again (a new idempotency key, as a new shell has).
    clock.advance(Duration::minutes(1));
    let s = start(&dir, &clock);
    assert_eq!(async_order(&s, "tok_async-again").await, "confirmed");
    let ledger = s.provider().ledger();
    assert_eq!(ledger.len(), 1, "the new provider's books: {ledger:?}");
    for dlq in ["OrdersSagaDLQ", "PaymentsWorkerDLQ"] {
        assert!(
            s.stack.engine().peek(&s.queue(dlq)).unwrap().is_empty(),
            "{dlq}"
        );
    }
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = clock.now();
}
