//! One order through every hop, on the local stack: a storefront order shipped and sent back
//! (its refund), a storefront order that times out, and an agora order. Each flow is named by
//! its order's id, carries one trace id in every envelope and in every log line of its hops,
//! its spans form one tree (later steps that joined from outside, such as the timeout, the
//! shipment request and the carrier's callback, included), and `bazaar trace <order id>`
//! prints that tree.

#[path = "../../localstack/tests/common.rs"]
mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bazaar_channels::{ChannelId, Purchase, Wanted};
use bazaar_contracts::Envelope;
use bazaar_fake_marketplaces::Call;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_platform::item::Query;
use bazaar_toolbelt::{LocalBackend, Target, render, trace};
use chrono::Duration;
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

/// Every log line the functions write, as JSON, for the whole test binary.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(move || Sink(sink.clone()))
            .with_max_level(tracing::Level::INFO)
            .init();
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines() -> Vec<Value> {
    let text = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn target(s: &TestStack) -> Target {
    Target::new(
        s.stack.model().clone(),
        Arc::new(LocalBackend::new(s.stack.engine().clone(), "test")),
    )
}

/// What a flow must show: one trace in every envelope, spans forming one tree, log lines of
/// the flow in that trace and on those spans, and the printed tree. Returns the printed tree.
async fn check_flow(s: &TestStack, order_id: &str, must_have: &[&str]) -> String {
    let target = target(s);
    let resolved = trace::resolve(&target, order_id)
        .await
        .unwrap()
        .expect("the order's flow is archived");
    assert_eq!(
        resolved.correlation_id, order_id,
        "an order's flow is named by its id"
    );
    let nodes = trace::trace(&target, order_id).await.unwrap();
    let types: Vec<&str> = nodes.iter().map(|n| n.message_type.as_str()).collect();
    for t in must_have {
        assert!(
            types.contains(t),
            "{t} in the flow of {order_id}: {types:?}"
        );
    }

    // One trace id in every archived envelope of the flow.
    let ops = target.backend.table(&target.ops_table().unwrap());
    let archived: Vec<Envelope> = ops
        .query_all(Query::partition(format!("CORR#{order_id}")))
        .await
        .unwrap()
        .iter()
        .map(|i| Envelope::from_json(i["envelope"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(archived.len(), nodes.len());
    let traces: BTreeSet<String> = archived
        .iter()
        .map(|e| {
            e.trace_parent()
                .unwrap_or_else(|| panic!("{} without a trace context", e.message_type))
                .trace_id
                .hex()
        })
        .collect();
    assert_eq!(
        traces.len(),
        1,
        "one trace in the flow of {order_id}: {traces:?}"
    );
    let trace_id = traces.into_iter().next().unwrap();

    // The spans form one tree: one root, every other span's parent among them.
    let export = trace::otlp(order_id, &nodes);
    let spans: Vec<&Value> = export["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"][0]["spans"].as_array().unwrap())
        .collect();
    let ids: BTreeSet<&str> = spans
        .iter()
        .map(|s| s["spanId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    let roots: Vec<&&Value> = spans
        .iter()
        .filter(|s| s["parentSpanId"].as_str().is_none_or(|p| !ids.contains(p)))
        .collect();
    assert_eq!(roots.len(), 1, "one root span in {order_id}: {roots:#?}");
    assert!(spans.iter().all(|s| s["traceId"] == trace_id.as_str()));
    for s in &spans {
        let (start, end) = (
            s["startTimeUnixNano"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
            s["endTimeUnixNano"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
        assert!(start <= end, "{s}");
    }

    // Every log line of the flow's hops carries its trace, and a span of the tree.
    let lines = log_lines();
    let of_flow: Vec<&Value> = lines
        .iter()
        .filter(|l| l["correlation_id"] == order_id)
        .collect();
    assert!(!of_flow.is_empty(), "log lines of {order_id}");
    for l in &of_flow {
        assert_eq!(l["trace_id"], trace_id.as_str(), "{l}");
    }
    for l in lines.iter().filter(|l| l["trace_id"] == trace_id.as_str()) {
        let span = l["span_id"].as_str().unwrap();
        assert!(ids.contains(span), "a log line on a span of the tree: {l}");
    }

    let text = render::trace(order_id, &nodes);
    assert!(text.contains(&format!("trace {trace_id}")), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    text
}

#[tokio::test]
async fn an_order_is_one_trace_through_every_hop_its_timeout_shipment_refund_and_channel() {
    logs();
    let s = stack();
    s.set_stock("MUG-01", 10).await;

    // Shipped and sent back: the shipment request and the carrier's callbacks join the flow,
    // and the refund is in it.
    let shipped = s
        .placed(
            "customer-1",
            "k-ship",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    s.stack.settle().await;
    assert_eq!(s.order(&shipped).await["status"], "confirmed");
    let merchant = bearer("merchant-1", "merchant");
    let open = s
        .stack
        .http(HttpRequest::get("/fulfilments?status=open").header("authorization", &merchant))
        .await
        .json();
    let fulfilment = open["fulfilments"][0]["fulfilment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .stack
        .http(
            HttpRequest::json(
                "POST",
                &format!("/fulfilments/{fulfilment}/ship"),
                &json!({ "carrier": "fake-carrier", "tracking_code": "TRK-T1" }),
            )
            .header("authorization", &merchant)
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stack.settle().await;
    assert_eq!(s.carrier_says("c-1", "TRK-T1", "in_transit").await, 202);
    s.stack.settle().await;
    assert_eq!(
        s.carrier_says("c-2", "TRK-T1", "returned_to_sender").await,
        202
    );
    s.stack.settle().await;
    assert_eq!(s.order(&shipped).await["status"], "returned");
    let text = check_flow(
        &s,
        &shipped,
        &[
            "order.placed",
            "inventory.stock.reserve",
            "payments.payment.charge",
            "order.confirmed",
            "fulfilment.shipped",
            "order.shipped",
            "fulfilment.returned",
            "payments.payment.refund",
            "payment.refunded",
            "order.returned",
        ],
    )
    .await;
    // The shipment, requested from outside the flow, hangs under the confirmation it follows.
    let shipped_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("fulfilment.shipped"))
        .unwrap();
    assert!(shipped_line.starts_with("  "), "under its parent:\n{text}");
    assert!(text.contains("a later step, joining the flow"), "{text}");
    assert!(text.contains("queued"), "hop times shown:\n{text}");

    // A payment the provider takes an hour to decide: the order's timeout is in its flow.
    s.provider().set_callback_delay(Duration::hours(1));
    let timed_out = s
        .placed_paying(
            "customer-2",
            "k-late",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
            "tok_async",
        )
        .await;
    s.stack.run_for(Duration::minutes(16)).await;
    assert_eq!(s.order(&timed_out).await["cancel_reason"], "timeout");
    let text = check_flow(
        &s,
        &timed_out,
        &["order.placed", "orders.order.expire", "order.cancelled"],
    )
    .await;
    assert!(text.contains("orders.order.expire"), "{text}");
    println!("{text}");

    // A channel's order: one trace from agora's webhook to the answer. (The same stack: the
    // stacks of one test binary number their ids alike, so two would share trace ids.)
    let m = s
        .stack
        .marketplaces()
        .expect("the stack runs the marketplaces");
    let item = Wanted {
        sku: "MUG-01".into(),
        active: true,
        title: "Blue mug".into(),
        description: "Holds tea.".into(),
        category: "kitchen".into(),
        images: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity: 5,
    };
    let r = m.handle(
        &Call::new("PUT", "/agora/api/items/MUG-01")
            .bearer(&m.accounts().agora_key)
            .json(&item.to_agora()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let external = m
        .buy(
            ChannelId::Agora,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 1,
            },
        )
        .unwrap();
    s.stack.run_for(Duration::minutes(2)).await;
    let order_id = bazaar_orders::keys::channel_order_id("agora", &external);
    assert_eq!(s.order(&order_id).await["status"], "confirmed");
    check_flow(
        &s,
        &order_id,
        &[
            "sale.placed",
            "order.placed",
            "inventory.stock.reserve",
            "order.confirmed",
        ],
    )
    .await;

    // The channel's own id, with or without the channel's name, finds the same flow.
    let target = target(&s);
    for what in [external.clone(), format!("agora:{external}")] {
        let resolved = trace::resolve(&target, &what).await.unwrap().unwrap();
        assert_eq!(resolved.correlation_id, order_id, "{what}");
    }
    assert_eq!(
        trace::resolve(&target, "no-such-thing").await.unwrap(),
        None
    );

    // A sku: every flow that touched it, the orders that bought it among them.
    assert_eq!(trace::resolve(&target, "MUG-01").await.unwrap(), None);
    let flows = trace::flows_of_sku(&target, "MUG-01").await.unwrap();
    let ids: Vec<&str> = flows.iter().map(|f| f.correlation_id.as_str()).collect();
    for order in [shipped.as_str(), timed_out.as_str(), order_id.as_str()] {
        assert!(ids.contains(&order), "{order} in {ids:?}");
    }
    assert!(
        flows.iter().any(|f| f.first_type == "product.updated"),
        "its product's flows too: {flows:?}"
    );
    assert_eq!(ids.len(), flows.len(), "each flow once");
    let text = render::sku_flows("MUG-01", &flows);
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(
        trace::flows_of_sku(&target, "NO-SUCH-SKU")
            .await
            .unwrap()
            .is_empty()
    );
}
