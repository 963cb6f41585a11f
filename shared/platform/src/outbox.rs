//! Inbox and outbox: exactly-once effects on top of at-least-once delivery.
//!
//! A unit of work is committed in one `TransactWriteItems`:
//! 1. a guard record written first: the inbox record (`pk = INBOX#<envelope id>`,
//!    `sk = <function>`, condition: absent) for a message, or the idempotency record for an
//!    HTTP request;
//! 2. the handler's state changes;
//! 3. one outbox record per outgoing message (`pk = OUTBOX`, `sk = <function>#<source>#<nnn>`),
//!    holding the whole envelope, ids included.
//!
//! After the commit the messages are published and their outbox records deleted. A crash in
//! between is repaired in two ways: a redelivered message finds its inbox record and re-sends
//! the outbox records of its source ([`redispatch`]); and the scheduled [`sweep`] publishes
//! whatever stayed in the outbox longer than a grace period (what an HTTP request left
//! behind). Re-sent envelopes keep their ids, so the next consumer deduplicates them.
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
use crate::ports::{HandlerError, MAX_TRANSACTION_WRITES, TableError};

/// Partition of the outbox records.
pub const OUTBOX_PK: &str = "OUTBOX";
/// How long inbox records are kept: SQS keeps a message at most 14 days, so no redelivery can
/// come later than that.
pub const INBOX_RETENTION: Duration = Duration::days(14);
/// How long an outbox record may wait for its dispatcher before the sweeper publishes it.
pub const SWEEP_GRACE: Duration = Duration::seconds(60);

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

/// The write that records a message as processed; fails if it already was.
pub fn inbox_write(function: &str, envelope: &Envelope, now: DateTime<Utc>) -> Write {
    Write::Put {
        item: item(
            &inbox_key(function, &envelope.id),
            json!({
                "type": envelope.message_type,
                "processed_at": now.to_rfc3339(),
                "ttl": (now + INBOX_RETENTION).timestamp(),
            }),
        ),
        condition: Some(Condition::NotExists),
    }
}

/// Commits a unit of work: `guard` first, then the handler's writes, then the outbox. Returns
/// an error when more than 100 writes would be needed (a bug: split the work).
pub async fn commit(
    deps: &Deps,
    source: &str,
    input: &str,
    guard: Vec<Write>,
    writes: Vec<Write>,
    outgoing: &[Envelope],
) -> Result<(), TableError> {
    let now = deps.clock.now();
    let mut all = guard;
    all.extend(writes);
    let stored = if deps.guarantees.outbox {
        outgoing
    } else {
        &[]
    };
    for (i, envelope) in stored.iter().enumerate() {
        all.push(Write::Put {
            item: item(
                &outbox_key(&deps.function, source, i),
                json!({ "envelope": envelope.to_json(), "created": now.timestamp(), "type": envelope.message_type }),
            ),
            condition: None,
        });
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
    table.transact(all).await?;
    deps.record(|| Event::Committed {
        function: deps.function.clone(),
        input: input.to_string(),
        sends: outgoing.iter().map(|e| e.id.clone()).collect(),
    });
    Ok(())
}

fn published(deps: &Deps, envelopes: &[Envelope]) {
    deps.record(|| Event::Published {
        function: deps.function.clone(),
        ids: envelopes.iter().map(|e| e.id.clone()).collect(),
    });
}

/// Publishes committed messages, then deletes their outbox records.
pub async fn dispatch(
    deps: &Deps,
    source: &str,
    outgoing: &[Envelope],
    message_type: &str,
    message_id: &str,
) -> Result<(), HandlerError> {
    if outgoing.is_empty() {
        return Ok(());
    }
    deps.faults.at(
        FaultPoint::AfterCommit,
        &deps.function,
        message_type,
        message_id,
    );
    deps.publisher.publish(outgoing).await?;
    published(deps, outgoing);
    if !deps.guarantees.outbox {
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

/// Re-sends what a source left in the outbox (after a crash between commit and publish).
/// Returns how many messages were sent.
pub async fn redispatch(deps: &Deps, source: &str) -> Result<usize, HandlerError> {
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
        let text = record
            .get("envelope")
            .and_then(Value::as_str)
            .ok_or_else(|| HandlerError::bug("outbox record without an envelope"))?;
        envelopes.push(
            Envelope::from_json(text)
                .map_err(|e| HandlerError::bug(format!("outbox record unreadable: {e}")))?,
        );
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
pub struct SweepReport {
    /// Messages published.
    pub published: usize,
    /// Records left because they are younger than the grace period.
    pub young: usize,
}

/// Publishes every outbox record of this function older than `grace` and deletes it. Run by
/// the scheduled trigger of every function that commits outside a message (HTTP requests,
/// scheduled jobs).
pub async fn sweep(deps: &Deps, grace: Duration) -> Result<SweepReport, HandlerError> {
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
