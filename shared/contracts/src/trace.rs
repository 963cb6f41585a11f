//! Trace context: W3C `traceparent` as every Bazaar message carries it, and the *flow* a
//! record keeps so that later steps of a business flow (an order's timeout, its shipment, a
//! carrier's callback) join it instead of starting their own.
//!
//! Every unit of work is one *hop*: a span whose id is derived from what it handles and who
//! handles it ([`SpanId::of_hop`]: the message id and the consumer's name, or the request id
//! and the function's), so that a redelivery of a message is the same span, its log lines
//! carry the same ids, and a tool can name a hop's span from the archive alone. A message
//! carries `00-<trace id>-<span id of the hop that sent it>-01`; the hop that handles it is a
//! span whose parent is that id. The flow's first hop (an HTTP request, a webhook, a
//! schedule) takes the caller's `traceparent` when it sends a valid one, and otherwise starts
//! a trace.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::Flags;

/// A trace's id: 16 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// A span's id: 8 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

impl TraceId {
    /// The trace of a flow that arrived without one (a message from before traces, or
    /// published by hand): derived from its correlation id, so that every hop of it agrees.
    pub fn of_flow(correlation_id: &str) -> TraceId {
        TraceId::from_seed(&format!("flow\0{correlation_id}"))
    }

    /// A new trace, from a unique seed (a new id from the function's id source, so that
    /// tests with sequential ids get reproducible traces).
    pub fn from_seed(seed: &str) -> TraceId {
        let d = digest(&["trace", seed]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        if id == [0; 16] {
            id[15] = 1;
        }
        TraceId(id)
    }

    /// The 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex_of(&self.0)
    }

    /// Reads 32 lowercase hex digits; all zeros is invalid.
    pub fn parse(text: &str) -> Option<TraceId> {
        let mut id = [0u8; 16];
        read_hex(text, &mut id)?;
        (id != [0; 16]).then_some(TraceId(id))
    }
}

impl SpanId {
    /// The span of the hop in which `function` handles `input` (a message id, a request id,
    /// a job's scope). The same input handled again by the same function (a redelivery, a
    /// re-run after a conflict) is the same span.
    pub fn of_hop(input: &str, function: &str) -> SpanId {
        let d = digest(&["span", function, input]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        if id == [0; 8] {
            id[7] = 1;
        }
        SpanId(id)
    }

    /// The 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex_of(&self.0)
    }

    /// Reads 16 lowercase hex digits; all zeros is invalid.
    pub fn parse(text: &str) -> Option<SpanId> {
        let mut id = [0u8; 8];
        read_hex(text, &mut id)?;
        (id != [0; 8]).then_some(SpanId(id))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

fn hex_of(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Lowercase hex only, as the W3C format requires.
fn read_hex(text: &str, out: &mut [u8]) -> Option<()> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return None;
    }
    let value = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = (value(pair[0])? << 4) | value(pair[1])?;
    }
    Some(())
}

/// A parsed `traceparent`: the trace and the span that sent the message (or made the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The sender's span.
    pub parent_id: SpanId,
}

impl TraceParent {
    /// Reads a W3C `traceparent` header: `00-<32 hex>-<16 hex>-<2 hex>`. A later version's
    /// header is read by its first four fields, as the W3C recommendation asks; version `ff`,
    /// upper-case hex, all-zero ids and any other shape are not a trace context (the caller
    /// then starts a trace: a bad header is never an error for the request).
    pub fn parse(text: &str) -> Option<TraceParent> {
        let text = text.trim();
        let mut parts = text.splitn(5, '-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || version == "ff" || read_hex(version, &mut [0u8; 1]).is_none() {
            return None;
        }
        if version == "00" && rest.is_some() {
            return None;
        }
        if flags.len() != 2 || read_hex(flags, &mut [0u8; 1]).is_none() {
            return None;
        }
        Some(TraceParent {
            trace_id: TraceId::parse(trace)?,
            parent_id: SpanId::parse(parent)?,
        })
    }

    /// The header: version 00, sampled.
    pub fn header(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.parent_id)
    }
}

/// One hop's place in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The trace.
    pub trace_id: TraceId,
    /// This hop.
    pub span_id: SpanId,
    /// The hop (or caller) that caused it; none for a trace's first hop.
    pub parent_id: Option<SpanId>,
}

impl Span {
    /// The hop handling `input` in `function`, caused by `parent` (the incoming message's or
    /// request's `traceparent`, when it has a valid one); without one the hop starts the trace
    /// `fallback`.
    pub fn hop(
        input: &str,
        function: &str,
        parent: Option<TraceParent>,
        fallback: TraceId,
    ) -> Span {
        Span {
            trace_id: parent.map(|p| p.trace_id).unwrap_or(fallback),
            span_id: SpanId::of_hop(input, function),
            parent_id: parent.map(|p| p.parent_id),
        }
    }

    /// The `traceparent` of the messages this hop sends.
    pub fn traceparent(&self) -> String {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
        }
        .header()
    }
}

/// The `tracestate` of a message sent by a hop that joined its flow from outside it (a
/// shipment request, a carrier's callback, a timeout): `bazaar=<span id>` names that hop's
/// parent (the hop that wrote the record it joined by), which the message that caused the hop
/// cannot tell, being outside the flow. A tool rebuilding the flow's tree from its messages
/// reads it ([`joined_parent`]).
pub fn joined_state(parent: SpanId) -> String {
    format!("bazaar={parent}")
}

/// The parent named by a `tracestate` that [`joined_state`] wrote (other vendors' entries are
/// skipped).
pub fn joined_parent(tracestate: &str) -> Option<SpanId> {
    tracestate
        .split(',')
        .filter_map(|entry| entry.trim().split_once('='))
        .find(|(key, _)| *key == "bazaar")
        .and_then(|(_, value)| SpanId::parse(value))
}

/// What a record keeps of the flow that made it, so that a later step acting on the record
/// (an order's timeout, a cancellation, a shipment) joins that flow: its messages keep the
/// correlation id, the trace and the flags. Stored as a small JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// The flow's correlation id.
    pub correlation_id: String,
    /// The `traceparent` of the hop that wrote the record: a later step's hop is its child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The flow's flags.
    #[serde(default, skip_serializing_if = "Flags::is_empty")]
    pub flags: Flags,
}

impl Flow {
    /// The trace context a joining hop becomes the child of.
    pub fn parent(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }

    /// The flow's trace.
    pub fn trace_id(&self) -> TraceId {
        self.parent()
            .map(|p| p.trace_id)
            .unwrap_or_else(|| TraceId::of_flow(&self.correlation_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_reads_and_writes_back() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = TraceParent::parse(text).unwrap();
        assert_eq!(p.trace_id.hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id.hex(), "00f067aa0ba902b7");
        assert_eq!(p.header(), text);
        // Unsampled is read too; Bazaar writes sampled.
        assert!(
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").is_some()
        );
        // A later version is read by its first fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
                .is_some()
        );
    }

    #[test]
    fn a_malformed_traceparent_is_no_context() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4é36-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_hop_is_the_same_span_every_time_it_runs_and_differs_by_consumer() {
        assert_eq!(
            SpanId::of_hop("m-1", "orders-saga"),
            SpanId::of_hop("m-1", "orders-saga")
        );
        assert_ne!(
            SpanId::of_hop("m-1", "orders-saga"),
            SpanId::of_hop("m-1", "notifier")
        );
        assert_ne!(
            SpanId::of_hop("m-1", "orders-saga"),
            SpanId::of_hop("m-2", "orders-saga")
        );
    }

    #[test]
    fn a_hop_continues_its_parents_trace_or_starts_the_fallback() {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let fallback = TraceId::of_flow("order-1");
        let child = Span::hop("m-1", "orders-saga", parent, fallback);
        assert_eq!(child.trace_id, parent.unwrap().trace_id);
        assert_eq!(child.parent_id, Some(parent.unwrap().parent_id));
        let sent = TraceParent::parse(&child.traceparent()).unwrap();
        assert_eq!(sent.parent_id, child.span_id);

        let root = Span::hop("m-1", "orders-saga", None, fallback);
        assert_eq!(root.trace_id, fallback);
        assert_eq!(root.parent_id, None);
    }

    #[test]
    fn a_joined_hops_parent_reads_back_from_its_trace_state() {
        let parent = SpanId::of_hop("m-1", "orders-api");
        assert_eq!(joined_parent(&joined_state(parent)), Some(parent));
        assert_eq!(
            joined_parent(&format!("other=x, {}", joined_state(parent))),
            Some(parent)
        );
        assert_eq!(joined_parent("other=x"), None);
        assert_eq!(joined_parent("bazaar=nothex"), None);
    }

    #[test]
    fn a_flow_round_trips_as_json_and_knows_its_trace() {
        let flow = Flow {
            correlation_id: "order-1".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            flags: Flags::default(),
        };
        let text = serde_json::to_string(&flow).unwrap();
        assert_eq!(serde_json::from_str::<Flow>(&text).unwrap(), flow);
        assert_eq!(flow.trace_id().hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            Flow {
                traceparent: None,
                ..flow
            }
            .trace_id(),
            TraceId::of_flow("order-1")
        );
    }
}
