//! business-metrics on the sample events of events/: each business metric as the EMF line
//! CloudWatch reads, once per event however often it is delivered, and none for a test flow.

use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_platform::LambdaFunction;
use bazaar_platform::telemetry::emf_measurement_line;
use serde_json::{Value, json};

/// The EMF lines the function printed, parsed.
fn lines(world: &Fixture) -> Vec<Value> {
    world
        .metrics
        .measurements()
        .iter()
        .map(|m| serde_json::from_str(&emf_measurement_line(m)).unwrap())
        .collect()
}

/// The metric names a line declares, and its dimension sets.
fn declared(line: &Value) -> (Vec<String>, Value) {
    let cw = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(cw["Namespace"], "Bazaar/Business");
    let names = cw["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect();
    (names, cw["Dimensions"].clone())
}

async fn run(file: &str, times: usize) -> Fixture {
    let world = Fixture::new();
    let function =
        business_metrics::function(world.deps("business-metrics", Some("ops"), &[])).unwrap();
    for _ in 0..times {
        let r = function.invoke(event(file)).await.unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    world
}

#[tokio::test]
async fn a_confirmation_counts_one_order_and_its_gross_value_per_currency_and_source() {
    let world = run("business-metrics.order-confirmed.sqs.json", 2).await;
    let lines = lines(&world);
    assert_eq!(lines.len(), 2, "one count and one value, once: {lines:?}");
    let (names, dims) = declared(&lines[0]);
    assert_eq!(names, ["orders_confirmed"]);
    assert_eq!(dims, json!([["source"]]));
    assert_eq!(lines[0]["source"], "storefront");
    assert_eq!(lines[0]["orders_confirmed"], 1.0);
    let (names, dims) = declared(&lines[1]);
    assert_eq!(names, ["gross_value"]);
    assert_eq!(dims, json!([["currency"], ["source", "currency"]]));
    assert_eq!(
        (
            &lines[1]["currency"],
            &lines[1]["source"],
            &lines[1]["gross_value"]
        ),
        (&json!("EUR"), &json!("storefront"), &json!(2500.0))
    );
}

#[tokio::test]
async fn a_placement_counts_by_source_a_channel_included() {
    let world = run("business-metrics.order-placed.sqs.json", 1).await;
    let lines = lines(&world);
    assert_eq!(lines.len(), 1);
    let (names, dims) = declared(&lines[0]);
    assert_eq!(names, ["orders_placed"]);
    assert_eq!(dims, json!([["source"]]));
    assert_eq!(lines[0]["source"], "agora");
}

#[tokio::test]
async fn a_cancellation_counts_by_reason_and_by_source() {
    let world = run("business-metrics.order-cancelled.sqs.json", 1).await;
    let lines = lines(&world);
    assert_eq!(lines.len(), 1);
    let (names, dims) = declared(&lines[0]);
    assert_eq!(names, ["orders_cancelled"]);
    assert_eq!(dims, json!([["reason"], ["source"]]));
    assert_eq!(
        (&lines[0]["reason"], &lines[0]["source"]),
        (&json!("timeout"), &json!("storefront"))
    );
}

#[tokio::test]
async fn a_test_flow_is_left_out() {
    let world = Fixture::new();
    let function =
        business_metrics::function(world.deps("business-metrics", Some("ops"), &[])).unwrap();
    for file in [
        "business-metrics.order-placed.sqs.json",
        "business-metrics.order-confirmed.sqs.json",
        "business-metrics.order-cancelled.sqs.json",
    ] {
        let test = with_envelope(event(file), |env| env["flags"] = json!("test-order=true"));
        let r = function.invoke(test).await.unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    assert!(world.metrics.measurements().is_empty());
}
