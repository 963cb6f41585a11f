//! The CloudEvents 1.0 envelope (JSON structured mode) every Bazaar message travels in.
//!
//! Standard attributes: `specversion`, `id`, `source`, `type`, `time`, `datacontenttype`, `data`.
//! Bazaar's extension attributes (CloudEvents extension names are lowercase alphanumerics and
//! their values scalars, so structured values are flattened into strings):
//!
//! | attribute | meaning |
//! |---|---|
//! | `dataversion` | the contract version of `data` (an integer) |
//! | `correlationid` | one id per business flow, copied to every message the flow causes |
//! | `causationid` | the `id` of the message that caused this one (absent for a flow's first) |
//! | `traceparent` | W3C trace context: the trace, and the span of the hop that sent the message |
//! | `tracestate` | W3C trace state: `bazaar=<span id>` names the parent of the sending hop when that hop joined the flow from outside it (see [`crate::trace`]) |
//! | `actor` | the subject the work is done for (`customer-1`, `system`) |
//! | `actorroles` | that subject's roles, space separated (`customer`) |
//! | `flags` | feature flags bundled into the message: `name=value` pairs, comma separated |
//!
//! Consumers deduplicate on `id`: it is set once by the producer and kept when a message is
//! re-sent, redriven or replayed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::message::{DecodeError, Kind, Message};
use crate::names;

/// The CloudEvents spec version Bazaar speaks.
pub const SPEC_VERSION: &str = "1.0";

/// A role identity grants, and what the routes check. Roles travel as text (in tokens and
/// envelopes, where an unknown one is kept); code compares this enum, never the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Buys: places and reads their own orders.
    Customer,
    /// Sells: describes, prices and stocks the skus it owns.
    Merchant,
    /// Runs the marketplace: reads any order.
    Operator,
    /// Work nobody asked for directly (schedules, the operator's tools).
    System,
}

impl Role {
    /// The role as text, as tokens and envelopes carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Merchant => "merchant",
            Role::Operator => "operator",
            Role::System => "system",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a message is done for: a subject and its roles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    /// The subject (a user name, or `system` for work nobody asked for directly).
    pub subject: String,
    /// Roles as granted by identity: `customer`, `merchant`, `operator`, `system`.
    pub roles: Vec<String>,
}

impl Actor {
    /// The actor of scheduled and operator-tool work.
    pub fn system() -> Actor {
        Actor {
            subject: "system".into(),
            roles: vec![Role::System.as_str().into()],
        }
    }

    /// An actor with the given subject and roles.
    pub fn new(subject: impl Into<String>, roles: &[&str]) -> Actor {
        Actor {
            subject: subject.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// True when the actor holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }
}

/// The most flags one flow carries.
pub const MAX_FLAGS: usize = 16;
/// The longest flag name or value.
pub const MAX_FLAG_TEXT: usize = 64;

/// Feature flags travelling with a flow, so that consumers need not look them up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags(pub BTreeMap<String, String>);

impl Flags {
    /// The flow is a test (a smoke test on production): it runs everywhere for real, but
    /// payments charge in the provider's test mode, notifications are marked test and reach
    /// no customer, and business metrics leave it out.
    pub const TEST_ORDER: &'static str = "test-order";
    /// `GET /search` ranks by relevance (words in the title first) instead of sku order.
    pub const SEARCH_RANKING_V2: &'static str = "search-ranking-v2";

    /// True for a test flow ([`Flags::TEST_ORDER`]).
    pub fn test_order(&self) -> bool {
        self.is_on(Self::TEST_ORDER)
    }

    /// The value of a flag, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// True when the flag is set to `true` (or set without a value).
    pub fn is_on(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The flags as the envelope writes them (`name=value` pairs, comma separated), or none.
    pub fn encode(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// Reads flags as the envelope writes them; a flag without `=` is `true`.
    pub fn decode(text: &str) -> Result<Flags, EnvelopeError> {
        let word = |w: &str, dot: bool| {
            !w.is_empty()
                && w.len() <= MAX_FLAG_TEXT
                && w.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (dot && b == b'.')
                })
        };
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, "true"));
            let (k, v) = (k.trim(), v.trim());
            if !word(k, false) {
                return Err(EnvelopeError::Invalid(format!(
                    "flag name {k:?} is not a word (letters, digits, - and _, at most {MAX_FLAG_TEXT})"
                )));
            }
            if !word(v, true) {
                return Err(EnvelopeError::Invalid(format!(
                    "the value of flag {k} is not a word (letters, digits, -, _ and ., at most {MAX_FLAG_TEXT})"
                )));
            }
            map.insert(k.to_string(), v.to_string());
        }
        if map.len() > MAX_FLAGS {
            return Err(EnvelopeError::Invalid(format!(
                "{} flags; at most {MAX_FLAGS}",
                map.len()
            )));
        }
        Ok(Flags(map))
    }
}

/// Stored (in a record's [`crate::trace::Flow`]) as the envelope writes them.
impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode().unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Flags, D::Error> {
        let text = String::deserialize(deserializer)?;
        Flags::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// The payload of an envelope, kept as the JSON text it arrived (or was written) in: a
/// consumer reads it once, straight into the contract type it expects, and a producer writes
/// it once; neither builds a JSON tree in between. Tools and tests that want to look inside
/// use [`Data::value`].
#[derive(Clone)]
pub struct Data(Box<RawValue>);

impl Data {
    /// The JSON form of `payload`.
    pub fn new<T: Serialize + ?Sized>(payload: &T) -> Result<Data, serde_json::Error> {
        serde_json::value::to_raw_value(payload).map(Data)
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The payload as a JSON tree.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("raw JSON text always parses")
    }
}

impl Default for Data {
    /// `null`, the payload of an envelope that has none.
    fn default() -> Data {
        Data::from(Value::Null)
    }
}

impl From<Value> for Data {
    fn from(value: Value) -> Data {
        Data::new(&value).expect("a JSON value always serializes")
    }
}

/// Equal when the JSON is: the same text, or the same tree written differently.
impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        self.json() == other.json() || self.value() == other.value()
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json())
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Data, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Data)
    }
}

/// A message in its envelope. `data` is kept as JSON until a consumer decodes it into the
/// contract type it expects ([`Envelope::decode`]), so that routing and deduplication never
/// depend on the payload's shape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Wire")]
pub struct Envelope {
    /// Unique per message, set once by its producer; the deduplication key.
    pub id: String,
    /// The producing function, as a URI reference (`bazaar/orders-api`).
    pub source: String,
    /// The message type (`order.placed`).
    pub message_type: String,
    /// The contract version of `data`.
    pub data_version: u32,
    /// When the producer created the message; the start of its *critical time*.
    pub time: DateTime<Utc>,
    /// One id per business flow.
    pub correlation_id: String,
    /// The id of the message (or request) that caused this one.
    pub causation_id: Option<String>,
    /// W3C trace context: the trace and the sending hop's span.
    pub traceparent: Option<String>,
    /// W3C trace state (see [`crate::trace::joined_parent`]).
    pub tracestate: Option<String>,
    /// Who the work is done for.
    pub actor: Actor,
    /// Feature flags of the flow.
    pub flags: Flags,
    /// The payload, in the JSON form of the contract `message_type` at `data_version`.
    pub data: Data,
}

/// What the producer knows about where a message comes from: everything but the payload.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The id to give the new message.
    pub id: String,
    /// The producing function.
    pub source: String,
    /// The creation time.
    pub time: DateTime<Utc>,
    /// The flow's correlation id.
    pub correlation_id: String,
    /// The causing message's id.
    pub causation_id: Option<String>,
    /// Trace context to pass along.
    pub traceparent: Option<String>,
    /// Trace state to pass along.
    pub tracestate: Option<String>,
    /// Who the work is done for.
    pub actor: Actor,
    /// Feature flags of the flow.
    pub flags: Flags,
}

impl Envelope {
    /// Wraps a typed message. Fails when the message breaks its own contract, so that an
    /// invalid message is never published.
    pub fn wrap<M: Message>(message: &M, origin: Origin) -> Result<Envelope, EnvelopeError> {
        message
            .validate()
            .map_err(|v| EnvelopeError::Invalid(v.to_string()))?;
        let data = Data::new(message).map_err(|e| EnvelopeError::Invalid(e.to_string()))?;
        Ok(Envelope {
            id: origin.id,
            source: origin.source,
            message_type: M::TYPE.to_string(),
            data_version: M::VERSION,
            time: origin.time,
            correlation_id: origin.correlation_id,
            causation_id: origin.causation_id,
            traceparent: origin.traceparent,
            tracestate: origin.tracestate,
            actor: origin.actor,
            flags: origin.flags,
            data,
        })
    }

    /// Decodes the payload as `M`, reading older versions through [`Message::upcast`] and
    /// checking the contract's rules. Every failure here is permanent for the message.
    pub fn decode<M: Message>(&self) -> Result<M, DecodeError> {
        if self.message_type != M::TYPE {
            return Err(DecodeError::UnknownType(self.message_type.clone()));
        }
        if self.data_version == M::VERSION {
            return crate::message::read_text(self.data.json());
        }
        M::decode(self.data_version, self.data.value())
    }

    /// The envelope's trace context, when it carries a valid one.
    pub fn trace_parent(&self) -> Option<crate::trace::TraceParent> {
        self.traceparent
            .as_deref()
            .and_then(crate::trace::TraceParent::parse)
    }

    /// Parses an envelope from its JSON text.
    pub fn from_json(text: &str) -> Result<Envelope, EnvelopeError> {
        serde_json::from_str(text).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// The JSON text of the envelope.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serializes")
    }

    /// Whether the message is an event or a task, judged by its type's shape.
    pub fn kind(&self) -> Kind {
        if names::is_task_name(&self.message_type) {
            Kind::Task
        } else {
            Kind::Event
        }
    }

    /// The SNS topic (by its logical name) this message is published to: the entity's topic
    /// for an event, `tasks` for a task.
    pub fn topic(&self) -> &str {
        match self.kind() {
            Kind::Task => "tasks",
            Kind::Event => names::event_entity(&self.message_type),
        }
    }

    /// The message attributes that filter policies and tools read, mirrored from the envelope.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert("type".to_string(), self.message_type.clone());
        a.insert("version".to_string(), self.data_version.to_string());
        a.insert("id".to_string(), self.id.clone());
        a.insert("correlation_id".to_string(), self.correlation_id.clone());
        if let Some(c) = &self.causation_id {
            a.insert("causation_id".to_string(), c.clone());
        }
        if self.kind() == Kind::Task {
            a.insert(
                "target".to_string(),
                names::task_service(&self.message_type).to_string(),
            );
        }
        a
    }
}

/// Why an envelope could not be read or built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not an envelope.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// An envelope whose attributes break the rules.
    #[error("invalid envelope: {0}")]
    Invalid(String),
}

/// The JSON form of the envelope, as CloudEvents defines it.
#[derive(Deserialize)]
struct Wire {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    message_type: String,
    time: DateTime<Utc>,
    #[serde(default = "json_content_type")]
    datacontenttype: String,
    dataversion: u32,
    correlationid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causationid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracestate: Option<String>,
    actor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    actorroles: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    #[serde(default)]
    data: Data,
}

fn json_content_type() -> String {
    "application/json".into()
}

impl TryFrom<Wire> for Envelope {
    type Error = EnvelopeError;
    fn try_from(w: Wire) -> Result<Self, Self::Error> {
        if w.specversion != SPEC_VERSION {
            return Err(EnvelopeError::Invalid(format!(
                "specversion {:?} is not 1.0",
                w.specversion
            )));
        }
        if w.datacontenttype != "application/json" {
            return Err(EnvelopeError::Invalid(format!(
                "datacontenttype {:?} is not application/json",
                w.datacontenttype
            )));
        }
        for (name, value) in [
            ("id", &w.id),
            ("source", &w.source),
            ("correlationid", &w.correlationid),
            ("actor", &w.actor),
        ] {
            if value.trim().is_empty() || value.len() > 256 {
                return Err(EnvelopeError::Invalid(format!(
                    "{name} must be 1 to 256 characters"
                )));
            }
        }
        if !names::is_event_name(&w.message_type) && !names::is_task_name(&w.message_type) {
            return Err(EnvelopeError::Invalid(format!(
                "type {:?} is neither an event nor a task name",
                w.message_type
            )));
        }
        let flags = match &w.flags {
            Some(f) => Flags::decode(f)?,
            None => Flags::default(),
        };
        Ok(Envelope {
            id: w.id,
            source: w.source,
            message_type: w.message_type,
            data_version: w.dataversion,
            time: w.time,
            correlation_id: w.correlationid,
            causation_id: w.causationid,
            traceparent: w.traceparent,
            tracestate: w.tracestate,
            actor: Actor {
                subject: w.actor,
                roles: w.actorroles.split_whitespace().map(String::from).collect(),
            },
            flags,
            data: w.data,
        })
    }
}

/// The JSON form written, borrowing from the envelope: serialising never copies the payload
/// (a message is serialised for its inbox record and again for its publish request).
#[derive(Serialize)]
struct WireOut<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    message_type: &'a str,
    time: &'a DateTime<Utc>,
    datacontenttype: &'static str,
    dataversion: u32,
    correlationid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    causationid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracestate: Option<&'a str>,
    actor: &'a str,
    #[serde(skip_serializing_if = "Roles::is_empty")]
    actorroles: Roles<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    data: &'a Data,
}

/// The actor's roles as one space-separated string, written without joining them first.
struct Roles<'a>(&'a [String]);

impl Roles<'_> {
    /// Whether the joined string is empty, as no roles or one empty role make it.
    fn is_empty(&self) -> bool {
        matches!(self.0, [] | [_]) && self.0.iter().all(String::is_empty)
    }
}

impl Serialize for Roles<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => serializer.serialize_str(one),
            roles => serializer.serialize_str(&roles.join(" ")),
        }
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            specversion: SPEC_VERSION,
            id: &self.id,
            source: &self.source,
            message_type: &self.message_type,
            time: &self.time,
            datacontenttype: "application/json",
            dataversion: self.data_version,
            correlationid: &self.correlation_id,
            causationid: self.causation_id.as_deref(),
            traceparent: self.traceparent.as_deref(),
            tracestate: self.tracestate.as_deref(),
            actor: &self.actor.subject,
            actorroles: Roles(&self.actor.roles),
            flags: self.flags.encode(),
            data: &self.data,
        }
        .serialize(serializer)
    }
}
