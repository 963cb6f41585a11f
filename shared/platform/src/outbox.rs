//! Inbox and outbox: exactly-once effects on top of at-least-once delivery.
//!
//! A unit of work is committed in one `TransactWriteItems`:
//! 1. a guard record written first: the inbox record (`pk = INBOX#<envelope id>`,
//!    `sk = <function>`, condition: absent) for a message, or the idempotency record for an
//!    HTTP request;
//! 2. the handler's state changes;
//! 3. the outgoing messages, whole envelopes with their ids: for a message, inside its inbox
//!    record when they fit (`CARRY_LIMIT`); otherwise (an HTTP request, a job, heavy
//!    messages) one outbox record each (`pk = OUTBOX`, `sk = <function>#<source>#<nnn>`).
//!
//! After the commit the messages are published (an SQS consumer publishes those of all the
//! records of its batch together), then outbox records deleted or the inbox
//! record's envelopes removed (`sent_from_inbox`). A crash in between is repaired in two
//! ways: a redelivered message finds its inbox record and re-sends what it still carries or
//! the outbox records of its source (`resend`); and the
//! scheduled `sweep` publishes whatever stayed in the outbox longer than a grace period
//! (what an HTTP request left behind). Re-sent envelopes keep their ids, so the next consumer
//! deduplicates them.
//!
//! Why the inbox record carries a message's envelopes: in one transaction DynamoDB bills two
//! write units per KB for every item, so an outbox record costs two units to write and one
//! more to delete, where the same envelope in the inbox record (itself well under 1 KB) often
//! costs nothing more, and one update after publishing clears all of a unit's envelopes at
//! once. Clearing them matters: were they left, every duplicate delivery would publish them
//! again, and each copy would make the next consumer publish its own again, down the chain.
//!
//! The outbox is one partition: simple to sweep with one query, and its write rate is that of
//! the service's outgoing messages, far below a partition's 1,000 writes per second here.
//! Several functions of a service share its table, and each may publish only to the topics
//! it was given: the sort key starts with the function, so each sweeps only its own records.

use bazaar_contracts::Envelope;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::deps::Deps;
use crate::faults::FaultPoint;
use crate::history::Event;
use crate::item::{Condition, Key, Query, SortKey, Write, item};
use crate::ports::{Encoded, HandlerError, MAX_TRANSACTION_WRITES, TableError};

/// Partition of the outbox records.
pub(crate) const OUTBOX_PK: &str = "OUTBOX";
/// How long inbox records are kept: SQS keeps a message at most 14 days, so no redelivery can
/// come later than that.
pub const INBOX_RETENTION: Duration = Duration::days(14);
/// How long an outbox record may wait for its dispatcher before the sweeper publishes it.
pub const SWEEP_GRACE: Duration = Duration::seconds(60);
/// The most a message's outgoing envelopes may weigh (JSON text, together) to ride in its inbox
/// record; heavier ones get outbox records of their own, as an item holds at most 400 KB.
pub(crate) const CARRY_LIMIT: usize = 64 * 1024;
/// The inbox record's attribute holding the envelopes its unit of work sends.
const CARRIED: &str = "outbox";

/// Names the source of a unit of work (a message for a function, or an HTTP request scope):
/// its outbox records share this prefix. Hashed so that any text makes a fixed-size,
/// delimiter-free key.
pub fn source_key(scope: &str) -> String {
    let digest = Sha256::digest(scope.as_bytes());
    hex::encode(&digest[..16])
}

/// The key of outbox record `index` of `source`, written by `function`.
fn outbox_key(function: &str, source: &str, index: usize) -> Key {
    Key::new(OUTBOX_PK, format!("{function}#{source}#{index:03}"))
}

/// The key of a function's inbox record for a message.
pub fn inbox_key(function: &str, envelope_id: &str) -> Key {
    Key::new(format!("INBOX#{envelope_id}"), function)
}

/// The write that records a message as processed; fails if it already was. It keeps a digest
/// of what was processed ([`payload_digest`]), so that a later message with the same id and
/// another payload is told apart from a duplicate ([`reused`]), and when the handling began
/// (`started_at`) and ended (`processed_at`), which `bazaar trace` shows as the hop's time in
/// its queue (from the envelope's `time` to `started_at`) and in its handler.
pub(crate) fn inbox_write(
    function: &str,
    envelope: &Envelope,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Write {
    Write::Put {
        item: item(
            &inbox_key(function, &envelope.id),
            json!({
                "type": envelope.message_type,
                "digest": payload_digest(envelope),
                "started_at": started.to_rfc3339(),
                "processed_at": now.to_rfc3339(),
                "ttl": (now + INBOX_RETENTION).timestamp(),
            }),
        ),
        condition: Some(Condition::NotExists),
    }
}

/// A digest of a message's type and payload, as its JSON text: every copy of one message
/// (a redelivery, an outbox re-send, a DLQ or archive replay) carries the same text, since
/// the platform never rewrites a payload it passes on. 128 bits of SHA-256, in hex.
pub(crate) fn payload_digest(envelope: &Envelope) -> String {
    let mut h = Sha256::new();
    h.update(envelope.message_type.as_bytes());
    h.update([0]);
    h.update(envelope.data.json().as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Whether the inbox record `record` was written for another message than `envelope` with
/// the same id: a producer that reused an id (one that numbers its messages from 1 at every
/// start, say). Acknowledging it as a duplicate would drop it without a trace; the consumer
/// parks it instead (reason `id-reuse`). Records from before digests were kept match anything.
pub fn reused(record: &crate::item::Item, envelope: &Envelope) -> bool {
    record
        .get("digest")
        .and_then(Value::as_str)
        .is_some_and(|d| d != payload_digest(envelope))
}

/// The failure of a message whose id was processed before with another payload.
pub(crate) fn id_reuse(function: &str, envelope: &Envelope) -> HandlerError {
    tracing::error!(function, message_id = %envelope.id, message_type = %envelope.message_type, "an id processed before, with another payload: parked, not dropped as a duplicate");
    HandlerError::permanent(
        "id-reuse",
        format!(
            "{function} processed a message with id {} before, with another payload; this {} is not a duplicate of it",
            envelope.id, envelope.message_type
        ),
    )
}

/// The inbox record of a message that carries `outgoing` (the envelopes its unit of work
/// sends) when they weigh at most `CARRY_LIMIT`; returns the write and whether it carries
/// them (if not, they need outbox records: [`commit_with`]).
pub fn carrying_inbox_write(
    function: &str,
    envelope: &Envelope,
    (started, now): (DateTime<Utc>, DateTime<Utc>),
    outgoing: &Encoded<'_>,
) -> (Write, bool) {
    let mut write = inbox_write(function, envelope, started, now);
    if outgoing.is_empty() {
        return (write, true);
    }
    let texts = outgoing.texts();
    if texts.iter().map(String::len).sum::<usize>() > CARRY_LIMIT {
        return (write, false);
    }
    if let Write::Put { item, .. } = &mut write {
        item.insert(CARRIED.into(), json!(texts));
    }
    (write, true)
}

/// Commits a unit of work: `guard` first, then the handler's writes, then the outbox. Returns
/// an error when more than 100 writes would be needed (a bug: split the work).
pub async fn commit(
    deps: &Deps,
    source: &str,
    input: &str,
    guard: Vec<Write>,
    writes: Vec<Write>,
    outgoing: &Encoded<'_>,
) -> Result<(), TableError> {
    commit_with(deps, source, input, guard, writes, outgoing, true).await
}

/// As [`commit`]; `records`: whether `outgoing` gets outbox records (not when the guard
/// carries it, [`carrying_inbox_write`]).
pub async fn commit_with(
    deps: &Deps,
    source: &str,
    input: &str,
    guard: Vec<Write>,
    writes: Vec<Write>,
    outgoing: &Encoded<'_>,
    records: bool,
) -> Result<(), TableError> {
    let now = deps.clock.now();
    let mut all = guard;
    all.extend(writes);
    if deps.guarantees().outbox && records {
        for (i, (envelope, text)) in outgoing.iter().enumerate() {
            all.push(Write::Put {
                item: item(
                    &outbox_key(&deps.function, source, i),
                    json!({ "envelope": text, "created": now.timestamp(), "type": envelope.message_type }),
                ),
                condition: None,
            });
        }
    }
    if all.len() > MAX_TRANSACTION_WRITES {
        return Err(TableError::Invalid(format!(
            "a unit of work needs {} writes, over DynamoDB's {MAX_TRANSACTION_WRITES}",
            all.len()
        )));
    }
    let table = deps
        .table()
        .map_err(|e| TableError::Invalid(e.to_string()))?;
    write_all(table, all).await?;
    deps.record(|| Event::Committed {
        function: deps.function.clone(),
        input: input.to_string(),
        sends: outgoing.envelopes().iter().map(|e| e.id.clone()).collect(),
    });
    Ok(())
}

/// Writes a unit's writes atomically: in one transaction, or, when there is one write (a
/// message whose handler changed nothing of its own, so only its inbox record, perhaps
/// carrying what it sends), as that write alone with its condition. One item is atomic by
/// itself, and a transaction bills every item twice (prepare and commit): alone it costs half.
/// A failed condition is reported as the transaction would report it (its write 0), so that
/// callers tell a duplicate or a conflict apart the same way.
pub(crate) async fn write_all(
    table: &dyn crate::ports::Table,
    mut all: Vec<Write>,
) -> Result<(), TableError> {
    if all.len() != 1 || matches!(all[0], Write::Check { .. }) {
        return table.transact(all).await;
    }
    let alone = match all.pop() {
        Some(Write::Put { item, condition }) => table.put(item, condition).await,
        Some(Write::Update {
            key,
            update,
            condition,
        }) => table.update(&key, update, condition).await.map(|_| ()),
        Some(Write::Delete { key, condition }) => table.delete(&key, condition).await,
        Some(check) => return table.transact(vec![check]).await,
        None => return Ok(()),
    };
    alone.map_err(|e| match e {
        TableError::ConditionFailed => TableError::TransactionCanceled {
            reasons: vec![crate::ports::WriteFailure::ConditionFailed],
        },
        other => other,
    })
}

/// A message's unit of work, committed, whose outgoing envelopes are still to be published:
/// the SQS consumer publishes those of every record of a batch together
/// ([`crate::sqs::Consumer::handle_batch`]), then calls [`Committed::sent`] for each.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The unit's source (its outbox records' prefix, when it has some).
    pub source: String,
    /// Its inbox record.
    pub inbox: Key,
    /// Whether the inbox record carries the envelopes (otherwise they have outbox records).
    pub carried: bool,
    /// The envelopes (moved out by the publisher of the batch).
    pub envelopes: Vec<Envelope>,
    /// Their JSON text, as stored, in the same order.
    pub texts: Vec<String>,
}

impl Committed {
    /// Records `envelopes` (this unit's, once published) as published and clears what held
    /// them: the inbox record's copy (one update) or the outbox records.
    pub(crate) async fn sent(
        &self,
        deps: &Deps,
        envelopes: &[Envelope],
    ) -> Result<(), HandlerError> {
        published(deps, envelopes);
        if !deps.guarantees().outbox {
            return Ok(());
        }
        if self.carried {
            if deps.guarantees().inbox {
                sent_from_inbox(deps, &self.inbox).await;
            }
            return Ok(());
        }
        let table = deps.table()?;
        for i in 0..envelopes.len() {
            table
                .delete(&outbox_key(&deps.function, &self.source, i), None)
                .await?;
        }
        Ok(())
    }
}

fn published(deps: &Deps, envelopes: &[Envelope]) {
    deps.record(|| Event::Published {
        function: deps.function.clone(),
        ids: envelopes.iter().map(|e| e.id.clone()).collect(),
    });
}

/// Publishes committed messages, then deletes their outbox records.
pub(crate) async fn dispatch(
    deps: &Deps,
    source: &str,
    outgoing: &Encoded<'_>,
    message_type: &str,
    message_id: &str,
) -> Result<(), HandlerError> {
    dispatch_with(deps, source, outgoing, message_type, message_id, true).await
}

/// As [`dispatch`]; `records`: whether the messages have outbox records to delete (as
/// [`commit_with`] was told).
pub(crate) async fn dispatch_with(
    deps: &Deps,
    source: &str,
    outgoing: &Encoded<'_>,
    message_type: &str,
    message_id: &str,
    records: bool,
) -> Result<(), HandlerError> {
    if outgoing.is_empty() {
        return Ok(());
    }
    deps.fault(FaultPoint::AfterCommit, message_type, message_id);
    deps.publisher.publish_encoded(outgoing).await?;
    published(deps, outgoing.envelopes());
    if !deps.guarantees().outbox || !records {
        return Ok(());
    }
    let table = deps.table()?;
    for i in 0..outgoing.len() {
        table
            .delete(&outbox_key(&deps.function, source, i), None)
            .await?;
    }
    Ok(())
}

/// Marks the envelopes the inbox record `inbox` carries as published, by removing them: a
/// later duplicate of the message then has nothing to send again. A failure here is logged,
/// not returned: the messages are out, and the worst it leaves is one more publish of them on
/// a duplicate, which their consumers' inboxes absorb.
pub(crate) async fn sent_from_inbox(deps: &Deps, inbox: &Key) {
    let Ok(table) = deps.table() else {
        return;
    };
    if let Err(e) = table
        .update(
            inbox,
            crate::item::Update::new().remove(CARRIED),
            Some(Condition::Exists),
        )
        .await
    {
        tracing::warn!(function = %deps.function, error = %e, "published envelopes not cleared from the inbox record; a duplicate would send them again");
    }
}

/// Re-sends what a processed message's unit of work sent, for a redelivery of it: the
/// envelopes its inbox record `inbox` carries, or else its outbox records. Returns how many
/// messages were sent.
pub(crate) async fn resend(
    deps: &Deps,
    source: &str,
    inbox: &crate::item::Item,
) -> Result<usize, HandlerError> {
    let Some(carried) = inbox.get(CARRIED).and_then(Value::as_array) else {
        return redispatch(deps, source).await;
    };
    let envelopes = carried
        .iter()
        .map(|text| stored_envelope(Some(text), "a carried envelope"))
        .collect::<Result<Vec<_>, _>>()?;
    if envelopes.is_empty() || !deps.guarantees().outbox {
        return Ok(0);
    }
    deps.publisher.publish(&envelopes).await?;
    published(deps, &envelopes);
    if let Some(key) = Key::of(inbox) {
        sent_from_inbox(deps, &key).await;
    }
    Ok(envelopes.len())
}

/// An envelope the platform stored as JSON text (in an outbox record or an inbox record);
/// `what` names it in the error, which is a bug: only the platform writes these.
fn stored_envelope(text: Option<&Value>, what: &str) -> Result<Envelope, HandlerError> {
    let text = text
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::bug(format!("{what} is missing or not text")))?;
    Envelope::from_json(text).map_err(|e| HandlerError::bug(format!("{what} is unreadable: {e}")))
}

/// Re-sends what a source left in the outbox (after a crash between commit and publish).
/// Returns how many messages were sent.
pub(crate) async fn redispatch(deps: &Deps, source: &str) -> Result<usize, HandlerError> {
    let table = deps.table()?;
    let page = table
        .query(
            Query::partition(OUTBOX_PK)
                .sort_key(SortKey::BeginsWith(format!("{}#{source}#", deps.function))),
        )
        .await?;
    publish_records(deps, page.items).await
}

async fn publish_records(
    deps: &Deps,
    records: Vec<crate::item::Item>,
) -> Result<usize, HandlerError> {
    if records.is_empty() {
        return Ok(0);
    }
    let mut envelopes = Vec::with_capacity(records.len());
    let mut keys = Vec::with_capacity(records.len());
    for record in &records {
        envelopes.push(stored_envelope(
            record.get("envelope"),
            "an outbox record's envelope",
        )?);
        keys.push(Key::of(record).ok_or_else(|| HandlerError::bug("outbox record without a key"))?);
    }
    deps.publisher.publish(&envelopes).await?;
    published(deps, &envelopes);
    let table = deps.table()?;
    for key in keys {
        table.delete(&key, None).await?;
    }
    Ok(envelopes.len())
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SweepReport {
    /// Messages published.
    pub published: usize,
    /// Records left because they are younger than the grace period.
    pub young: usize,
}

/// Publishes every outbox record of this function older than `grace` and deletes it. Run by
/// the scheduled trigger of every function that commits outside a message (HTTP requests,
/// scheduled jobs).
pub(crate) async fn sweep(deps: &Deps, grace: Duration) -> Result<SweepReport, HandlerError> {
    let table = deps.table()?;
    let cutoff = (deps.clock.now() - grace).timestamp();
    let mut report = SweepReport::default();
    let mut start_after = None;
    loop {
        let page = table
            .query(
                Query::partition(OUTBOX_PK)
                    .sort_key(SortKey::BeginsWith(format!("{}#", deps.function)))
                    .limit(100)
                    .start_after(start_after.take()),
            )
            .await?;
        let (old, young): (Vec<_>, Vec<_>) = page.items.into_iter().partition(|r| {
            r.get("created")
                .and_then(Value::as_i64)
                .is_some_and(|c| c <= cutoff)
        });
        report.young += young.len();
        for chunk in old.chunks(crate::ports::MAX_BATCH) {
            report.published += publish_records(deps, chunk.to_vec()).await?;
        }
        match page.last_sk {
            Some(sk) => start_after = Some(sk),
            None => break,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_contracts::{Actor, Flags};
    use chrono::TimeZone;

    fn envelope(id: &str, data: Value) -> Envelope {
        Envelope {
            id: id.into(),
            source: "bazaar/test".into(),
            message_type: "inventory.reserved".into(),
            data_version: 1,
            time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            correlation_id: "c".into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: Actor::system(),
            flags: Flags::default(),
            data: data.into(),
        }
    }

    fn carried(write: &Write) -> Option<Vec<String>> {
        match write {
            Write::Put { item, .. } => item.get(CARRIED).map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect()
            }),
            _ => panic!("an inbox write is a put"),
        }
    }

    #[test]
    fn the_inbox_record_carries_light_envelopes_and_leaves_heavy_ones_to_outbox_records() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let input = envelope("in", json!({}));
        let light = [
            envelope("a", json!({"n": 1})),
            envelope("b", json!({"n": 2})),
        ];
        let (write, carries) = carrying_inbox_write("f", &input, (now, now), &Encoded::new(&light));
        assert!(carries);
        let texts = carried(&write).unwrap();
        assert_eq!(texts.len(), 2);
        assert_eq!(Envelope::from_json(&texts[1]).unwrap(), light[1]);

        let heavy = [envelope("h", json!({"blob": "x".repeat(CARRY_LIMIT)}))];
        let (write, carries) = carrying_inbox_write("f", &input, (now, now), &Encoded::new(&heavy));
        assert!(!carries, "over the limit: outbox records");
        assert_eq!(carried(&write), None);

        let (write, carries) = carrying_inbox_write("f", &input, (now, now), &Encoded::new(&[]));
        assert!(carries, "nothing to carry needs no records either");
        assert_eq!(carried(&write), None);
    }

    #[test]
    fn encoded_envelopes_keep_each_text_with_its_envelope_when_split() {
        let envelopes = [
            envelope("a", json!({"n": 1})),
            envelope("b", json!({"n": 2})),
            envelope("c", json!({"n": 3})),
        ];
        let encoded = Encoded::new(&envelopes);
        assert_eq!(encoded.len(), 3);
        for (e, text) in encoded.iter() {
            assert_eq!(text, e.to_json());
            assert_eq!(&Envelope::from_json(text).unwrap(), e);
        }
        let (head, tail) = encoded.split_at(1);
        assert_eq!(head.envelopes()[0].id, "a");
        assert_eq!(head.texts(), &encoded.texts()[..1]);
        let tail: Vec<(String, String)> = tail
            .iter()
            .map(|(e, t)| (e.id.clone(), t.to_string()))
            .collect();
        assert_eq!(tail.len(), 2);
        assert!(
            tail.iter()
                .all(|(id, t)| Envelope::from_json(t).unwrap().id == *id)
        );
        assert!(Encoded::new(&[]).is_empty());
    }
}
