//! The message the per-message benchmark pushes through the platform: an `order.placed` of
//! about 1 KB (the envelope as SNS delivers it raw to SQS), and a handler shaped like the
//! saga's: one read, one conditional write, one message sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::envelope::Origin;
use bazaar_contracts::inventory::ReserveStock;
use bazaar_contracts::items::{Line, Sku};
use bazaar_contracts::orders::OrderPlaced;
use bazaar_contracts::{Actor, Envelope, Flags};
use bazaar_platform::clock::SystemClock;
use bazaar_platform::ids::RandomIds;
use bazaar_platform::item::{Condition, Key, item};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::telemetry::{MessageMetrics, MetricsSink};
use bazaar_platform::{Deps, Function, HandlerError, Work};
use serde_json::{Value, json};

use crate::memory::{EncodingPublisher, MemoryTable, NoDeadLetters};

/// Lines in the benchmark's order: enough for a 1 KB envelope.
pub const LINES: usize = 20;

/// Order `n`'s id.
pub fn order_id(n: u64) -> String {
    format!("o-{n:012}")
}

/// The id of the envelope that carries order `n`.
pub fn envelope_id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Where [`Reserve`] keeps an order's state.
pub fn state_key(order_id: &str) -> Key {
    Key::new(format!("ORDER#{order_id}"), "STATE")
}

/// The benchmark's `order.placed` for order `n`.
pub fn order(n: u64) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id(n),
        customer: "customer-1".into(),
        items: (0..LINES)
            .map(|i| Line {
                sku: Sku::parse(&format!("SKU-{i:06}")).expect("a valid sku"),
                quantity: 1 + i as u32,
            })
            .collect(),
        deadline: None,
        source: None,
    }
}

/// Order `n` in its envelope, as JSON text (what an SQS record's body holds).
pub fn envelope_text(n: u64) -> String {
    let origin = Origin {
        id: envelope_id(n),
        source: "bazaar/orders-api".into(),
        time: chrono::Utc::now(),
        correlation_id: format!("00000000-0000-4000-9000-{n:012}"),
        causation_id: Some(format!("00000000-0000-4000-a000-{n:012}")),
        traceparent: None,
        tracestate: None,
        actor: Actor {
            subject: "customer-1".into(),
            roles: vec!["customer".into()],
        },
        flags: Flags::default(),
    };
    Envelope::wrap(&order(n), origin)
        .expect("a valid message")
        .to_json()
}

/// The Lambda SQS event of one record holding order `n`, as the bytes the runtime receives.
pub fn sqs_event_bytes(n: u64) -> Vec<u8> {
    let body = envelope_text(n);
    json!({ "Records": [{
        "messageId": format!("m-{n}"),
        "receiptHandle": format!("r-{n}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1767225600000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1767225600000"
        },
        "messageAttributes": {
            "type": { "stringValue": "order.placed", "dataType": "String", "stringListValues": [], "binaryListValues": [] },
            "id": { "stringValue": envelope_id(n), "dataType": "String", "stringListValues": [], "binaryListValues": [] }
        },
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
        "awsRegion": "us-east-1"
    }]})
    .to_string()
    .into_bytes()
}

/// Reads the order's state, writes it if new, asks for stock: the saga's first step.
pub struct Reserve;

#[async_trait]
impl Handle<OrderPlaced> for Reserve {
    async fn handle(&self, placed: OrderPlaced, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let key = state_key(&placed.order_id);
        if work.table()?.get(&key).await?.is_some() {
            return Ok(());
        }
        work.put(
            item(
                &key,
                json!({ "status": "reserving", "customer": placed.customer, "lines": placed.items.len() }),
            ),
            Some(Condition::NotExists),
        );
        work.send(&ReserveStock {
            order_id: placed.order_id,
            items: placed.items,
        })
    }
}

/// Metrics that go nowhere (the EMF line is the function's stdout on Lambda, not ours).
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn record(&self, metrics: &MessageMetrics) {
        std::hint::black_box(metrics);
    }
}

/// A function's dependencies on the in-memory ports.
pub fn deps(table: Arc<MemoryTable>, publisher: Arc<EncodingPublisher>) -> Arc<Deps> {
    let mut env = BTreeMap::new();
    env.insert(
        "TOPIC_ARN_TASKS".to_string(),
        "arn:aws:sns:us-east-1:123456789012:tasks".to_string(),
    );
    Arc::new(Deps {
        function: "bench".into(),
        table: Some(table),
        tables: BTreeMap::new(),
        publisher,
        dead_letters: Arc::new(NoDeadLetters),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        metrics: Arc::new(NoMetrics),
        keys: None,
        queues: None,
        secrets: Default::default(),
        env,
        harness: Default::default(),
    })
}

/// The benchmark function: [`Reserve`] on `order.placed`.
pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(deps.clone()).sqs(Consumer::new(deps).on::<OrderPlaced, _>(Arc::new(Reserve)))
}

/// Hands the event bytes to the function as the Lambda runtime does; returns the partial
/// batch response.
pub async fn deliver(function: &Function, bytes: &[u8]) -> Value {
    let text = std::str::from_utf8(bytes).expect("an event is UTF-8");
    function
        .invoke_text(text)
        .await
        .expect("the invocation succeeds")
}
