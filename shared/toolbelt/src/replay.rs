//! `bazaar replay`: sends archived events of chosen types, in their original order, into one
//! consumer's queue only, so that it rebuilds derived state without any other consumer seeing
//! the events again. With `--empty-table` the consumer's table is emptied first (its derived
//! state and its inbox, so that the replayed envelopes are not skipped as already processed).

use std::io::Write;

use anyhow::{Context, bail};
use bazaar_contracts::Envelope;
use bazaar_localstack::template::EventDef;

use crate::backend::Outgoing;
use crate::target::Target;

/// What a replay will do.
#[derive(Debug)]
pub struct Plan {
    /// The consumer, by logical id.
    pub function: String,
    /// Its queue.
    pub queue: String,
    /// Its table, when it has one.
    pub table: Option<String>,
    /// The archived types selected (matching the patterns and taken by the consumer).
    pub types: Vec<String>,
    /// Types matching the patterns that the consumer does not subscribe to: not sent.
    pub skipped: Vec<String>,
    /// The envelopes, in their original order.
    pub envelopes: Vec<Envelope>,
}

/// Whether a type matches a pattern: exact, or a prefix ending in `*` (`product.*`).
pub fn matches(pattern: &str, message_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => message_type.starts_with(prefix),
        None => pattern == message_type,
    }
}

/// Finds the consumer (`to`: a logical id such as `SearchIndexerFunction`, or a binary name
/// such as `search-indexer`) and the archived envelopes of the types matching `patterns`.
/// The archive is read with one scan of the whole table ([`event_archiver::archived`]):
/// `progress(items read)` is called after each page.
pub async fn plan(
    target: &Target,
    patterns: &[String],
    to: &str,
    progress: impl FnMut(usize),
) -> anyhow::Result<Plan> {
    let model = &target.model;
    let (function, def) = model
        .functions
        .iter()
        .find(|(id, f)| id.as_str() == to || f.binary == to)
        .with_context(|| {
            format!(
                "no function {to:?} in the template (give a logical id such as SearchIndexerFunction, or a binary name such as search-indexer)"
            )
        })?;
    let queue = def
        .events
        .iter()
        .find_map(|(_, e)| match e {
            EventDef::Sqs { queue, .. } => Some(queue.clone()),
            _ => None,
        })
        .with_context(|| format!("{function} has no SQS queue to replay into"))?;
    let archive = target.backend.table(&target.ops_table()?);
    // Only the types the consumer subscribes to: anything else it would park as unknown.
    let accepted = |t: &str| {
        model
            .subscriptions
            .iter()
            .filter(|s| s.queue == queue)
            .any(
                |s| match s.filter_policy.as_ref().and_then(|p| p.get("type")) {
                    None => true,
                    Some(serde_json::Value::Array(list)) => list.iter().any(|v| v == t),
                    Some(_) => false,
                },
            )
    };
    let selected: Vec<String> = event_archiver::archived_types(archive.as_ref())
        .await?
        .into_iter()
        .filter(|t| patterns.iter().any(|p| matches(p, t)))
        .collect();
    let (types, skipped): (Vec<String>, Vec<String>) =
        selected.into_iter().partition(|t| accepted(t));
    if types.is_empty() {
        bail!(
            "no archived events of the types {patterns:?} that {function} subscribes to{}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" (it does not take {})", skipped.join(", "))
            }
        );
    }
    let envelopes =
        event_archiver::archived_with_progress(archive.as_ref(), &types, progress).await?;
    Ok(Plan {
        function: function.clone(),
        queue,
        table: def.environment.get("TABLE_NAME").cloned(),
        types,
        skipped,
        envelopes,
    })
}

/// Empties the consumer's table (derived state and inbox); returns how many items went.
pub async fn empty_table(target: &Target, plan: &Plan) -> anyhow::Result<usize> {
    let table = plan
        .table
        .as_ref()
        .with_context(|| format!("{} has no table to empty", plan.function))?;
    target.backend.empty_table(table).await
}

/// Sends the planned envelopes to the consumer's queue with the attributes the publisher sets,
/// calling `progress(done, total)` after each.
pub async fn send(
    target: &Target,
    plan: &Plan,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<usize> {
    let total = plan.envelopes.len();
    for (i, envelope) in plan.envelopes.iter().enumerate() {
        let (body, attributes) = bazaar_platform::ports::encode_for_publish(envelope)?;
        let fifo = bazaar_embedded::QueueConfig::new(plan.queue.clone()).fifo();
        let message = Outgoing {
            body,
            attributes,
            group_id: fifo.then(|| envelope.correlation_id.clone()),
            dedup_id: fifo.then(|| envelope.id.clone()),
        };
        target
            .backend
            .send(&plan.queue, &message)
            .await
            .with_context(|| format!("sending {} to {}", envelope.id, plan.queue))?;
        progress(i + 1, total);
    }
    Ok(total)
}

/// A progress bar on standard error: `[#####.....] 120/500`.
pub fn progress_bar(done: usize, total: usize) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    if done == total {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_are_exact_or_prefixes() {
        assert!(matches("product.*", "product.published"));
        assert!(matches("product.published", "product.published"));
        assert!(!matches("product.*", "price.updated"));
        assert!(!matches("product.published", "product.withdrawn"));
    }
}
