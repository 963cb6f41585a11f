//! The ports handlers and the platform use. Each is small and named for what it does; the
//! adapters are named for their technology (`bazaar_aws::DynamoTable`,
//! `bazaar_embedded::EmbeddedTable`, ...).
//!
//! Errors are typed by who must act:
//! - the caller (a 4xx answer, or a permanent message failure that goes to the DLQ at once),
//! - a retry (transient: throttling, conflicts, a dependency down; SQS redelivers),
//! - a human (a bug or a misconfiguration: logged with its cause chain, retried, and parked
//!   by the queue's redrive policy if it persists).

use std::collections::BTreeMap;

use async_trait::async_trait;
use bazaar_contracts::{ContractViolation, DecodeError, Envelope, EnvelopeError};

use crate::item::{Condition, Item, Key, Page, Query, Update, Write};

/// A boxed error cause, kept whole so that logs show the chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// DynamoDB's limit of writes in one `TransactWriteItems`.
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// A service's table: one partition key `pk`, one sort key `sk` (see [`crate::item`]).
#[async_trait]
pub trait Table: Send + Sync {
    /// Reads one item (strongly consistent).
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError>;
    /// Creates or replaces an item if the condition holds.
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError>;
    /// Changes an item if the condition holds, returning the new item.
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError>;
    /// Deletes an item if the condition holds.
    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError>;
    /// Reads one page of one partition.
    async fn query(&self, query: Query) -> Result<Page, TableError>;
    /// Reads every page of a query (for partitions known to be small, and for tools).
    async fn query_all(&self, query: Query) -> Result<Vec<Item>, TableError> {
        let mut out = Vec::new();
        let mut after = query.start_after.clone();
        loop {
            let page = self.query(query.clone().start_after(after)).await?;
            out.extend(page.items);
            match page.last_sk {
                Some(sk) => after = Some(sk),
                None => return Ok(out),
            }
        }
    }
    /// Applies up to [`MAX_TRANSACTION_WRITES`] writes, all or none. At most one write per key.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError>;
    /// Reads one page of the whole table, up to `limit` items after `start_after` (the
    /// previous page's `last_key`), in no particular order but a stable one. For tools (data
    /// migrations), never for a handler: a scan reads every partition.
    async fn scan(&self, start_after: Option<Key>, limit: usize) -> Result<ScanPage, TableError> {
        let _ = (start_after, limit);
        Err(TableError::Invalid("this table adapter cannot scan".into()))
    }
}

/// One page of a [`Table::scan`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanPage {
    /// The items.
    pub items: Vec<Item>,
    /// Set when more items may follow: pass it as the next scan's `start_after`.
    pub last_key: Option<Key>,
}

impl dyn Table + '_ {
    /// Reads one item as a record of type `T` (strongly consistent); a stored item that does
    /// not read as `T` is a bug.
    pub async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, HandlerError> {
        self.get(key).await?.map(crate::item::parse).transpose()
    }
}

/// Why one write of a cancelled transaction failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFailure {
    /// This write was fine; another one failed.
    None,
    /// Its condition did not hold.
    ConditionFailed,
    /// Another transaction was writing the same item.
    Conflict,
    /// Anything else DynamoDB reported (throttling, size, ...).
    Other(String),
}

/// What went wrong with a table operation.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A condition did not hold (single-item operation).
    #[error("the condition did not hold")]
    ConditionFailed,
    /// A transaction was cancelled; one reason per write, in order.
    #[error("transaction cancelled: {reasons:?}")]
    TransactionCanceled {
        /// Why each write failed (or [`WriteFailure::None`]).
        reasons: Vec<WriteFailure>,
    },
    /// Too many requests; retry later.
    #[error("throttled by the table")]
    Throttled,
    /// A request the table refuses as malformed: a bug in the caller.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The table could not be reached or failed.
    #[error("table unavailable")]
    Unavailable(#[source] BoxError),
}

impl TableError {
    /// True when a transaction failed because of the condition of write `index` (and not for
    /// another reason): the state it guarded changed.
    pub(crate) fn condition_failed_at(&self, index: usize) -> bool {
        match self {
            TableError::TransactionCanceled { reasons } => {
                reasons.get(index) == Some(&WriteFailure::ConditionFailed)
            }
            _ => false,
        }
    }

    /// True when a write's condition did not hold (alone, or in a transaction): the state it
    /// guarded changed since it was read. On an HTTP route that is a conflict (409) for the
    /// caller to retry; in a consumer the unit of work runs again on fresh reads.
    pub fn is_stale(&self) -> bool {
        match self {
            TableError::ConditionFailed => true,
            TableError::TransactionCanceled { reasons } => {
                reasons.contains(&WriteFailure::ConditionFailed)
            }
            _ => false,
        }
    }

    /// Who must act.
    pub fn class(&self) -> ErrorClass {
        match self {
            TableError::ConditionFailed
            | TableError::TransactionCanceled { .. }
            | TableError::Throttled
            | TableError::Unavailable(_) => ErrorClass::Transient,
            TableError::Invalid(_) => ErrorClass::Bug,
        }
    }
}

/// Publishes envelopes: events to their entity's topic, tasks to the `tasks` topic.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes every envelope (in batches of at most 10 per topic, as SNS allows). On error
    /// some may have been published: the caller publishes all again, and consumers deduplicate
    /// on the envelope id.
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), PublishError> {
        self.publish_encoded(&Encoded::new(envelopes)).await
    }

    /// As [`Publisher::publish`], for envelopes already written as JSON: a unit of work writes
    /// each outgoing envelope once, stores that text in its inbox or outbox record, and
    /// publishes the same text.
    async fn publish_encoded(&self, messages: &Encoded<'_>) -> Result<(), PublishError>;
}

/// Envelopes with their JSON text, each written once ([`Envelope::to_json`]). Only [`new`]
/// makes one, so a text is always its envelope's.
///
/// [`new`]: Encoded::new
#[derive(Debug, Clone)]
pub struct Encoded<'a> {
    envelopes: &'a [Envelope],
    texts: std::borrow::Cow<'a, [String]>,
}

impl<'a> Encoded<'a> {
    /// Writes every envelope's JSON.
    pub fn new(envelopes: &'a [Envelope]) -> Self {
        Encoded {
            envelopes,
            texts: envelopes.iter().map(Envelope::to_json).collect(),
        }
    }

    /// Envelopes whose texts were written before (by [`Encoded::new`], kept with
    /// [`Encoded::into_texts`]), in the same order.
    pub(crate) fn from_parts(envelopes: &'a [Envelope], texts: &'a [String]) -> Self {
        debug_assert_eq!(envelopes.len(), texts.len());
        Encoded {
            envelopes,
            texts: std::borrow::Cow::Borrowed(texts),
        }
    }

    /// The texts, for [`Encoded::from_parts`].
    pub(crate) fn into_texts(self) -> Vec<String> {
        self.texts.into_owned()
    }

    /// The envelopes.
    pub fn envelopes(&self) -> &'a [Envelope] {
        self.envelopes
    }

    /// Each envelope's JSON text, in the same order.
    pub(crate) fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Each envelope with its text.
    pub fn iter(&self) -> impl Iterator<Item = (&'a Envelope, &str)> + '_ {
        self.envelopes
            .iter()
            .zip(self.texts.iter().map(String::as_str))
    }

    /// How many envelopes.
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// The first `n` envelopes and the rest (as a publish that fails half-way leaves them).
    pub fn split_at(&self, n: usize) -> (Encoded<'_>, Encoded<'_>) {
        let (a, b) = self.envelopes.split_at(n);
        let (ta, tb) = self.texts.split_at(n);
        (
            Encoded {
                envelopes: a,
                texts: std::borrow::Cow::Borrowed(ta),
            },
            Encoded {
                envelopes: b,
                texts: std::borrow::Cow::Borrowed(tb),
            },
        )
    }
}

/// SNS's message size limit (256 KiB, body plus attributes).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SNS `PublishBatch` and SQS `SendMessageBatch` take at most 10 entries.
pub const MAX_BATCH: usize = 10;

/// What went wrong publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The message is over [`MAX_MESSAGE_BYTES`]; it can never be published.
    #[error("message {id} is {bytes} bytes, over the 256 KiB limit")]
    TooLarge {
        /// The envelope id.
        id: String,
        /// Its size.
        bytes: usize,
    },
    /// No topic is configured for the message's topic name: a deployment mistake.
    #[error("no topic configured for {0:?} (set TOPIC_ARN_{upper})", upper = .0.to_uppercase())]
    UnknownTopic(String),
    /// Some entries failed; retry.
    #[error("{failed} of {total} messages were not published")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were sent.
        total: usize,
    },
    /// The topic service could not be reached or failed.
    #[error("topic service unavailable")]
    Unavailable(#[source] BoxError),
}

impl PublishError {
    /// Who must act.
    pub fn class(&self) -> ErrorClass {
        match self {
            PublishError::Partial { .. } | PublishError::Unavailable(_) => ErrorClass::Transient,
            PublishError::TooLarge { .. } | PublishError::UnknownTopic(_) => ErrorClass::Bug,
        }
    }
}

/// The function's dead-letter queue, where permanent failures are parked on first receive.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Sends the original body with its attributes and the reason to the DLQ.
    async fn park(&self, letter: DeadLetter) -> Result<(), PublishError>;
}

/// A message parked with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The original SQS body, unchanged, so that a replay sends exactly what was received.
    pub body: String,
    /// Message attributes: the original ones plus `bazaar.reason`, `bazaar.detail`,
    /// `bazaar.function`, `bazaar.source-queue`.
    pub attributes: BTreeMap<String, String>,
    /// For FIFO DLQs: the message group of the original.
    pub group_id: Option<String>,
}

/// Who must act on a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input is wrong and always will be: answer 4xx, or park the message now.
    Permanent,
    /// Retrying later may succeed.
    Transient,
    /// A bug or misconfiguration: log it whole, retry, and let redrive park it if it persists.
    Bug,
}

/// A handler's failure.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The message or request is wrong; a short machine-readable reason and a detail.
    #[error("{reason}: {detail}")]
    Permanent {
        /// Machine-readable reason (`contract-violation`, `unknown-type`, ...).
        reason: String,
        /// Human-readable detail naming what is wrong.
        detail: String,
    },
    /// Try again later.
    #[error("transient failure")]
    Transient(#[source] BoxError),
    /// Unexpected.
    #[error("unexpected failure")]
    Bug(#[source] BoxError),
}

impl HandlerError {
    /// A permanent failure.
    pub fn permanent(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        HandlerError::Permanent {
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    /// A bug, described in words.
    pub fn bug(detail: impl Into<String>) -> Self {
        HandlerError::Bug(detail.into().into())
    }

    /// Who must act.
    pub fn class(&self) -> ErrorClass {
        match self {
            HandlerError::Permanent { .. } => ErrorClass::Permanent,
            HandlerError::Transient(_) => ErrorClass::Transient,
            HandlerError::Bug(_) => ErrorClass::Bug,
        }
    }
}

impl From<TableError> for HandlerError {
    fn from(e: TableError) -> Self {
        match e.class() {
            ErrorClass::Bug => HandlerError::Bug(Box::new(e)),
            _ => HandlerError::Transient(Box::new(e)),
        }
    }
}

impl From<PublishError> for HandlerError {
    fn from(e: PublishError) -> Self {
        match e.class() {
            ErrorClass::Bug => HandlerError::Bug(Box::new(e)),
            _ => HandlerError::Transient(Box::new(e)),
        }
    }
}

impl From<DecodeError> for HandlerError {
    fn from(e: DecodeError) -> Self {
        HandlerError::permanent(e.reason(), e.to_string())
    }
}

impl From<ContractViolation> for HandlerError {
    fn from(e: ContractViolation) -> Self {
        HandlerError::permanent("contract-violation", e.0)
    }
}

impl From<EnvelopeError> for HandlerError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Malformed(d) => HandlerError::permanent("malformed", d),
            EnvelopeError::Invalid(d) => HandlerError::permanent("invalid-envelope", d),
        }
    }
}

/// Topic ARNs by logical topic name, read from the function's environment: the template sets
/// `TOPIC_ARN_<NAME>` (e.g. `TOPIC_ARN_ORDER`, `TOPIC_ARN_TASKS`) for each topic the
/// function may publish to, and its policy allows exactly those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics(pub BTreeMap<String, String>);

impl Topics {
    /// The prefix of the topic environment variables.
    pub const ENV_PREFIX: &'static str = "TOPIC_ARN_";

    /// Reads `TOPIC_ARN_*` variables.
    pub fn from_env(env: &BTreeMap<String, String>) -> Topics {
        Topics(
            env.iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(Self::ENV_PREFIX)
                        .map(|name| (name.to_lowercase(), v.clone()))
                })
                .collect(),
        )
    }

    /// The ARN of a logical topic.
    pub fn arn(&self, topic: &str) -> Result<&str, PublishError> {
        self.0
            .get(topic)
            .map(String::as_str)
            .ok_or_else(|| PublishError::UnknownTopic(topic.to_string()))
    }
}

/// Checks an envelope against SNS's size limit before any request is made. Returns its JSON.
pub fn encode_for_publish(
    envelope: &Envelope,
) -> Result<(String, BTreeMap<String, String>), PublishError> {
    let body = envelope.to_json();
    let attributes = attributes_for_publish(envelope, &body)?;
    Ok((body, attributes))
}

/// Checks an envelope whose JSON is `text` against SNS's size limit before any request is
/// made. Returns the message attributes to publish it with.
pub fn attributes_for_publish(
    envelope: &Envelope,
    text: &str,
) -> Result<BTreeMap<String, String>, PublishError> {
    let attributes = envelope.attributes();
    let bytes = text.len()
        + attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + "String".len())
            .sum::<usize>();
    if bytes > MAX_MESSAGE_BYTES {
        return Err(PublishError::TooLarge {
            id: envelope.id.clone(),
            bytes,
        });
    }
    Ok(attributes)
}

/// The depth of a queue, as the queue service reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages that can be received now (delayed ones included).
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Age of the oldest message in seconds, when the service tells it.
    pub oldest_age_s: Option<i64>,
}

/// Reads queue depths: what the queue monitor publishes as metrics.
#[async_trait]
pub trait QueueStats: Send + Sync {
    /// The depth of the queue at `url`.
    async fn depth(&self, url: &str) -> Result<QueueDepth, HandlerError>;
}
