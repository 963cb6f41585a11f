//! `bazaar trace`: every archived message of one flow, as a tree of causes, with what each
//! consumer made of it and how long it waited in its queue and ran; and the same flow as
//! OpenTelemetry spans (OTLP JSON) for a trace viewer.
//!
//! The archive (the event archiver's `CORR#<correlation id>` partition) says which messages
//! the flow produced. Who should have consumed each one follows from the template's
//! subscriptions and filter policies; whether they did, from their inbox records (a consumer
//! records every envelope it processed, with when it started and finished; a self-guarded
//! one lists them in hop records, `bazaar_platform::hops`) and from their DLQs.
//!
//! Spans: every hop (a consumer handling a message, a request, a scheduled run) is a span
//! whose id follows from what it handled and who handled it
//! ([`bazaar_contracts::trace::SpanId::of_hop`]); a message's `traceparent` names the hop
//! that sent it. A hop that joined the flow from outside it (a shipment request, a carrier's
//! callback, a timeout) is named by its message's causation id and source, and its parent by
//! the message's `tracestate`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use bazaar_contracts::Envelope;
use bazaar_contracts::sales::Source;
use bazaar_contracts::trace::{SpanId, TraceId, TraceParent, joined_parent};
use bazaar_embedded::filter::{self, Attribute};
use bazaar_platform::hops;
use bazaar_platform::item::Query;
use bazaar_platform::outbox::inbox_key;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::dlq::{self, Letter};
use crate::target::Target;

/// What one consumer made of a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Handling {
    /// Its inbox records the message.
    Processed,
    /// It parked the message (or the redrive policy did): the reason.
    Parked(String),
    /// Neither yet: in its queue, or in flight.
    Pending,
}

/// One consumer's hop for one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Consumed {
    /// The consumer, by function name.
    pub function: String,
    /// What it made of the message.
    pub handling: Handling,
    /// When its handling began (from its inbox record).
    pub started_at: Option<DateTime<Utc>>,
    /// When it committed (from its inbox record).
    pub processed_at: Option<DateTime<Utc>>,
}

impl Consumed {
    /// Time in the queue: from the message's creation to the start of its handling (the
    /// producer's publish, the topic, the queue, any batching window and retries).
    pub fn waited(&self, sent: DateTime<Utc>) -> Option<chrono::Duration> {
        self.started_at.map(|s| s - sent)
    }

    /// Time in the handler, to its commit.
    pub fn ran(&self) -> Option<chrono::Duration> {
        Some(self.processed_at? - self.started_at?)
    }
}

/// One message of the flow.
#[derive(Debug, Clone)]
pub struct Node {
    /// Depth in the tree of causes (0 for a message caused by a request).
    pub depth: usize,
    /// The envelope id.
    pub id: String,
    /// The type.
    pub message_type: String,
    /// When it was produced.
    pub time: DateTime<Utc>,
    /// The producing function.
    pub source: String,
    /// The message (or request) that caused it.
    pub causation_id: Option<String>,
    /// Its trace context: the trace, and the hop that sent it.
    pub trace: Option<TraceParent>,
    /// Set when the hop that sent it joined the flow from outside it: that hop's parent.
    pub joined_parent: Option<SpanId>,
    /// The consumers the template subscribes to it, with what they did.
    pub outcomes: Vec<Consumed>,
}

impl Node {
    /// True when the hop that sent it acted on the flow from outside it (its cause is not
    /// one of the flow's messages).
    pub fn joined(&self) -> bool {
        self.joined_parent.is_some()
    }
}

/// What `bazaar trace` was given, resolved to a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The flow's correlation id.
    pub correlation_id: String,
    /// How the argument was read (`order id`, `agora order ag-1`), for the header.
    pub how: String,
}

/// The function that archives every message (and so is no consumer worth listing).
const ARCHIVER: &str = "event-archiver";

/// The channels whose external order ids `bazaar trace` accepts.
const CHANNELS: [&str; 2] = ["agora", "souk"];

/// Reads what a person holds as a flow: a correlation id or an order id (an order's flow is
/// named by its id), or a channel's order id (`ag-1`, or `agora:ag-1` when two channels could
/// share it), which names Bazaar's order. None when nothing is archived under any reading.
pub async fn resolve(target: &Target, what: &str) -> anyhow::Result<Option<Resolved>> {
    let archive = target.backend.table(&target.ops_table()?);
    let has = async |correlation_id: &str| -> anyhow::Result<bool> {
        Ok(!archive
            .query(Query::partition(format!("CORR#{correlation_id}")).limit(1))
            .await
            .context("reading the archive")?
            .items
            .is_empty())
    };
    if has(what).await? {
        return Ok(Some(Resolved {
            correlation_id: what.to_string(),
            how: "order or correlation id".into(),
        }));
    }
    let (channels, external_id): (Vec<&str>, &str) = match what.split_once(':') {
        Some((channel, id)) if CHANNELS.contains(&channel) => (vec![channel], id),
        _ => (CHANNELS.to_vec(), what),
    };
    for channel in channels {
        let order_id = Source {
            channel: channel.to_string(),
            external_id: external_id.to_string(),
        }
        .order_id();
        if has(&order_id).await? {
            return Ok(Some(Resolved {
                correlation_id: order_id,
                how: format!("{channel} order {external_id}"),
            }));
        }
    }
    Ok(None)
}

/// A flow that touched a sku.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuFlow {
    /// The flow's correlation id (an order's id for an order).
    pub correlation_id: String,
    /// Its first message about the sku.
    pub first_type: String,
    /// When that message was made (RFC 3339).
    pub time: String,
}

/// The flows that touched `sku` (its product, price and stock changes, channel sales, the
/// orders that bought it), oldest first; empty when the text is no sku or the archive has none.
pub async fn flows_of_sku(target: &Target, sku: &str) -> anyhow::Result<Vec<SkuFlow>> {
    if bazaar_contracts::Sku::parse(sku).is_err() {
        return Ok(Vec::new());
    }
    let archive = target.backend.table(&target.ops_table()?);
    Ok(event_archiver::flows_of_sku(archive.as_ref(), sku)
        .await
        .context("reading the archive")?
        .into_iter()
        .map(|(correlation_id, first_type, time)| SkuFlow {
            correlation_id,
            first_type,
            time,
        })
        .collect())
}

/// The flow of `correlation_id`, in causal order: each message after its cause, siblings by
/// time. A message sent by a hop that joined the flow from outside it goes under the message
/// whose handling that hop was parented on.
pub async fn trace(target: &Target, correlation_id: &str) -> anyhow::Result<Vec<Node>> {
    let archive = target.backend.table(&target.ops_table()?);
    let items = event_archiver::flow(archive.as_ref(), correlation_id)
        .await
        .context("reading the archive")?;
    let mut envelopes = Vec::new();
    for item in items {
        let text = item
            .get("envelope")
            .and_then(Value::as_str)
            .context("an archive record without its envelope")?;
        envelopes.push(Envelope::from_json(text).context("an unreadable archived envelope")?);
    }
    envelopes.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    let mut parked: HashMap<String, Vec<Letter>> = HashMap::new();
    let mut consumed: HashMap<String, Vec<Consumed>> = HashMap::new();
    for e in &envelopes {
        consumed.insert(e.id.clone(), outcomes(target, e, &mut parked).await?);
    }
    // Which message each hop handled, by the hop's span.
    let mut handled_in: HashMap<SpanId, &str> = HashMap::new();
    for e in &envelopes {
        for c in &consumed[&e.id] {
            handled_in.insert(SpanId::of_hop(&e.id, &c.function), e.id.as_str());
        }
    }
    let ids: BTreeSet<&str> = envelopes.iter().map(|e| e.id.as_str()).collect();
    let mut children: BTreeMap<Option<&str>, Vec<&Envelope>> = BTreeMap::new();
    for e in &envelopes {
        let parent = match e.causation_id.as_deref().filter(|c| ids.contains(c)) {
            Some(cause) => Some(cause),
            None => e
                .tracestate
                .as_deref()
                .and_then(joined_parent)
                .and_then(|span| handled_in.get(&span).copied()),
        };
        children.entry(parent).or_default().push(e);
    }
    let mut nodes = Vec::new();
    let mut stack: Vec<(usize, &Envelope)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|e| (0, *e)).collect())
        .unwrap_or_default();
    while let Some((depth, e)) = stack.pop() {
        let cause_inside = e.causation_id.as_deref().is_some_and(|c| ids.contains(c));
        nodes.push(Node {
            depth,
            id: e.id.clone(),
            message_type: e.message_type.clone(),
            time: e.time,
            source: function_of(e).to_string(),
            causation_id: e.causation_id.clone(),
            trace: e.trace_parent(),
            joined_parent: if cause_inside {
                None
            } else {
                e.tracestate.as_deref().and_then(joined_parent)
            },
            outcomes: consumed.remove(&e.id).unwrap_or_default(),
        });
        if let Some(kids) = children.get(&Some(e.id.as_str())) {
            stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
        }
    }
    Ok(nodes)
}

fn function_of(e: &Envelope) -> &str {
    e.source.strip_prefix("bazaar/").unwrap_or(&e.source)
}

fn nanos(t: DateTime<Utc>) -> String {
    t.timestamp_nanos_opt().unwrap_or(0).to_string()
}

fn attribute(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

/// One span of the export, before it is grouped by service.
struct SpanOut {
    service: String,
    span: Value,
}

/// The flow as OpenTelemetry spans, in OTLP JSON (`ExportTraceServiceRequest`, ids in hex as
/// the OTLP JSON encoding has them), one resource per function so that a viewer shows each
/// as a service: a span per consumer hop (kind consumer, from the start of its handling to
/// its commit), and one per hop that sent a message without being a consumer hop of the
/// flow (a request, a scheduled run, a hop that joined from outside; kind server, at the
/// time of its first message). Jaeger and other viewers that read OTLP JSON open it.
pub fn otlp(correlation_id: &str, nodes: &[Node]) -> Value {
    let mut spans: Vec<SpanOut> = Vec::new();
    let mut seen: BTreeSet<SpanId> = BTreeSet::new();
    for n in nodes {
        let Some(sent) = n.trace else { continue };
        for c in &n.outcomes {
            if c.handling == Handling::Pending {
                continue;
            }
            let span_id = SpanId::of_hop(&n.id, &c.function);
            if !seen.insert(span_id) {
                continue;
            }
            let start = c.started_at.unwrap_or(n.time);
            let end = c.processed_at.unwrap_or(start);
            let status = match &c.handling {
                Handling::Parked(reason) => json!({ "code": 2, "message": reason }),
                _ => json!({ "code": 1 }),
            };
            spans.push(SpanOut {
                service: c.function.clone(),
                span: json!({
                    "traceId": sent.trace_id.hex(),
                    "spanId": span_id.hex(),
                    "parentSpanId": sent.parent_id.hex(),
                    "name": format!("{} {}", c.function, n.message_type),
                    "kind": 5,
                    "startTimeUnixNano": nanos(start),
                    "endTimeUnixNano": nanos(end),
                    "attributes": [
                        attribute("messaging.message.id", &n.id),
                        attribute("bazaar.type", &n.message_type),
                        attribute("bazaar.correlation_id", correlation_id),
                    ],
                    "status": status,
                }),
            });
        }
    }
    // The archiver's hop of every message (it keeps no inbox: no times but the message's).
    for n in nodes {
        let Some(sent) = n.trace else { continue };
        let span_id = SpanId::of_hop(&n.id, ARCHIVER);
        if !seen.insert(span_id) {
            continue;
        }
        spans.push(SpanOut {
            service: ARCHIVER.to_string(),
            span: json!({
                "traceId": sent.trace_id.hex(),
                "spanId": span_id.hex(),
                "parentSpanId": sent.parent_id.hex(),
                "name": format!("{ARCHIVER} {}", n.message_type),
                "kind": 5,
                "startTimeUnixNano": nanos(n.time),
                "endTimeUnixNano": nanos(n.time),
                "attributes": [
                    attribute("messaging.message.id", &n.id),
                    attribute("bazaar.type", &n.message_type),
                    attribute("bazaar.correlation_id", correlation_id),
                ],
                "status": { "code": 1 },
            }),
        });
    }
    // Hops that sent the flow's messages but handled nothing of it: requests, schedules,
    // joined hops. Named by the span their messages name; their parent is the one a joined
    // hop's message carries, if any.
    for n in nodes {
        let Some(sent) = n.trace else { continue };
        if !seen.insert(sent.parent_id) {
            continue;
        }
        let mut span = json!({
            "traceId": sent.trace_id.hex(),
            "spanId": sent.parent_id.hex(),
            "name": format!("{} {}", n.source, n.causation_id.as_deref().unwrap_or("")),
            "kind": 2,
            "startTimeUnixNano": nanos(n.time),
            "endTimeUnixNano": nanos(n.time),
            "attributes": [
                attribute("bazaar.cause", n.causation_id.as_deref().unwrap_or("")),
                attribute("bazaar.correlation_id", correlation_id),
            ],
            "status": { "code": 1 },
        });
        if let Some(parent) = n.joined_parent {
            span["parentSpanId"] = json!(parent.hex());
        }
        spans.push(SpanOut {
            service: n.source.clone(),
            span,
        });
    }
    let mut by_service: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in spans {
        by_service.entry(s.service).or_default().push(s.span);
    }
    json!({
        "resourceSpans": by_service.into_iter().map(|(service, spans)| json!({
            "resource": { "attributes": [attribute("service.name", &service), attribute("service.namespace", "bazaar")] },
            "scopeSpans": [{ "scope": { "name": "bazaar-toolbelt" }, "spans": spans }],
        })).collect::<Vec<_>>(),
    })
}

/// The traces a flow's messages carry (one, unless messages from before traces were kept,
/// or published by hand, are in it).
pub fn trace_ids(nodes: &[Node]) -> BTreeSet<TraceId> {
    nodes
        .iter()
        .filter_map(|n| n.trace.map(|t| t.trace_id))
        .collect()
}

async fn outcomes(
    target: &Target,
    e: &Envelope,
    parked: &mut HashMap<String, Vec<Letter>>,
) -> anyhow::Result<Vec<Consumed>> {
    let Some(topic) = target.topic_name(e.topic()) else {
        return Ok(Vec::new());
    };
    let attributes: BTreeMap<String, Attribute> = e
        .attributes()
        .into_iter()
        .map(|(k, v)| (k, Attribute::string(v)))
        .collect();
    let body = e.to_json();
    let mut out = Vec::new();
    for s in target
        .model
        .subscriptions
        .iter()
        .filter(|s| s.topic == topic)
    {
        if let Some(policy) = &s.filter_policy
            && !filter::matches(policy, s.scope, &attributes, &body)
        {
            continue;
        }
        let Some(consumer) = target.consumer_of(&s.queue) else {
            continue;
        };
        // The archiver records everything: that is how the message is in this list.
        if consumer.name == ARCHIVER {
            continue;
        }
        let (record, hop) = match &consumer.table {
            Some(table) => {
                let table = target.backend.table(table);
                match table.get(&inbox_key(&consumer.name, &e.id)).await? {
                    Some(record) => (Some(record), None),
                    // A self-guarded consumer keeps no inbox record: its batch's hop record
                    // lists the message.
                    None => (
                        None,
                        hops::find(table.as_ref(), &consumer.name, &e.id, e.time).await?,
                    ),
                }
            }
            None => (None, None),
        };
        let time = |field: &str| {
            record
                .as_ref()
                .and_then(|r| r.get(field))
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc())
        };
        let (started_at, processed_at) = match hop {
            Some((started, processed)) => (Some(started), Some(processed)),
            None => (time("started_at"), time("processed_at")),
        };
        let handling = if record.is_some() || hop.is_some() {
            Handling::Processed
        } else {
            let dlq = target.dead_letter_queue(&s.queue)?;
            if !parked.contains_key(&dlq.name) {
                parked.insert(dlq.name.clone(), dlq::letters(target, &dlq).await?);
            }
            match parked[&dlq.name]
                .iter()
                .find(|l| l.envelope_id.as_deref() == Some(e.id.as_str()))
            {
                Some(l) => Handling::Parked(l.reason.clone()),
                None => Handling::Pending,
            }
        };
        out.push(Consumed {
            function: consumer.name,
            handling,
            started_at,
            processed_at,
        });
    }
    out.sort();
    Ok(out)
}
