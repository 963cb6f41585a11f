//! `bazaar dlq`: read dead letters grouped by why they failed, and move them back.
//!
//! A dead letter's reason comes from the attributes the platform sets when it parks a message
//! (`bazaar.reason`, `bazaar.detail`, `bazaar.function`, `bazaar.source-queue`); a message
//! that SQS's redrive policy moved after too many failed receives carries none of them and is
//! reported as [`RETRIES_EXHAUSTED`].
//!
//! Replay is built so that a crash loses nothing: each message is sent to its destination,
//! then its audit record written, then it is deleted from the DLQ. Killed at any point, a
//! message is either still in the DLQ (it reappears when its hold ends) or already moved; the
//! one message between send and delete is moved twice, which consumers absorb (they
//! deduplicate by envelope id), and its audit record is keyed by the DLQ message so that it is
//! written once.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use bazaar_platform::item::{Key, Query, parse, record};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Outgoing, QueueMessage};
use crate::replay::matches;
use crate::target::{QueueRef, Target};

/// The reason of a message that the redrive policy moved (its handler kept failing).
pub const RETRIES_EXHAUSTED: &str = "retries-exhausted";
/// The partition of the operations table that holds one audit record per moved message.
pub const AUDIT_PK: &str = "AUDIT#DLQ-REPLAY";
/// The most messages one replay holds at once; run it again for more.
pub const MAX_SCAN: usize = 10_000;

/// A message in a dead-letter queue, with what is known of why it is there.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// The message as read.
    pub message: QueueMessage,
    /// Why it failed (`malformed`, `unknown-type`, `contract`, …, or [`RETRIES_EXHAUSTED`]).
    pub reason: String,
    /// The error's detail.
    pub detail: String,
    /// The function that parked it.
    pub function: Option<String>,
    /// The queue it came from (a name, URL or ARN), when recorded.
    pub source_queue: Option<String>,
    /// The message type (`unknown` when the body is not an envelope).
    pub message_type: String,
    /// The envelope id.
    pub envelope_id: Option<String>,
    /// The flow's correlation id.
    pub correlation_id: Option<String>,
}

impl Letter {
    /// Reads a dead letter's attributes and, where they say nothing, its body.
    pub fn read(message: QueueMessage) -> Letter {
        let envelope = bazaar_platform::sqs::envelope_of(&message.body).ok();
        let attr = |k: &str| {
            message
                .attributes
                .get(k)
                .filter(|v| !v.is_empty() && v.as_str() != "-")
                .cloned()
        };
        let (reason, detail) = match attr("bazaar.reason") {
            Some(r) => (r, attr("bazaar.detail").unwrap_or_default()),
            None => (
                RETRIES_EXHAUSTED.to_string(),
                format!(
                    "moved by the redrive policy after {} receives",
                    message.receive_count
                ),
            ),
        };
        Letter {
            reason,
            detail,
            function: attr("bazaar.function"),
            source_queue: attr("bazaar.source-queue"),
            message_type: attr("type")
                .or_else(|| envelope.as_ref().map(|e| e.message_type.clone()))
                .unwrap_or_else(|| "unknown".into()),
            envelope_id: attr("id").or_else(|| envelope.as_ref().map(|e| e.id.clone())),
            correlation_id: attr("correlation_id")
                .or_else(|| envelope.as_ref().map(|e| e.correlation_id.clone())),
            message,
        }
    }
}

/// Dead letters of one reason and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The failure reason.
    pub reason: String,
    /// The message type.
    pub message_type: String,
    /// How many.
    pub count: usize,
    /// When the first arrived.
    pub first_seen: DateTime<Utc>,
    /// When the last arrived.
    pub last_seen: DateTime<Utc>,
    /// The detail of the latest one.
    pub example: String,
}

/// Every dead letter of a DLQ, oldest first.
pub async fn letters(target: &Target, dlq: &QueueRef) -> anyhow::Result<Vec<Letter>> {
    let mut all: Vec<Letter> = target
        .backend
        .peek(&dlq.name)
        .await
        .with_context(|| format!("reading {}", dlq.name))?
        .into_iter()
        .map(Letter::read)
        .collect();
    all.sort_by(|a, b| a.message.arrival().cmp(&b.message.arrival()));
    Ok(all)
}

/// Groups dead letters by reason and type, the largest group first.
pub fn group(letters: &[Letter]) -> Vec<Group> {
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for l in letters {
        let at = l.message.sent_at;
        let g = groups
            .entry((l.reason.clone(), l.message_type.clone()))
            .or_insert_with(|| Group {
                reason: l.reason.clone(),
                message_type: l.message_type.clone(),
                count: 0,
                first_seen: at,
                last_seen: at,
                example: String::new(),
            });
        g.count += 1;
        g.first_seen = g.first_seen.min(at);
        if at >= g.last_seen || g.example.is_empty() {
            g.last_seen = g.last_seen.max(at);
            g.example = l.detail.clone();
        }
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.reason, &a.message_type).cmp(&(&b.reason, &b.message_type)))
    });
    groups
}

/// Finds one dead letter by its envelope id or its queue message id.
pub async fn find(target: &Target, dlq: &QueueRef, id: &str) -> anyhow::Result<Letter> {
    letters(target, dlq)
        .await?
        .into_iter()
        .find(|l| l.message.message_id == id || l.envelope_id.as_deref() == Some(id))
        .with_context(|| {
            format!(
                "no message {id:?} in {} (give an envelope id or a message id from `bazaar dlq list {} --ids`)",
                dlq.name, dlq.logical_id
            )
        })
}

/// Which dead letters a replay moves.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Type patterns (`order.placed`, `product.*`); empty selects every type.
    pub types: Vec<String>,
    /// Reasons; empty selects every reason.
    pub reasons: Vec<String>,
    /// Only this flow.
    pub correlation_id: Option<String>,
    /// Only letters that arrived at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many.
    pub max: Option<usize>,
}

impl Selection {
    /// Whether a letter is selected (ignoring `max`).
    pub fn selects(&self, l: &Letter) -> bool {
        (self.types.is_empty() || self.types.iter().any(|p| matches(p, &l.message_type)))
            && (self.reasons.is_empty() || self.reasons.iter().any(|r| r == &l.reason))
            && self
                .correlation_id
                .as_ref()
                .is_none_or(|c| l.correlation_id.as_ref() == Some(c))
            && self.since.is_none_or(|s| l.message.sent_at >= s)
    }
}

/// One message moved out of a DLQ: who moved it, when, from where to where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Who ran the replay.
    pub who: String,
    /// When the message was moved.
    pub at: DateTime<Utc>,
    /// The DLQ.
    pub from: String,
    /// The destination queue.
    pub to: String,
    /// The envelope id (none for a body that is not an envelope).
    pub envelope_id: Option<String>,
    /// The DLQ's message id.
    pub message_id: String,
    /// The message type.
    pub message_type: String,
    /// Why it had failed.
    pub reason: String,
}

fn audit_key(dlq: &str, message_id: &str) -> Key {
    Key::new(AUDIT_PK, format!("{dlq}#{message_id}"))
}

/// Every audit record, oldest first.
pub async fn audit_records(target: &Target) -> anyhow::Result<Vec<AuditRecord>> {
    let table = target.backend.table(&target.ops_table()?);
    let mut records = Vec::new();
    for item in table.query_all(Query::partition(AUDIT_PK)).await? {
        records.push(parse::<AuditRecord>(item)?);
    }
    records.sort_by(|a, b| (a.at, &a.message_id).cmp(&(b.at, &b.message_id)));
    Ok(records)
}

/// What the replay tells its caller as it goes; the command line shows a progress bar, a test
/// may stop it between a send and its delete, as a crash would.
pub trait Observer {
    /// How many messages will move.
    fn planned(&mut self, _total: usize) {}
    /// Before each send (the rate limit waits here).
    fn before_send(&mut self) {}
    /// After each send, before the audit record and the delete: `false` stops the replay on
    /// the spot, leaving the message sent and not deleted.
    fn after_send(&mut self, _sent: usize) -> bool {
        true
    }
    /// After each message moved.
    fn moved(&mut self, _record: &AuditRecord, _done: usize, _total: usize) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// A planned move.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The dead letter.
    pub letter: Letter,
    /// Where it goes, or why it cannot move.
    pub to: Result<QueueRef, String>,
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Letters selected, with their destinations (all of them, in order).
    pub planned: Vec<Planned>,
    /// Messages moved.
    pub moved: usize,
    /// Letters left in the DLQ because they were not selected.
    pub not_selected: usize,
    /// True when the observer stopped the replay.
    pub interrupted: bool,
    /// Deletes refused because the hold had ended and the message was received again.
    pub stale: usize,
}

/// Where a letter goes back to: `to` if given, else the queue it was parked from, else the
/// only queue that redrives into this DLQ.
fn destination(
    target: &Target,
    dlq: &QueueRef,
    letter: &Letter,
    to: Option<&QueueRef>,
) -> Result<QueueRef, String> {
    if let Some(to) = to {
        return Ok(to.clone());
    }
    if let Some(source) = &letter.source_queue {
        return target
            .queue_named(source)
            .ok_or_else(|| format!("its source queue {source} is not in the template; pass --to"));
    }
    match target.sources_of(&dlq.name).as_slice() {
        [only] => Ok(only.clone()),
        [] => Err("no queue redrives into this DLQ; pass --to".into()),
        _ => Err("several queues redrive into this DLQ; pass --to".into()),
    }
}

fn outgoing(letter: &Letter, dlq: &QueueRef, fifo: bool) -> Outgoing {
    let mut attributes: BTreeMap<String, String> = letter
        .message
        .attributes
        .iter()
        .filter(|(k, _)| !k.starts_with("bazaar."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    attributes.insert("bazaar.replayed-from".into(), dlq.name.clone());
    Outgoing {
        body: letter.message.body.clone(),
        attributes,
        group_id: fifo.then(|| {
            letter
                .message
                .group_id
                .clone()
                .or_else(|| letter.correlation_id.clone())
                .unwrap_or_else(|| "replay".into())
        }),
        // A send repeated after a crash is dropped by a FIFO destination.
        dedup_id: fifo.then(|| letter.message.message_id.clone()),
    }
}

/// Moves the selected dead letters of `dlq` to their source queue (or `to`). With `dry_run`
/// nothing is received or moved: the report lists what would move. `hold_s` is how long the
/// letters stay hidden from other readers while the replay runs; it must outlast the run.
pub async fn replay(
    target: &Target,
    dlq: &QueueRef,
    selection: &Selection,
    to: Option<&QueueRef>,
    dry_run: bool,
    hold_s: u32,
    observer: &mut dyn Observer,
) -> anyhow::Result<Report> {
    let backend = &target.backend;
    let mut report = Report::default();
    let held: Vec<Letter> = if dry_run {
        letters(target, dlq).await?
    } else {
        let mut held = Vec::new();
        while held.len() < MAX_SCAN {
            let batch = backend.receive(&dlq.name, 10, hold_s).await?;
            if batch.is_empty() {
                break;
            }
            held.extend(batch.into_iter().map(Letter::read));
        }
        held.sort_by(|a, b| a.message.arrival().cmp(&b.message.arrival()));
        held
    };
    let max = selection.max.unwrap_or(usize::MAX);
    let mut rest = Vec::new();
    for letter in held {
        if report.planned.len() < max && selection.selects(&letter) {
            let to = destination(target, dlq, &letter, to);
            report.planned.push(Planned { letter, to });
        } else {
            report.not_selected += 1;
            rest.push(letter);
        }
    }
    if dry_run {
        return Ok(report);
    }
    let movable = report.planned.iter().filter(|p| p.to.is_ok()).count();
    observer.planned(movable);
    let who = backend.caller().await;
    let audit = backend.table(&target.ops_table()?);
    for p in &report.planned {
        let Ok(to) = &p.to else {
            rest.push(p.letter.clone());
            continue;
        };
        let fifo = target.model.queues[&to.logical_id].fifo();
        observer.before_send();
        backend
            .send(&to.name, &outgoing(&p.letter, dlq, fifo))
            .await
            .with_context(|| format!("sending {} to {}", p.letter.message.message_id, to.name))?;
        if !observer.after_send(report.moved + 1) {
            report.interrupted = true;
            return Ok(report);
        }
        let record = AuditRecord {
            who: who.clone(),
            at: backend.now(),
            from: dlq.name.clone(),
            to: to.name.clone(),
            envelope_id: p.letter.envelope_id.clone(),
            message_id: p.letter.message.message_id.clone(),
            message_type: p.letter.message_type.clone(),
            reason: p.letter.reason.clone(),
        };
        audit
            .put(record_item(&record), None)
            .await
            .with_context(|| format!("writing the audit record of {}", record.message_id))?;
        if !backend.delete(&dlq.name, &p.letter.message.receipt).await? {
            report.stale += 1;
        }
        report.moved += 1;
        observer.moved(&record, report.moved, movable);
    }
    let receipts: Vec<String> = rest.into_iter().map(|l| l.message.receipt).collect();
    backend.release_all(&dlq.name, &receipts).await?;
    Ok(report)
}

fn record_item(r: &AuditRecord) -> bazaar_platform::item::Item {
    record(&audit_key(&r.from, &r.message_id), r)
}

/// Parses `--since`: an RFC 3339 time, or an age such as `30m`, `2h`, `1d`.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().ok().filter(|n| *n >= 0).with_context(|| {
        format!("--since {text:?}: give a time (2026-11-22T08:00:00Z) or an age (30m, 2h, 1d)")
    })?;
    let age = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => bail!("--since {text:?}: the unit must be s, m, h or d (30m, 2h, 1d)"),
    };
    Ok(now - age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn since_reads_times_and_ages() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(
            parse_since("2h", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
        );
        assert_eq!(
            parse_since("2026-11-21T00:00:00Z", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap()
        );
        assert!(parse_since("2w", now).is_err());
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("", now).is_err());
    }
}
