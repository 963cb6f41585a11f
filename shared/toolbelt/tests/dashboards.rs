//! The template's CloudWatch dashboards name only metrics the functions really emit: a run of
//! the local stack (storefront orders confirmed, declined, out of stock, cancelled by their
//! customer and timed out; listings synced to agora and souk and an order from each) prints
//! its EMF lines, and every metric of Bazaar's namespaces that a widget names, with its exact
//! dimensions, is among them. A `failed` or `parked` count is accepted when the function
//! emitted `processed` under the same dimensions (the outcomes share them; a healthy run has
//! no failures). AWS's own metrics are checked against the names AWS publishes.

#[path = "../../localstack/tests/common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};

use bazaar_channels::{ChannelId, Purchase};
use bazaar_localstack::gateway::HttpRequest;
use chrono::Duration;
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

/// A metric as CloudWatch keys it: namespace, name, and its dimensions with their values.
type MetricKey = (String, String, BTreeMap<String, String>);

/// Every metric the EMF lines declare, under each of their dimension sets.
fn emitted(lines: &[String]) -> BTreeSet<MetricKey> {
    let mut out = BTreeSet::new();
    for line in lines {
        let line: Value = serde_json::from_str(line).unwrap();
        for cw in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            let namespace = cw["Namespace"].as_str().unwrap().to_string();
            for set in cw["Dimensions"].as_array().unwrap() {
                let dims: BTreeMap<String, String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let d = d.as_str().unwrap();
                        (d.to_string(), line[d].as_str().unwrap().to_string())
                    })
                    .collect();
                for m in cw["Metrics"].as_array().unwrap() {
                    out.insert((
                        namespace.clone(),
                        m["Name"].as_str().unwrap().to_string(),
                        dims.clone(),
                    ));
                }
            }
        }
    }
    out
}

/// The template's dashboards: name → the metrics their widgets name.
fn dashboards() -> BTreeMap<String, Vec<MetricKey>> {
    let text = std::fs::read_to_string(common::template()).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (id, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::CloudWatch::Dashboard") {
            continue;
        }
        let body = match &resource["Properties"]["DashboardBody"] {
            serde_yaml::Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().unwrap(),
            other => panic!("{id:?}: a DashboardBody that is not a !Sub string: {other:?}"),
        };
        // The substitutions are AWS's names (region, API ids, queue names): any text will do.
        let body: Value = serde_json::from_str(&strip_subs(body))
            .unwrap_or_else(|e| panic!("{id:?}: the body is not JSON: {e}"));
        let mut metrics = Vec::new();
        for w in body["widgets"].as_array().unwrap() {
            for m in w["properties"]["metrics"].as_array().unwrap() {
                let parts: Vec<&str> = m
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert!(
                    parts.len() >= 2 && parts.len().is_multiple_of(2) && !parts.contains(&"."),
                    "{id:?}: write metrics in full (namespace, name, dimension pairs): {m}"
                );
                let dims = parts[2..]
                    .chunks(2)
                    .map(|p| (p[0].to_string(), p[1].to_string()))
                    .collect();
                metrics.push((parts[0].to_string(), parts[1].to_string(), dims));
            }
        }
        out.insert(id.as_str().unwrap().to_string(), metrics);
    }
    out
}

/// `${Name}` → `Name` (the JSON needs no more than that to parse).
fn strip_subs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("a closed ${...}");
        out.push_str(&after[..end]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The metrics AWS publishes that the dashboards may use, by namespace, with the dimension
/// they are read by.
fn aws_metric(namespace: &str, name: &str, dims: &BTreeMap<String, String>) -> bool {
    let keys: Vec<&str> = dims.keys().map(String::as_str).collect();
    match namespace {
        "AWS/ApiGateway" => {
            ["Count", "4xx", "5xx", "Latency", "IntegrationLatency"].contains(&name)
                && keys == ["ApiId"]
        }
        "AWS/SQS" => {
            [
                "ApproximateAgeOfOldestMessage",
                "ApproximateNumberOfMessagesVisible",
                "NumberOfMessagesSent",
                "NumberOfMessagesDeleted",
            ]
            .contains(&name)
                && keys == ["QueueName"]
        }
        "AWS/Lambda" => {
            ["Invocations", "Errors", "Throttles", "Duration"].contains(&name)
                && keys == ["FunctionName"]
        }
        _ => false,
    }
}

/// A run that makes every business outcome happen once.
async fn run() -> TestStack {
    let s = stack();
    s.listed_everywhere("MUG-01").await;

    let line = |q: u32| json!([{ "sku": "MUG-01", "quantity": q }]);
    let confirmed = s.placed("customer-1", "k-ok", line(1)).await;
    s.placed_paying("customer-1", "k-declined", line(1), "tok_declined")
        .await;
    s.placed("customer-1", "k-too-many", line(50)).await;
    let cancelled = s.placed("customer-2", "k-cancel", line(1)).await;
    s.stack.settle().await;
    assert_eq!(s.order(&confirmed).await["status"], "confirmed");
    let r = s
        .stack
        .http(
            HttpRequest::json("POST", &format!("/orders/{cancelled}/cancel"), &json!({}))
                .header("authorization", &bearer("customer-2", "customer"))
                .header("idempotency-key", "cancel-1"),
        )
        .await;
    assert!(r.status < 300, "{}", String::from_utf8_lossy(&r.body));

    let m = s
        .stack
        .marketplaces()
        .expect("the stack runs the marketplaces");
    for channel in [ChannelId::Agora, ChannelId::Souk] {
        m.buy(
            channel,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 1,
            },
        )
        .expect("the channel sells the listed sku");
    }
    s.provider().set_callback_delay(Duration::hours(1));
    s.placed_paying("customer-3", "k-late", line(1), "tok_async")
        .await;
    s.stack.run_for(Duration::minutes(17)).await;
    s.stack.settle().await;
    s
}

#[tokio::test]
async fn every_dashboard_names_only_metrics_the_functions_emit() {
    let s = run().await;
    let emitted = emitted(&s.metrics.emf_lines());
    // The run made every business outcome: the business metrics' own check.
    for (name, dims) in [
        ("orders_placed", vec![("source", "storefront")]),
        ("orders_placed", vec![("source", "agora")]),
        ("orders_placed", vec![("source", "souk")]),
        ("orders_confirmed", vec![("source", "souk")]),
        ("orders_cancelled", vec![("reason", "customer")]),
        ("orders_cancelled", vec![("reason", "timeout")]),
        ("gross_value", vec![("currency", "EUR")]),
    ] {
        let dims = dims
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(
            emitted.contains(&("Bazaar/Business".into(), name.into(), dims)),
            "{name} emitted"
        );
    }

    let dashboards = dashboards();
    assert_eq!(
        dashboards.keys().collect::<Vec<_>>(),
        [
            "DashboardApi",
            "DashboardBusiness",
            "DashboardChannels",
            "DashboardQueues",
            "DashboardSagas"
        ],
        "one dashboard per area"
    );
    let mut checked = 0;
    for (dashboard, metrics) in &dashboards {
        assert!(!metrics.is_empty(), "{dashboard} shows something");
        for (namespace, name, dims) in metrics {
            if namespace.starts_with("AWS/") {
                assert!(
                    aws_metric(namespace, name, dims),
                    "{dashboard}: {namespace} {name} {dims:?} is not a metric AWS publishes so"
                );
                continue;
            }
            let found = emitted.contains(&(namespace.clone(), name.clone(), dims.clone()))
                || (["failed", "parked"].contains(&name.as_str())
                    && emitted.contains(&(namespace.clone(), "processed".into(), dims.clone())));
            assert!(
                found,
                "{dashboard}: {namespace} {name} {dims:?} is never emitted; emitted in {namespace}: {:#?}",
                emitted
                    .iter()
                    .filter(|(n, m, _)| n == namespace && m == name)
                    .map(|(_, _, d)| d)
                    .collect::<Vec<_>>()
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked} metrics checked");

    // The check can fail: a widget naming a function that does not exist is caught.
    let typo: MetricKey = (
        "Bazaar".into(),
        "processed".into(),
        BTreeMap::from([
            ("function".into(), "orders-sagas".into()),
            ("type".into(), "order.placed".into()),
        ]),
    );
    assert!(!emitted.contains(&typo));
}
