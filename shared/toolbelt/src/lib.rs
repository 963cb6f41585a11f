//! The operators' toolbelt (`bazaar`): inspect the queues of a running stack, and replay
//! archived events into one consumer ([`replay`]).
//!
//! It reads the local stack's store (the SQLite file under `.bazaar/`). Each command is a
//! function over the engine or a [`QueueView`], so that tests run it on an in-memory engine.
#![forbid(unsafe_code)]

pub mod replay;

use std::sync::Arc;

use bazaar_embedded::Engine;
use bazaar_localstack::StackModel;
use serde_json::{Value, json};

/// One queue's line in `bazaar queues`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    /// The template's logical id.
    pub logical_id: String,
    /// The queue's name.
    pub name: String,
    /// Messages ready to be received.
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Age of the oldest message, in seconds (consumer lag).
    pub oldest_age_s: i64,
    /// The DLQ's name, for a queue with a redrive policy.
    pub dlq: Option<String>,
    /// Messages waiting in that DLQ.
    pub dlq_depth: u64,
}

/// Where queue counts come from.
pub trait QueueView {
    /// Counts of one queue: visible, in flight, oldest age in seconds.
    fn counts(&self, name: &str) -> anyhow::Result<(u64, u64, i64)>;
}

impl QueueView for Arc<Engine> {
    fn counts(&self, name: &str) -> anyhow::Result<(u64, u64, i64)> {
        let s = self.stats(name)?;
        Ok((s.visible + s.delayed, s.in_flight, s.oldest_age_ms / 1000))
    }
}

/// Every queue of the template that has a redrive policy (the consumers' queues), with its
/// DLQ's depth.
pub fn queues(model: &StackModel, view: &dyn QueueView) -> anyhow::Result<Vec<QueueRow>> {
    let mut rows = Vec::new();
    for (id, q) in &model.queues {
        let Some(redrive) = &q.redrive else { continue };
        let (visible, in_flight, oldest_age_s) = view.counts(&q.name)?;
        let (dv, df, _) = view.counts(&redrive.dead_letter_queue)?;
        rows.push(QueueRow {
            logical_id: id.clone(),
            name: q.name.clone(),
            visible,
            in_flight,
            oldest_age_s,
            dlq: Some(redrive.dead_letter_queue.clone()),
            dlq_depth: dv + df,
        });
    }
    Ok(rows)
}

/// The rows as a table for people.
pub fn render_table(rows: &[QueueRow]) -> String {
    let mut out = format!(
        "{:<28} {:>8} {:>9} {:>8} {:>9}\n",
        "QUEUE", "VISIBLE", "IN FLIGHT", "OLDEST", "DLQ DEPTH"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<28} {:>8} {:>9} {:>7}s {:>9}{}\n",
            r.logical_id,
            r.visible,
            r.in_flight,
            r.oldest_age_s,
            r.dlq_depth,
            if r.dlq_depth > 0 {
                "  <- needs attention"
            } else {
                ""
            }
        ));
    }
    out
}

/// The rows as JSON for scripts.
pub fn render_json(rows: &[QueueRow]) -> Value {
    Value::Array(rows.iter().map(|r| json!({"queue": r.logical_id, "name": r.name, "visible": r.visible, "in_flight": r.in_flight, "oldest_age_seconds": r.oldest_age_s, "dlq": r.dlq, "dlq_depth": r.dlq_depth})).collect())
}
