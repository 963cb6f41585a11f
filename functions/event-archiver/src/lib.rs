//! `event-archiver`: subscribed to every topic, it stores every envelope it receives in the ops
//! table, whatever its type, so that a flow can be traced and events replayed (to rebuild
//! derived state such as the search index).
//!
//! Records, each keyed and filled from the envelope alone, so that a redelivery rewrites them
//! unchanged: the consumer is idempotent ([`Consumer::idempotent`]), with no inbox record and
//! no transaction, which halves what an archived message costs in write units:
//! - `EVENT#<id>`: the envelope, with its type, time and correlation id;
//! - `TYPE#<type>`, sorted by time then id: the envelopes of one type in their original order;
//! - `TYPES`: every type seen (so that `product.*` can be expanded);
//! - `CORR#<correlation id>`, sorted by time then id: one flow.
#![forbid(unsafe_code)]

use std::sync::Arc;

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
        .on_any(Arc::new(Archiver))
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
pub struct Archiver;

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
        work.put(
            item(
                &Key::new(format!("EVENT#{}", envelope.id), "EVENT"),
                summary.clone(),
            ),
            None,
        );
        work.put(
            item(
                &Key::new(format!("TYPE#{}", envelope.message_type), sk.as_str()),
                summary.clone(),
            ),
            None,
        );
        work.put(
            item(
                &Key::new(TYPES_PK, envelope.message_type.as_str()),
                json!({ "type": envelope.message_type }),
            ),
            None,
        );
        work.put(
            item(
                &Key::new(format!("CORR#{}", envelope.correlation_id), sk.as_str()),
                summary,
            ),
            None,
        );
        Ok(())
    }
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
    let mut found: Vec<(String, Envelope)> = Vec::new();
    for t in types {
        for i in all(table, format!("TYPE#{t}")).await? {
            let text = i
                .get("envelope")
                .and_then(Value::as_str)
                .ok_or_else(|| HandlerError::bug("an archive record without its envelope"))?;
            let envelope = Envelope::from_json(text).map_err(|e| {
                HandlerError::bug(format!("an archived envelope is unreadable: {e}"))
            })?;
            found.push((ordered(&envelope), envelope));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, e)| e).collect())
}

/// The archived envelopes of one flow, in order.
pub async fn flow(table: &dyn Table, correlation_id: &str) -> Result<Vec<Value>, HandlerError> {
    Ok(all(table, format!("CORR#{correlation_id}"))
        .await?
        .into_iter()
        .map(Value::Object)
        .collect())
}
