//! The operators' toolbelt (`bazaar`): queues and their lag, dead letters grouped by reason
//! and moved back with an audit trail, publishing a message by hand, tracing a flow,
//! replaying archived events into one consumer, the running stack at a glance (`top`), where
//! each outside channel stands, and the users operators make, approve, disable and list.
//!
//! Every command is a function over a [`Target`]: the template's model (names and wiring) and
//! a [`Backend`] that holds the resources, either the local stack's store or the AWS APIs
//! (real AWS, or any compatible endpoint). The command line (`main.rs`) only parses options
//! and prints what [`render`] makes of the results; tests call the same functions.
#![forbid(unsafe_code)]

pub mod aws;
pub mod backend;
pub mod channels;
pub mod dlq;
pub mod migrate;
pub mod publish;
pub mod render;
pub mod replay;
pub mod sam;
pub mod secrets;
pub mod smoke;
pub mod target;
pub mod top;
pub mod trace;
pub mod users;

pub use backend::{Backend, LocalBackend};
pub use target::Target;

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
    /// Age of the oldest message, in seconds (consumer lag), when the backend can tell.
    pub oldest_age_s: Option<i64>,
    /// The DLQ's name.
    pub dlq: Option<String>,
    /// Messages waiting in that DLQ.
    pub dlq_depth: u64,
}

/// Every queue of the template that has a redrive policy (the consumers' queues), with its
/// DLQ's depth.
pub async fn queues(target: &Target) -> anyhow::Result<Vec<QueueRow>> {
    let mut rows = Vec::new();
    for (id, q) in &target.model.queues {
        let Some(redrive) = &q.redrive else { continue };
        let c = target.backend.counts(&q.name).await?;
        let d = target.backend.counts(&redrive.dead_letter_queue).await?;
        rows.push(QueueRow {
            logical_id: id.clone(),
            name: q.name.clone(),
            visible: c.visible,
            in_flight: c.in_flight,
            // Asked for the consumer queues only: on AWS each costs a CloudWatch read.
            oldest_age_s: target.backend.oldest_age(&q.name).await,
            dlq: Some(redrive.dead_letter_queue.clone()),
            dlq_depth: d.visible + d.in_flight,
        });
    }
    Ok(rows)
}

/// The rows as JSON for scripts.
pub fn queues_json(rows: &[QueueRow]) -> Value {
    Value::Array(rows.iter().map(|r| json!({"queue": r.logical_id, "name": r.name, "visible": r.visible, "in_flight": r.in_flight, "oldest_age_seconds": r.oldest_age_s, "dlq": r.dlq, "dlq_depth": r.dlq_depth})).collect())
}
