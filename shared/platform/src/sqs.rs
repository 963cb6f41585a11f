//! The SQS entry point: a batch in, a partial batch response out.
//!
//! For each record:
//! 1. read the body (raw delivery, or an SNS notification whose `Message` is the envelope);
//! 2. read the envelope and find the handler for its type, decode and validate the payload.
//!    Any failure here is *permanent*: the record is parked in the function's DLQ with reason
//!    attributes and acknowledged, on its first receive;
//! 3. if the inbox says the envelope was processed, re-send what its outbox still holds and
//!    acknowledge (a duplicate has no second effect); but if it was processed with another
//!    payload, the producer reused an id: park it (`id-reuse`) rather than drop it;
//! 4. run the handler, commit inbox + state + outbox in one transaction, acknowledge.
//!    A conflict re-runs the handler on fresh reads (a few times); other failures are
//!    *transient* and reported as item failures, so SQS redelivers and, after
//!    `maxReceiveCount`, redrives to the DLQ;
//! 5. once every record of the batch is through, publish what the committed ones send, all
//!    together (one `PublishBatch` per topic and ten messages, not one per record), then clear
//!    each record's copy. A record whose messages could not be published is retried; its
//!    inbox record still carries them, and its redelivery sends them.
//!
//! A handler guarded by its own writes ([`Consumer::on_self_guarded`]) skips the inbox:
//! its writes commit alone, and the inbox record is written after, for `bazaar trace` only.
//!
//! A panic in one record is caught and reported as that record's failure only. On a FIFO
//! queue the records are processed in order and processing stops at the first failure: that
//! record and all after it are reported, so that order within a message group holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use bazaar_contracts::{Envelope, Message};
use futures::FutureExt;
use serde_json::Value;

use crate::deps::Deps;
use crate::faults::FaultPoint;
use crate::hops;
use crate::outbox;
use crate::ports::{DeadLetter, Encoded, HandlerError, TableError};
use crate::telemetry::{LogFields, MessageMetrics, Outcome, log_outcome};
use crate::work::{Cause, Work};

mod record;
pub use record::{Batch, Record};

/// How many times a unit of work is re-run on fresh reads when its transaction conflicts,
/// before the record is left for SQS to redeliver.
pub(crate) const CONFLICT_ATTEMPTS: usize = 4;

/// Handles one message type. A function implements it once per type it consumes.
#[async_trait]
pub trait Handle<M: Message>: Send + Sync {
    /// Decides what to change and what to send; reads through `work.table()`, writes and
    /// sends through `work`. It may run more than once for one message when its transaction
    /// conflicts, so it must not have effects outside `work`.
    async fn handle(&self, message: M, work: &mut Work<'_>) -> Result<(), HandlerError>;
}

/// Handles whole envelopes, whatever their type: for functions that keep messages as they
/// are (the event archiver) rather than acting on one contract. The same inbox, outbox and
/// conflict rules apply as for [`Handle`].
#[async_trait]
pub trait HandleEnvelope: Send + Sync {
    /// As [`Handle::handle`], with the envelope undecoded.
    async fn handle(&self, envelope: &Envelope, work: &mut Work<'_>) -> Result<(), HandlerError>;
}

struct Typed<M, H> {
    handler: Arc<H>,
    _message: PhantomData<fn() -> M>,
}

#[async_trait]
impl<M: Message, H: Handle<M> + 'static> HandleEnvelope for Typed<M, H> {
    async fn handle(&self, envelope: &Envelope, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let message: M = envelope.decode()?;
        self.handler.handle(message, work).await
    }
}

/// Runs a handler on one envelope as one unit of work: skipped (and its outbox repaired) when
/// the inbox shows it done; otherwise the handler's writes, the inbox record and the outbox
/// commit together, re-running on fresh reads when the transaction conflicts. Returns what
/// the committed unit has to publish, which the batch publishes with its other records'
/// ([`Consumer::handle_batch`]).
///
/// `unpublished`: the envelope ids of this batch's records committed before this one and not
/// yet published. A copy of one of them (SQS may deliver a message twice in one batch) is
/// done: the batch publishes what its inbox record carries, and re-sending it here would
/// publish it twice.
///
/// `read_first`: whether the inbox record is read before the handler runs
/// ([`Consumer::without_inbox_read`]).
async fn run_unit(
    handler: &dyn HandleEnvelope,
    envelope: &Envelope,
    cause: Cause,
    deps: &Deps,
    unpublished: &HashSet<String>,
    read_first: bool,
) -> Result<Option<outbox::Committed>, HandlerError> {
    let table = deps.table()?;
    let source = outbox::source_key(&format!("msg:{}:{}", deps.function, envelope.id));
    let inbox_key = outbox::inbox_key(&deps.function, &envelope.id);
    // Whether the inbox shows the message processed; if so, what it still carries is sent.
    let processed_before = || async {
        let Some(record) = table.get(&inbox_key).await? else {
            return Ok::<bool, HandlerError>(false);
        };
        if outbox::reused(&record, envelope) {
            return Err(outbox::id_reuse(&deps.function, envelope));
        }
        if !unpublished.contains(&envelope.id) {
            outbox::resend(deps, &source, &record).await?;
        }
        Ok(true)
    };
    if deps.guarantees().inbox && read_first && processed_before().await? {
        return Ok(None);
    }
    let mut work = Work::new(deps, cause);
    let started = deps.clock.now();
    for attempt in 1..=CONFLICT_ATTEMPTS {
        work.reset();
        if let Err(e) = handler.handle(envelope, &mut work).await {
            // Unread, the inbox may show a copy processed before, on which the handler
            // failed (a state it moved on from): a duplicate, not a failure.
            if deps.guarantees().inbox && !read_first && processed_before().await? {
                return Ok(None);
            }
            return Err(e);
        }
        // Each outgoing envelope is written as JSON once: stored (below) and published as is.
        let outgoing = Encoded::new(&work.outgoing);
        // The inbox record carries the outgoing envelopes when they fit; otherwise they get
        // outbox records.
        let (guard, carried) = if deps.guarantees().inbox {
            let (write, carried) = guard_write(deps, envelope, started, &outgoing);
            (vec![write], carried)
        } else {
            (Vec::new(), false)
        };
        let writes = std::mem::take(&mut work.writes);
        deps.fault(
            FaultPoint::BeforeCommit,
            &envelope.message_type,
            &envelope.id,
        );
        match outbox::commit_with(
            deps,
            &source,
            &envelope.id,
            guard,
            writes,
            &outgoing,
            !carried,
        )
        .await
        {
            Ok(()) => {
                if outgoing.is_empty() {
                    return Ok(None);
                }
                let texts = outgoing.into_texts();
                return Ok(Some(outbox::Committed {
                    source,
                    inbox: inbox_key,
                    carried,
                    envelopes: std::mem::take(&mut work.outgoing),
                    texts,
                }));
            }
            Err(e) if deps.guarantees().inbox && e.condition_failed_at(0) => {
                // Another delivery of the same message committed first: it is processed.
                match table.get(&inbox_key).await? {
                    Some(record) if outbox::reused(&record, envelope) => {
                        return Err(outbox::id_reuse(&deps.function, envelope));
                    }
                    Some(_) if unpublished.contains(&envelope.id) => 0,
                    Some(record) => outbox::resend(deps, &source, &record).await?,
                    None => outbox::redispatch(deps, &source).await?,
                };
                return Ok(None);
            }
            Err(e @ (TableError::TransactionCanceled { .. } | TableError::ConditionFailed))
                if attempt < CONFLICT_ATTEMPTS =>
            {
                tracing::debug!(function = %deps.function, message_id = %envelope.id, error = %e, attempt, "conflict; re-running on fresh reads");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Transient(
        "the unit of work kept conflicting".into(),
    ))
}

/// Runs a handler of an idempotent consumer ([`Consumer::idempotent`]) on one envelope: its
/// puts are written one by one, without an inbox record or a transaction.
async fn run_idempotent(
    handler: &dyn HandleEnvelope,
    envelope: &Envelope,
    cause: Cause,
    deps: &Deps,
) -> Result<(), HandlerError> {
    let mut work = Work::new(deps, cause);
    handler.handle(envelope, &mut work).await?;
    if !work.outgoing.is_empty() {
        return Err(HandlerError::bug(
            "an idempotent consumer sends nothing: it keeps no outbox",
        ));
    }
    let mut items = Vec::with_capacity(work.writes.len());
    for write in std::mem::take(&mut work.writes) {
        match write {
            crate::item::Write::Put {
                item,
                condition: None,
            } => items.push(item),
            other => {
                return Err(HandlerError::bug(format!(
                    "an idempotent consumer writes only unconditional puts, not {other:?}"
                )));
            }
        }
    }
    deps.fault(
        FaultPoint::BeforeCommit,
        &envelope.message_type,
        &envelope.id,
    );
    let table = deps.table()?;
    for item in items {
        table.put(item, None).await?;
    }
    deps.record(|| crate::history::Event::Applied {
        function: deps.function.clone(),
        input: envelope.id.clone(),
    });
    Ok(())
}

/// The inbox record that guards a unit of work on `envelope`, carrying `outgoing` when it
/// fits and the outbox guarantee is on; returns it and whether it carries them.
fn guard_write(
    deps: &Deps,
    envelope: &Envelope,
    started: chrono::DateTime<chrono::Utc>,
    outgoing: &Encoded<'_>,
) -> (crate::item::Write, bool) {
    let none = Encoded::new(&[]);
    outbox::carrying_inbox_write(
        &deps.function,
        envelope,
        (started, deps.clock.now()),
        if deps.guarantees().outbox {
            outgoing
        } else {
            &none
        },
    )
}

/// What a self-guarded unit of work came to.
#[derive(Debug)]
enum Guarded {
    /// Applied (its writes committed alone, or nothing to write): listed in the batch's hop
    /// record for `bazaar trace`.
    Applied(hops::Hop),
    /// It sent messages, so its inbox record guarded it as for any handler and carries them:
    /// published with the batch's.
    Committed(outbox::Committed),
    /// A copy of a message processed through its inbox record before: done, after sending
    /// what that record still carried.
    Done,
}

/// Runs a self-guarded handler ([`Consumer::on_self_guarded`]) on one envelope, without
/// reading an inbox record first. What it writes commits alone (one write by itself, several
/// in a transaction), re-run on fresh reads when a condition fails; the batch lists it in a
/// hop record afterwards, for `bazaar trace` only. A handler that sends is guarded by its
/// inbox record for that message, which carries what it sends, as any unit of work is. One
/// that changes nothing may be a copy of a message that did send: its inbox record, if there
/// is one, is read then, and what it still carries sent. A redelivery (`redelivered`: a
/// failure or a crash came before) reads it first, so that what a crash left unpublished
/// goes out before a handler that may fail again runs.
async fn run_self_guarded(
    handler: &dyn HandleEnvelope,
    envelope: &Envelope,
    cause: Cause,
    deps: &Deps,
    unpublished: &HashSet<String>,
    redelivered: bool,
) -> Result<Guarded, HandlerError> {
    let table = deps.table()?;
    let started = deps.clock.now();
    let inbox_key = outbox::inbox_key(&deps.function, &envelope.id);
    let source = outbox::source_key(&format!("msg:{}:{}", deps.function, envelope.id));
    if redelivered && let Some(record) = table.get(&inbox_key).await? {
        if !unpublished.contains(&envelope.id) {
            outbox::resend(deps, &source, &record).await?;
        }
        return Ok(Guarded::Done);
    }
    let hop = |deps: &Deps| hops::Hop {
        id: envelope.id.clone(),
        time: envelope.time,
        started_at: started,
        processed_at: deps.clock.now(),
    };
    let mut work = Work::new(deps, cause);
    for attempt in 1..=CONFLICT_ATTEMPTS {
        work.reset();
        handler.handle(envelope, &mut work).await?;
        let writes = std::mem::take(&mut work.writes);
        deps.fault(
            FaultPoint::BeforeCommit,
            &envelope.message_type,
            &envelope.id,
        );
        let outcome = if !work.outgoing.is_empty() {
            let outgoing = Encoded::new(&work.outgoing);
            let (guard, carried) = guard_write(deps, envelope, started, &outgoing);
            match outbox::commit_with(
                deps,
                &source,
                &envelope.id,
                vec![guard],
                writes,
                &outgoing,
                !carried,
            )
            .await
            {
                Ok(()) => {
                    let texts = outgoing.into_texts();
                    return Ok(Guarded::Committed(outbox::Committed {
                        source,
                        inbox: inbox_key,
                        carried,
                        envelopes: std::mem::take(&mut work.outgoing),
                        texts,
                    }));
                }
                Err(e) if e.condition_failed_at(0) => {
                    // A copy committed first: what it carries is sent by it or by its batch.
                    match table.get(&inbox_key).await? {
                        Some(_) if unpublished.contains(&envelope.id) => 0,
                        Some(record) => outbox::resend(deps, &source, &record).await?,
                        None => outbox::redispatch(deps, &source).await?,
                    };
                    return Ok(Guarded::Done);
                }
                Err(e) => Err(e),
            }
        } else if writes.is_empty() {
            if let Some(record) = table.get(&inbox_key).await? {
                if !unpublished.contains(&envelope.id) {
                    outbox::resend(deps, &source, &record).await?;
                }
                return Ok(Guarded::Done);
            }
            deps.record(|| crate::history::Event::Applied {
                function: deps.function.clone(),
                input: envelope.id.clone(),
            });
            return Ok(Guarded::Applied(hop(deps)));
        } else {
            match outbox::write_all(table, writes).await {
                Ok(()) => {
                    deps.record(|| crate::history::Event::Committed {
                        function: deps.function.clone(),
                        input: envelope.id.clone(),
                        sends: Vec::new(),
                    });
                    return Ok(Guarded::Applied(hop(deps)));
                }
                Err(e) => Err(e),
            }
        };
        match outcome {
            Err(e @ (TableError::TransactionCanceled { .. } | TableError::ConditionFailed))
                if attempt < CONFLICT_ATTEMPTS =>
            {
                tracing::debug!(function = %deps.function, message_id = %envelope.id, error = %e, attempt, "conflict; re-running on fresh reads");
            }
            Err(TableError::TransactionCanceled { .. } | TableError::ConditionFailed) => break,
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
    }
    Err(HandlerError::Transient(
        "the unit of work kept conflicting".into(),
    ))
}

/// A function's SQS consumer: the handlers of the message types it subscribes to.
#[derive(Clone)]
pub struct Consumer {
    deps: Arc<Deps>,
    handlers: HashMap<&'static str, Arc<dyn HandleEnvelope>>,
    any: Option<Arc<dyn HandleEnvelope>>,
    idempotent: bool,
    self_guarded: HashSet<&'static str>,
    read_first: bool,
}

/// The result of one record.
#[derive(Debug)]
enum RecordResult {
    Done,
    Parked,
    Retry,
    /// Committed; what it sends is published with the batch's other records'.
    Publish(Box<Pending>),
    /// Applied by a self-guarded handler; listed in the batch's hop record.
    Applied(Box<Applied>),
}

/// A record a self-guarded handler applied, to list in the batch's hop record.
#[derive(Debug)]
struct Applied {
    hop: hops::Hop,
    envelope: Envelope,
    span: bazaar_contracts::trace::Span,
    started: Instant,
}

/// A record whose unit of work committed, with what it has left to publish.
#[derive(Debug)]
struct Pending {
    committed: outbox::Committed,
    envelope: Envelope,
    span: bazaar_contracts::trace::Span,
    started: Instant,
}

impl Pending {
    fn fields<'a>(&'a self, function: &'a str) -> LogFields<'a> {
        LogFields {
            function,
            message_id: &self.envelope.id,
            message_type: &self.envelope.message_type,
            correlation_id: &self.envelope.correlation_id,
            causation_id: self.envelope.causation_id.as_deref().unwrap_or(""),
            span: Some(self.span),
        }
    }
}

impl Consumer {
    /// A consumer with no handlers yet.
    pub fn new(deps: Arc<Deps>) -> Self {
        Consumer {
            deps,
            handlers: HashMap::new(),
            any: None,
            idempotent: false,
            self_guarded: HashSet::new(),
            read_first: true,
        }
    }

    /// Declares the handlers idempotent by construction: each writes only unconditional puts
    /// whose keys and contents follow from the message alone, reads nothing it decides on,
    /// and sends nothing. A redelivery then rewrites the same items and changes nothing, so
    /// the platform keeps no inbox record, reads none, and writes the puts one by one rather
    /// than in a transaction: a message costs its items' write units once, instead of twice
    /// plus the inbox record's (DynamoDB bills a transactional write double). A handler of
    /// such a consumer that sends, updates, deletes or writes conditionally is a bug: the
    /// message fails and, after its retries, goes to the DLQ.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Declares that the handlers act only through their unit of work: they call nothing
    /// outside it (no partner, no provider, no log line that counts), so running one again
    /// on a copy of a message it processed has no effect, since the commit's condition on the
    /// inbox record refuses the copy's unit of work. The platform then does not read the
    /// inbox record before running a handler (one read unit a message): a copy is found at
    /// its commit instead, or when its handler fails on a state the first copy moved on
    /// from, and what its inbox record still carries is sent, as after the read. A copy
    /// costs a handler run and a refused write; copies are rare (SQS delivers a message more
    /// than once now and then, and after a crash).
    pub fn without_inbox_read(mut self) -> Self {
        self.read_first = false;
        self
    }

    /// Adds the handler of message type `M`.
    pub fn on<M: Message, H: Handle<M> + 'static>(mut self, handler: Arc<H>) -> Self {
        self.handlers.insert(
            M::TYPE,
            Arc::new(Typed::<M, H> {
                handler,
                _message: PhantomData,
            }),
        );
        self
    }

    /// Adds the handler of message type `M`, whose writes carry their own guard: applied to a
    /// message a second time (a redelivery, a copy, a replay) it writes nothing, because what
    /// it reads shows the message applied (a version it already holds, a record keyed by what
    /// the message is about that exists) and each write is conditional on what it read. Such
    /// a handler needs no inbox record as its guard: the platform does not read one before
    /// running it (but on a redelivery), commits its writes alone (one write costs its own
    /// units, not twice over in a transaction with the inbox record), and lists the message
    /// in the batch's hop record for `bazaar trace` ([`crate::hops`]). When the handler sends
    /// something, that unit of work is guarded by its inbox record as with [`Consumer::on`],
    /// which carries what it sends until published; when it changes nothing, the inbox record
    /// is read in case a copy sent something that did not go out. A message type with an
    /// unconditional effect needs [`Consumer::on`]. A reused id with another payload is
    /// applied on its merits rather than parked, since the handler decides by content.
    pub fn on_self_guarded<M: Message, H: Handle<M> + 'static>(mut self, handler: Arc<H>) -> Self {
        self.self_guarded.insert(M::TYPE);
        self.on(handler)
    }

    /// Adds a handler of every message type that has no handler of its own.
    pub fn on_any(mut self, handler: Arc<dyn HandleEnvelope>) -> Self {
        self.any = Some(handler);
        self
    }

    /// Processes a batch and reports the records to retry.
    pub async fn handle_batch(&self, event: impl Into<Batch>) -> SqsBatchResponse {
        let event = event.into();
        let fifo = event
            .records
            .first()
            .and_then(|r| r.event_source_arn.as_deref())
            .is_some_and(|arn| arn.ends_with(".fifo"));
        let mut failures = Vec::new();
        let mut pending = Vec::new();
        let mut unpublished = HashSet::new();
        let mut applied = Vec::new();
        let mut stop = false;
        for record in &event.records {
            if stop {
                failures.push(failure(record));
                continue;
            }
            let result = AssertUnwindSafe(self.process(record, &unpublished))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    self.panicked(record, &*panic);
                    RecordResult::Retry
                });
            match result {
                RecordResult::Retry => {
                    failures.push(failure(record));
                    stop = fifo;
                }
                RecordResult::Publish(p) => {
                    unpublished.insert(p.envelope.id.clone());
                    pending.push((record, p));
                }
                RecordResult::Applied(a) => applied.push((record, a)),
                RecordResult::Done | RecordResult::Parked => {}
            }
        }
        if !pending.is_empty() {
            self.publish(pending, fifo, &mut failures).await;
        }
        if !applied.is_empty() {
            self.record_hops(applied, &mut failures).await;
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    async fn process(&self, record: &Record, unpublished: &HashSet<String>) -> RecordResult {
        let started = Instant::now();
        let deps = &*self.deps;
        let body = record.body.as_deref().unwrap_or("");
        let envelope = match envelope_of(body) {
            Ok(e) => e,
            Err(e) => return self.park(record, None, &e, started).await,
        };
        // The hop: its span is in every log line of it and in what it sends.
        let cause = Cause::of(&envelope, &deps.function);
        let fields = LogFields {
            function: &deps.function,
            message_id: &envelope.id,
            message_type: &envelope.message_type,
            correlation_id: &envelope.correlation_id,
            causation_id: envelope.causation_id.as_deref().unwrap_or(""),
            span: Some(cause.span),
        };
        let Some(handler) = self
            .handlers
            .get(envelope.message_type.as_str())
            .or(self.any.as_ref())
        else {
            let e = HandlerError::permanent(
                "unknown-type",
                format!(
                    "{} does not handle {:?}",
                    deps.function, envelope.message_type
                ),
            );
            return self.park(record, Some(&envelope), &e, started).await;
        };
        deps.fault(FaultPoint::Received, &envelope.message_type, &envelope.id);
        let span = cause.span;
        let outcome = if self.idempotent {
            run_idempotent(handler.as_ref(), &envelope, cause, deps)
                .await
                .map(|()| None)
        } else if self.self_guarded.contains(envelope.message_type.as_str()) {
            let redelivered = record.redelivered();
            match run_self_guarded(
                handler.as_ref(),
                &envelope,
                cause,
                deps,
                unpublished,
                redelivered,
            )
            .await
            {
                Ok(Guarded::Applied(hop)) => {
                    return RecordResult::Applied(Box::new(Applied {
                        hop,
                        envelope,
                        span,
                        started,
                    }));
                }
                Ok(Guarded::Committed(c)) => Ok(Some(c)),
                Ok(Guarded::Done) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            run_unit(
                handler.as_ref(),
                &envelope,
                cause,
                deps,
                unpublished,
                // A redelivery follows a failure or a crash: what it has to recover (a commit
                // whose messages did not go out) is found by the read, before a handler that
                // might fail again runs.
                self.read_first || record.redelivered(),
            )
            .await
        };
        match outcome {
            Ok(Some(committed)) => RecordResult::Publish(Box::new(Pending {
                committed,
                envelope,
                span,
                started,
            })),
            Ok(None) => {
                deps.fault(
                    FaultPoint::AfterPublish,
                    &envelope.message_type,
                    &envelope.id,
                );
                log_outcome(&fields, Outcome::Processed, None);
                self.measure(
                    &envelope.message_type,
                    Outcome::Processed,
                    started,
                    Some(&envelope),
                );
                RecordResult::Done
            }
            Err(e @ HandlerError::Permanent { .. }) => {
                self.park(record, Some(&envelope), &e, started).await
            }
            Err(e) => {
                log_outcome(&fields, Outcome::Failed, Some(&e));
                self.measure(
                    &envelope.message_type,
                    Outcome::Failed,
                    started,
                    Some(&envelope),
                );
                RecordResult::Retry
            }
        }
    }

    fn panicked(&self, record: &Record, panic: &(dyn std::any::Any + Send)) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(function = %self.deps.function, sqs_message_id = ?record.message_id, panic = %what, outcome = "failed", "handler panicked");
    }

    /// Publishes what the batch's committed records send, together: SNS bills a request per
    /// 64 KB of a batch of up to ten messages, so a batch of records sending one message each
    /// to one topic costs one request rather than one per record. Then each record's copy of
    /// its envelopes is cleared and the record is done. A crash before the publish (a fault
    /// at `AfterCommit`) leaves that record for redelivery, whose inbox record re-sends; on a
    /// FIFO queue the records after it too, so that nothing is published ahead of what came
    /// before it. If the one publish fails, each record publishes alone, so that one record's
    /// message that cannot be published fails only that record.
    async fn publish(
        &self,
        pending: Vec<(&Record, Box<Pending>)>,
        fifo: bool,
        failures: &mut Vec<BatchItemFailure>,
    ) {
        let deps = &*self.deps;
        let mut ready = Vec::with_capacity(pending.len());
        let mut broken = false;
        for (record, p) in pending {
            let crashed = broken && fifo
                || std::panic::catch_unwind(AssertUnwindSafe(|| {
                    deps.fault(
                        FaultPoint::AfterCommit,
                        &p.envelope.message_type,
                        &p.envelope.id,
                    )
                }))
                .map_err(|panic| self.panicked(record, &*panic))
                .is_err();
            if crashed {
                broken = true;
                failures.push(failure(record));
            } else {
                ready.push((record, p));
            }
        }
        if ready.is_empty() {
            return;
        }
        // Every envelope and its text moved into one list; each record keeps its range.
        let mut envelopes = Vec::new();
        let mut texts = Vec::new();
        let mut ranges = Vec::with_capacity(ready.len());
        for (_, p) in &mut ready {
            let start = envelopes.len();
            envelopes.append(&mut p.committed.envelopes);
            texts.append(&mut p.committed.texts);
            ranges.push(start..envelopes.len());
        }
        let together = deps
            .publisher
            .publish_encoded(&Encoded::from_parts(&envelopes, &texts))
            .await;
        for ((record, p), range) in ready.into_iter().zip(ranges) {
            let published = match &together {
                Ok(()) => Ok(()),
                Err(_) => deps
                    .publisher
                    .publish_encoded(&Encoded::from_parts(
                        &envelopes[range.clone()],
                        &texts[range.clone()],
                    ))
                    .await
                    .map_err(HandlerError::from),
            };
            let done = match published {
                Ok(()) => AssertUnwindSafe(async {
                    p.committed.sent(deps, &envelopes[range]).await?;
                    deps.fault(
                        FaultPoint::AfterPublish,
                        &p.envelope.message_type,
                        &p.envelope.id,
                    );
                    Ok::<(), HandlerError>(())
                })
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    self.panicked(record, &*panic);
                    Err(HandlerError::Transient("crashed after publishing".into()))
                }),
                Err(e) => Err(e),
            };
            let fields = p.fields(&deps.function);
            match done {
                Ok(()) => {
                    log_outcome(&fields, Outcome::Processed, None);
                    self.measure(
                        &p.envelope.message_type,
                        Outcome::Processed,
                        p.started,
                        Some(&p.envelope),
                    );
                }
                Err(e) => {
                    log_outcome(&fields, Outcome::Failed, Some(&e));
                    self.measure(
                        &p.envelope.message_type,
                        Outcome::Failed,
                        p.started,
                        Some(&p.envelope),
                    );
                    failures.push(failure(record));
                }
            }
        }
    }

    /// Writes the hop records of what the batch's self-guarded records applied (one item for
    /// the batch, per second of the messages' creation: [`hops`]), then each record is done.
    /// A record whose hop record could not be written is retried: its handler writes nothing
    /// the second time, and its hop record is written then.
    async fn record_hops(
        &self,
        applied: Vec<(&Record, Box<Applied>)>,
        failures: &mut Vec<BatchItemFailure>,
    ) {
        let deps = &*self.deps;
        let ttl = (deps.clock.now() + outbox::INBOX_RETENTION).timestamp();
        let listed: Vec<hops::Hop> = applied.iter().map(|(_, a)| a.hop.clone()).collect();
        let mut unrecorded: HashSet<String> = HashSet::new();
        let mut error: Option<HandlerError> = None;
        for (item, ids) in hops::records(&deps.function, &listed, ttl) {
            let written = match deps.table() {
                Ok(table) => table.put(item, None).await.map_err(HandlerError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                unrecorded.extend(ids);
                error.get_or_insert(e);
            }
        }
        for (record, a) in applied {
            let fields = LogFields {
                function: &deps.function,
                message_id: &a.envelope.id,
                message_type: &a.envelope.message_type,
                correlation_id: &a.envelope.correlation_id,
                causation_id: a.envelope.causation_id.as_deref().unwrap_or(""),
                span: Some(a.span),
            };
            let crashed = !unrecorded.contains(&a.hop.id)
                && std::panic::catch_unwind(AssertUnwindSafe(|| {
                    deps.fault(
                        FaultPoint::AfterPublish,
                        &a.envelope.message_type,
                        &a.envelope.id,
                    )
                }))
                .map_err(|panic| self.panicked(record, &*panic))
                .is_err();
            if unrecorded.contains(&a.hop.id) || crashed {
                let e = error
                    .as_ref()
                    .filter(|_| !crashed)
                    .map(|e| HandlerError::Transient(e.to_string().into()));
                log_outcome(
                    &fields,
                    Outcome::Failed,
                    e.as_ref().map(|e| e as &(dyn std::error::Error + 'static)),
                );
                self.measure(
                    &a.envelope.message_type,
                    Outcome::Failed,
                    a.started,
                    Some(&a.envelope),
                );
                failures.push(failure(record));
            } else {
                log_outcome(&fields, Outcome::Processed, None);
                self.measure(
                    &a.envelope.message_type,
                    Outcome::Processed,
                    a.started,
                    Some(&a.envelope),
                );
            }
        }
    }

    async fn park(
        &self,
        record: &Record,
        envelope: Option<&Envelope>,
        error: &HandlerError,
        started: Instant,
    ) -> RecordResult {
        let deps = &*self.deps;
        let (reason, detail) = match error {
            HandlerError::Permanent { reason, detail } => (reason.as_str(), detail.as_str()),
            _ => ("unexpected", ""),
        };
        let mut attributes: BTreeMap<String, String> = record.message_attributes();
        attributes.insert("bazaar.reason".into(), reason.into());
        attributes.insert("bazaar.detail".into(), truncate(detail, 1024));
        attributes.insert("bazaar.function".into(), deps.function.clone());
        if let Some(arn) = &record.event_source_arn {
            attributes.insert("bazaar.source-queue".into(), arn.clone());
        }
        if let Some(e) = envelope {
            attributes.insert("type".into(), e.message_type.clone());
            attributes.insert("id".into(), e.id.clone());
            attributes.insert("correlation_id".into(), e.correlation_id.clone());
        }
        let body = record.body.clone().unwrap_or_default();
        fit_attributes(&body, &mut attributes);
        let letter = DeadLetter {
            body,
            attributes,
            group_id: record.group_id(),
        };
        let message_type = envelope
            .map(|e| e.message_type.as_str())
            .unwrap_or("unknown");
        let fields = LogFields {
            function: &deps.function,
            message_id: envelope
                .map(|e| e.id.as_str())
                .or(record.message_id.as_deref())
                .unwrap_or(""),
            message_type,
            correlation_id: envelope.map(|e| e.correlation_id.as_str()).unwrap_or(""),
            causation_id: envelope
                .and_then(|e| e.causation_id.as_deref())
                .unwrap_or(""),
            span: envelope.map(|e| Cause::of(e, &deps.function).span),
        };
        match deps.dead_letters.park(letter).await {
            Ok(()) => {
                deps.record(|| crate::history::Event::Parked {
                    function: deps.function.clone(),
                    input: envelope
                        .map(|e| e.id.clone())
                        .or_else(|| record.message_id.clone())
                        .unwrap_or_default(),
                });
                log_outcome(&fields, Outcome::Parked, Some(error));
                self.measure(message_type, Outcome::Parked, started, envelope);
                RecordResult::Parked
            }
            Err(e) => {
                // Never drop: if the DLQ cannot take it, SQS keeps it and redrive parks it.
                log_outcome(&fields, Outcome::Failed, Some(&e));
                self.measure(message_type, Outcome::Failed, started, envelope);
                RecordResult::Retry
            }
        }
    }

    fn measure(
        &self,
        message_type: &str,
        outcome: Outcome,
        started: Instant,
        envelope: Option<&Envelope>,
    ) {
        let now = self.deps.clock.now();
        self.deps.metrics.record(&MessageMetrics {
            function: self.deps.function.clone(),
            message_type: message_type.to_string(),
            outcome,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            critical_time_ms: envelope
                .map(|e| (now - e.time).num_microseconds().unwrap_or(0) as f64 / 1000.0),
            at: now,
        });
    }
}

fn failure(record: &Record) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = record.message_id.clone().unwrap_or_default();
    f
}

/// Attributes that must stay on a parked message: without them it cannot be grouped,
/// explained or replayed to its consumer.
const KEPT_ON_PARK: [&str; 2] = ["bazaar.reason", "bazaar.function"];

/// Shrinks a dead letter's attributes until body and attributes fit the queue's limit (SQS
/// counts the body and every attribute's name, type and value). A message that arrived near
/// the limit would otherwise be refused by its DLQ and, instead of being parked with its
/// reason at once, come back until redrive parks it without one. The body is never touched
/// (a replay must send exactly what arrived); the detail is cut first, then the other
/// attributes go, largest first, but the reason and the function.
fn fit_attributes(body: &str, attributes: &mut BTreeMap<String, String>) {
    const TYPE_BYTES: usize = "String".len();
    let size = |a: &BTreeMap<String, String>| {
        body.len()
            + a.iter()
                .map(|(k, v)| k.len() + TYPE_BYTES + v.len())
                .sum::<usize>()
    };
    let over = size(attributes).saturating_sub(crate::ports::MAX_MESSAGE_BYTES);
    if over == 0 {
        return;
    }
    if let Some(detail) = attributes.get("bazaar.detail") {
        // An attribute may not be empty: a detail with no room left goes.
        match detail.len().saturating_sub(over + "…".len()) {
            0 => attributes.remove("bazaar.detail"),
            keep => attributes.insert("bazaar.detail".into(), truncate(detail, keep)),
        };
    }
    while size(attributes) > crate::ports::MAX_MESSAGE_BYTES {
        let largest = attributes
            .iter()
            .filter(|(k, _)| !KEPT_ON_PARK.contains(&k.as_str()))
            .max_by_key(|(k, v)| k.len() + v.len())
            .map(|(k, _)| k.clone());
        match largest {
            Some(k) => {
                attributes.remove(&k);
            }
            None => break,
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Reads the envelope from an SQS body: the body itself (raw message delivery), or the
/// `Message` of an SNS notification (delivery without raw mode).
pub fn envelope_of(body: &str) -> Result<Envelope, HandlerError> {
    // Raw delivery is what the template configures: read the envelope straight from the text,
    // and look at the body's shape only when that fails.
    if let Ok(envelope) = serde_json::from_str::<Envelope>(body) {
        return Ok(envelope);
    }
    let value: Value = serde_json::from_str(body)
        .map_err(|e| HandlerError::permanent("malformed", format!("body is not JSON: {e}")))?;
    let is_notification = value.get("Type").and_then(Value::as_str) == Some("Notification")
        && value.get("TopicArn").is_some();
    if is_notification {
        let inner = value
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                HandlerError::permanent("malformed", "SNS notification without a Message")
            })?;
        return Ok(Envelope::from_json(inner)?);
    }
    serde_json::from_value::<Envelope>(value)
        .map_err(|e| HandlerError::permanent("malformed", format!("body is not an envelope: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(body: &str, a: &BTreeMap<String, String>) -> usize {
        body.len() + a.iter().map(|(k, v)| k.len() + 6 + v.len()).sum::<usize>()
    }

    fn letter_attributes() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("bazaar.reason".to_string(), "malformed".to_string()),
            ("bazaar.function".to_string(), "notifier".to_string()),
            ("bazaar.detail".to_string(), "d".repeat(1024)),
            (
                "bazaar.source-queue".to_string(),
                "arn:aws:sqs:q".to_string(),
            ),
            ("type".to_string(), "order.placed".to_string()),
        ])
    }

    #[test]
    fn a_letter_within_the_limit_keeps_every_attribute() {
        let mut a = letter_attributes();
        fit_attributes("{}", &mut a);
        assert_eq!(a, letter_attributes());
    }

    #[test]
    fn a_letter_near_the_limit_loses_detail_first_then_other_attributes_never_its_reason() {
        let limit = crate::ports::MAX_MESSAGE_BYTES;
        // Room for everything but half the detail.
        let body = "x".repeat(limit - size("", &letter_attributes()) + 512);
        let mut a = letter_attributes();
        fit_attributes(&body, &mut a);
        assert!(size(&body, &a) <= limit);
        assert!(a["bazaar.detail"].len() < 1024 && a["bazaar.detail"].ends_with('…'));
        assert_eq!(a["type"], "order.placed");

        // No room for any detail or the other attributes: reason and function stay.
        let body = "x".repeat(limit - 60);
        let mut a = letter_attributes();
        fit_attributes(&body, &mut a);
        assert!(size(&body, &a) <= limit, "{}", size(&body, &a));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            ["bazaar.function", "bazaar.reason"]
        );
    }
}
