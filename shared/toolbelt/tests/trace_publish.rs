//! `bazaar trace` on a real order saga, and `bazaar publish` of a valid and an invalid message,
//! on the local stack.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bazaar_contracts::Envelope;
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::item::Query;
use bazaar_platform::telemetry::CollectedMetrics;
use bazaar_toolbelt::trace::Handling;
use bazaar_toolbelt::{LocalBackend, Target, publish, render, trace};
use serde_json::{Value, json};

fn setup() -> (Arc<Stack>, Target) {
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::new(),
    )
    .unwrap();
    let stack = Stack::build(
        model.clone(),
        StackOptions::simulated(
            Arc::new(ScriptedFaults::new()),
            Arc::new(CollectedMetrics::default()),
        ),
    )
    .unwrap();
    let target = Target::new(
        model,
        Arc::new(LocalBackend::new(stack.engine().clone(), "test")),
    );
    (stack, target)
}

async fn call(stack: &Stack, method: &str, path: &str, who: (&str, &str), body: Value) -> Value {
    let r = stack
        .http(
            HttpRequest::json(method, path, &body)
                .header(
                    "authorization",
                    &bazaar_embedded::identity::bearer(who.0, &[who.1]),
                )
                .header("idempotency-key", &format!("{method}:{path}")),
        )
        .await;
    assert!(
        r.status < 300,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

async fn archived(target: &Target, message_type: &str) -> Vec<Envelope> {
    let ops = target.backend.table(&target.ops_table().unwrap());
    event_archiver::archived(ops.as_ref(), &[message_type.to_string()])
        .await
        .unwrap()
}

#[tokio::test]
async fn trace_shows_every_message_of_an_order_saga_in_causal_order() {
    let (stack, target) = setup();
    let merchant = ("merchant-1", "merchant");
    call(
        &stack,
        "PUT",
        "/products/MUG-01",
        merchant,
        json!({"title": "Mug", "category": "kitchen"}),
    )
    .await;
    call(
        &stack,
        "PUT",
        "/products/MUG-01/price",
        merchant,
        json!({"amount_cents": 1200, "currency": "EUR"}),
    )
    .await;
    call(
        &stack,
        "PUT",
        "/inventory/MUG-01",
        merchant,
        json!({"available": 5}),
    )
    .await;
    stack.settle().await;
    let order = call(
        &stack,
        "POST",
        "/orders",
        ("customer-1", "customer"),
        json!({"items": [{"sku": "MUG-01", "quantity": 2}], "payment": {"token": "tok_ok"}}),
    )
    .await;
    stack.settle().await;
    let order_id = order["order_id"].as_str().or(order["id"].as_str()).unwrap();
    let placed = archived(&target, "order.placed").await;
    let placed = placed
        .iter()
        .find(|e| e.data.value()["order_id"] == order_id)
        .expect("order.placed archived");
    let flow = placed.correlation_id.clone();
    assert_eq!(flow, order_id, "an order's flow is named by the order's id");

    let nodes = trace::trace(&target, &flow).await.unwrap();
    let types: Vec<&str> = nodes.iter().map(|n| n.message_type.as_str()).collect();
    for t in [
        "order.placed",
        "inventory.stock.reserve",
        "inventory.reserved",
        "payments.payment.charge",
        "payment.captured",
        "order.confirmed",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    // Every archived message of the flow, each after its cause.
    let ops = target.backend.table(&target.ops_table().unwrap());
    let all = ops
        .query_all(Query::partition(format!("CORR#{flow}")))
        .await
        .unwrap();
    assert_eq!(nodes.len(), all.len());
    let position: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    for item in &all {
        let e = Envelope::from_json(item["envelope"].as_str().unwrap()).unwrap();
        if let Some(cause) = e.causation_id.as_deref().and_then(|c| position.get(c)) {
            assert!(
                *cause < position[e.id.as_str()],
                "{} after its cause",
                e.message_type
            );
            assert_eq!(
                nodes[position[e.id.as_str()]].depth,
                nodes[*cause].depth + 1
            );
        }
    }
    assert_eq!(nodes[0].message_type, "order.placed");
    assert_eq!(nodes[0].source, "orders-api");
    let placed_node = &nodes[0];
    assert!(
        placed_node
            .outcomes
            .iter()
            .any(|c| c.function == "orders-saga" && c.handling == Handling::Processed),
        "{:?}",
        placed_node.outcomes
    );
    assert!(
        nodes
            .iter()
            .all(|n| n.outcomes.iter().all(|c| c.handling == Handling::Processed)),
        "the saga is done: everything processed"
    );
    let text = render::trace(&flow, &nodes);
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(
        text.contains("  inventory.stock.reserve"),
        "indented under its cause:\n{text}"
    );
}

#[tokio::test]
async fn publish_wraps_a_valid_payload_and_refuses_a_broken_one() {
    let (stack, target) = setup();
    let p = publish::publish(
        &target,
        "product.withdrawn",
        json!({"sku": "MUG-01", "version": 7}),
        None,
        None,
    )
    .await;
    let p = match p {
        Ok(p) => p,
        Err(e) => panic!("{e:#}"),
    };
    assert_eq!(p.envelope.actor.subject, "system");
    assert_eq!(p.envelope.source, "bazaar/toolbelt");
    assert_eq!(p.envelope.correlation_id, p.envelope.id, "a new flow");
    assert!(p.topic.ends_with("-product"));
    stack.settle().await;
    let archived = archived(&target, "product.withdrawn").await;
    assert_eq!(archived.len(), 1, "consumers of the topic got it");
    assert_eq!(archived[0].id, p.envelope.id);

    let broken = publish::publish(&target, "product.withdrawn", json!({"sku": 5}), None, None)
        .await
        .unwrap_err();
    let text = format!("{broken:#}");
    assert!(text.contains("not a valid product.withdrawn v1"), "{text}");
    let unknown = publish::publish(&target, "order.posted", json!({}), None, None)
        .await
        .unwrap_err();
    assert!(
        format!("{unknown:#}").contains("known types: "),
        "{unknown:#}"
    );
    let version = publish::publish(
        &target,
        "product.withdrawn",
        json!({"sku": "MUG-01", "version": 1}),
        Some(9),
        None,
    )
    .await
    .unwrap_err();
    assert!(format!("{version:#}").contains("version"), "{version:#}");
    stack.settle().await;
    assert_eq!(
        super_archived_count(&target).await,
        1,
        "nothing refused was published"
    );
}

async fn super_archived_count(target: &Target) -> usize {
    archived(target, "product.withdrawn").await.len()
}
