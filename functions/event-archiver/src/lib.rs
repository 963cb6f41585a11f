//! `event-archiver`: subscribed to every topic, it stores every envelope it receives in the ops
//! table, whatever its type, so that a flow can be traced and events replayed (to rebuild
//! derived state such as the search index).
//!
//! Records, each keyed and filled from the envelope alone, so that a redelivery rewrites them
//! unchanged: the consumer is idempotent ([`Consumer::idempotent`]), with no inbox record and
//! no transaction, which halves what an archived message costs in write units:
//! - `CORR#<correlation id>`, sorted by time then id: the envelope, with its type, time and
//!   correlation id; one flow in order (`bazaar trace`), the record that says an envelope
//!   was archived ([`is_archived`]), and what a replay by type reads ([`archived`]);
//! - `TYPES`: every type seen (so that `product.*` can be expanded), written only while a
//!   read does not find the type there; each process remembers the types it found, so that
//!   this costs one read per type per process rather than a write per message;
//! - `SKU#<sku>`, sorted by time then id: a pointer (type, time, correlation id) per message
//!   about the sku (its `sku` field, or a line of an `order.placed`), so that `bazaar trace
//!   <sku>` finds the flows that touched it. One more write for those messages only: the
//!   order flow's other messages name no sku.
//!
//! Each write is a DynamoDB write unit or more, and the archive takes every message of the
//! system: nothing is written that no reader asks for (a record per envelope id was, and
//! nothing read it). A copy of every envelope under its type (`TYPE#<type>`) was written for
//! replays too, one write unit per message of the system: a replay by type, which an
//! operator runs a few times a year to rebuild a read model, now reads the flows' records
//! with one scan of the table instead (read units are a fifth of the price of write units,
//! and a scan reads 4 KB per unit), see docs/decisions.md "The archive keeps one copy".

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bazaar_contracts::Envelope;
use bazaar_platform::item::{Key, Query, item};
use bazaar_platform::ports::Table;
use bazaar_platform::sqs::{Consumer, HandleEnvelope};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use serde_json::{Value, json};

/// Builds the function with its SQS trigger: it handles every type.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let consumer = Consumer::new(deps.clone())
        .on_any(Arc::new(Archiver::default()))
        .idempotent();
    Ok(Function::new(deps).sqs(consumer))
}

/// The partition listing every archived type.
pub const TYPES_PK: &str = "TYPES";

/// The sort key of an envelope in the per-type and per-flow partitions.
fn ordered(envelope: &Envelope) -> String {
    format!(
        "{}#{}",
        envelope.time.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        envelope.id
    )
}

/// The handler.
#[derive(Default)]
pub struct Archiver {
    /// The types this process found in `TYPES`: no need to read or write them again. Only a
    /// read that found the record adds to it, never a write that may not have committed.
    known_types: Mutex<HashSet<String>>,
}

impl Archiver {
    fn knows(&self, message_type: &str) -> bool {
        self.known_types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(message_type)
    }

    fn learn(&self, message_type: &str) {
        self.known_types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(message_type.to_string());
    }
}

#[async_trait]
impl HandleEnvelope for Archiver {
    async fn handle(&self, envelope: &Envelope, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let text = envelope.to_json();
        let summary = json!({
            "id": envelope.id,
            "type": envelope.message_type,
            "time": envelope.time,
            "source": envelope.source,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
            "envelope": text,
        });
        let sk = ordered(envelope);
        if !self.knows(&envelope.message_type) {
            let key = Key::new(TYPES_PK, envelope.message_type.as_str());
            if work.table()?.get(&key).await?.is_some() {
                self.learn(&envelope.message_type);
            } else {
                work.put(item(&key, json!({ "type": envelope.message_type })), None);
            }
        }
        work.put(
            item(
                &Key::new(
                    format!("{CORR_PREFIX}{}", envelope.correlation_id),
                    sk.as_str(),
                ),
                summary,
            ),
            None,
        );
        for sku in skus_of(envelope) {
            work.put(
                item(
                    &Key::new(format!("{SKU_PREFIX}{sku}"), sk.as_str()),
                    json!({
                        "type": envelope.message_type,
                        "time": envelope.time,
                        "correlation_id": envelope.correlation_id,
                    }),
                ),
                None,
            );
        }
        Ok(())
    }
}

/// The partition prefix of a flow's records.
pub const CORR_PREFIX: &str = "CORR#";

/// The partition prefix of a sku's pointers.
pub const SKU_PREFIX: &str = "SKU#";

/// The skus a message is about: its `sku` field, or the lines of an order's placement (the
/// one order message that names them; the rest of the order's flow is found through it).
fn skus_of(envelope: &Envelope) -> Vec<String> {
    let data = envelope.data.value();
    if let Some(sku) = data.get("sku").and_then(Value::as_str) {
        return vec![sku.to_string()];
    }
    if envelope.message_type != "order.placed" {
        return Vec::new();
    }
    let mut skus: Vec<String> = data
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|line| line.get("sku").and_then(Value::as_str).map(String::from))
        .collect();
    skus.sort();
    skus.dedup();
    skus
}

/// The flows that touched `sku`: each correlation id once, with its first message about the
/// sku (type and time), oldest first.
pub async fn flows_of_sku(
    table: &dyn Table,
    sku: &str,
) -> Result<Vec<(String, String, String)>, HandlerError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for i in all(table, format!("{SKU_PREFIX}{sku}")).await? {
        let field = |name: &str| {
            i.get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let correlation_id = field("correlation_id");
        if seen.insert(correlation_id.clone()) {
            out.push((correlation_id, field("type"), field("time")));
        }
    }
    Ok(out)
}

async fn all(
    table: &dyn Table,
    pk: String,
) -> Result<Vec<bazaar_platform::item::Item>, HandlerError> {
    Ok(table.query_all(Query::partition(pk)).await?)
}

/// Every archived type.
pub async fn archived_types(table: &dyn Table) -> Result<Vec<String>, HandlerError> {
    Ok(all(table, TYPES_PK.into())
        .await?
        .into_iter()
        .filter_map(|i| i.get("type").and_then(Value::as_str).map(String::from))
        .collect())
}

/// The archived envelopes of the given types, in their original order (time, then id).
pub async fn archived(table: &dyn Table, types: &[String]) -> Result<Vec<Envelope>, HandlerError> {
    archived_with_progress(table, types, |_| {}).await
}

/// How many items a page of the archive's scan asks for.
const SCAN_PAGE: usize = 1_000;

/// As [`archived`], calling `progress(items read so far)` after each page of the scan: the
/// archive holds every message of the system, and a replay reads all of it.
pub async fn archived_with_progress(
    table: &dyn Table,
    types: &[String],
    mut progress: impl FnMut(usize),
) -> Result<Vec<Envelope>, HandlerError> {
    let mut found: Vec<(String, Envelope)> = Vec::new();
    let mut read = 0;
    let mut start_after = None;
    loop {
        let page = table.scan(start_after.take(), SCAN_PAGE).await?;
        read += page.items.len();
        for i in &page.items {
            let in_flow = i
                .get("pk")
                .and_then(Value::as_str)
                .is_some_and(|pk| pk.starts_with(CORR_PREFIX));
            let of_type = i
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| types.iter().any(|wanted| wanted == t));
            if !(in_flow && of_type) {
                continue;
            }
            let text = i
                .get("envelope")
                .and_then(Value::as_str)
                .ok_or_else(|| HandlerError::bug("an archive record without its envelope"))?;
            let envelope = Envelope::from_json(text).map_err(|e| {
                HandlerError::bug(format!("an archived envelope is unreadable: {e}"))
            })?;
            found.push((ordered(&envelope), envelope));
        }
        progress(read);
        match page.last_key {
            Some(key) => start_after = Some(key),
            None => break,
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, e)| e).collect())
}

/// Whether `envelope` was archived (its record in its flow's partition).
pub async fn is_archived(table: &dyn Table, envelope: &Envelope) -> Result<bool, HandlerError> {
    let key = Key::new(
        format!("{CORR_PREFIX}{}", envelope.correlation_id),
        ordered(envelope),
    );
    Ok(table.get(&key).await?.is_some())
}

/// The archived envelopes of one flow, in order.
pub async fn flow(table: &dyn Table, correlation_id: &str) -> Result<Vec<Value>, HandlerError> {
    Ok(all(table, format!("{CORR_PREFIX}{correlation_id}"))
        .await?
        .into_iter()
        .map(Value::Object)
        .collect())
}
