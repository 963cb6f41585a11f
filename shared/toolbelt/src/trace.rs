//! `bazaar trace`: every archived message of one flow, as a tree of causes, with what each
//! consumer made of it.
//!
//! The archive (the event archiver's `CORR#<correlation id>` partition) says which messages
//! the flow produced. Who should have consumed each one follows from the template's
//! subscriptions and filter policies; whether they did, from their inbox records (a consumer
//! records every envelope it processed) and from their DLQs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use bazaar_contracts::Envelope;
use bazaar_embedded::filter::{self, Attribute};
use bazaar_platform::outbox::inbox_key;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::dlq::{self, Letter};
use crate::target::Target;

/// What one consumer made of a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Handling {
    /// Its inbox records the message.
    Processed,
    /// It parked the message (or the redrive policy did): the reason.
    Parked(String),
    /// Neither yet: in its queue, or in flight.
    Pending,
}

/// One message of the flow.
#[derive(Debug, Clone)]
pub struct Node {
    /// Depth in the tree of causes (0 for a message caused by a request).
    pub depth: usize,
    /// The envelope id.
    pub id: String,
    /// The type.
    pub message_type: String,
    /// When it was produced.
    pub time: DateTime<Utc>,
    /// The producing function.
    pub source: String,
    /// The consumers the template subscribes to it, by function name, with what they did.
    pub outcomes: Vec<(String, Handling)>,
}

/// The flow of `correlation_id`, in causal order: each message after its cause, siblings by
/// time.
pub async fn trace(target: &Target, correlation_id: &str) -> anyhow::Result<Vec<Node>> {
    let archive = target.backend.table(&target.ops_table()?);
    let items = event_archiver::flow(archive.as_ref(), correlation_id)
        .await
        .context("reading the archive")?;
    let mut envelopes = Vec::new();
    for item in items {
        let text = item
            .get("envelope")
            .and_then(Value::as_str)
            .context("an archive record without its envelope")?;
        envelopes.push(Envelope::from_json(text).context("an unreadable archived envelope")?);
    }
    envelopes.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    let ids: BTreeSet<&str> = envelopes.iter().map(|e| e.id.as_str()).collect();
    let mut children: BTreeMap<Option<&str>, Vec<&Envelope>> = BTreeMap::new();
    for e in &envelopes {
        let parent = e.causation_id.as_deref().filter(|c| ids.contains(c));
        children.entry(parent).or_default().push(e);
    }
    let mut parked: HashMap<String, Vec<Letter>> = HashMap::new();
    let mut nodes = Vec::new();
    let mut stack: Vec<(usize, &Envelope)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|e| (0, *e)).collect())
        .unwrap_or_default();
    while let Some((depth, e)) = stack.pop() {
        nodes.push(Node {
            depth,
            id: e.id.clone(),
            message_type: e.message_type.clone(),
            time: e.time,
            source: e
                .source
                .strip_prefix("bazaar/")
                .unwrap_or(&e.source)
                .to_string(),
            outcomes: outcomes(target, e, &mut parked).await?,
        });
        if let Some(kids) = children.get(&Some(e.id.as_str())) {
            stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
        }
    }
    Ok(nodes)
}

async fn outcomes(
    target: &Target,
    e: &Envelope,
    parked: &mut HashMap<String, Vec<Letter>>,
) -> anyhow::Result<Vec<(String, Handling)>> {
    let Some(topic) = target.topic_name(e.topic()) else {
        return Ok(Vec::new());
    };
    let attributes: BTreeMap<String, Attribute> = e
        .attributes()
        .into_iter()
        .map(|(k, v)| (k, Attribute::string(v)))
        .collect();
    let body = e.to_json();
    let mut out = Vec::new();
    for s in target
        .model
        .subscriptions
        .iter()
        .filter(|s| s.topic == topic)
    {
        if let Some(policy) = &s.filter_policy
            && !filter::matches(policy, s.scope, &attributes, &body)
        {
            continue;
        }
        let Some(consumer) = target.consumer_of(&s.queue) else {
            continue;
        };
        // The archiver records everything: that is how the message is in this list.
        if consumer.name == "event-archiver" {
            continue;
        }
        let processed = match &consumer.table {
            Some(table) => target
                .backend
                .table(table)
                .get(&inbox_key(&consumer.name, &e.id))
                .await?
                .is_some(),
            None => false,
        };
        let handling = if processed {
            Handling::Processed
        } else {
            let dlq = target.dead_letter_queue(&s.queue)?;
            if !parked.contains_key(&dlq.name) {
                parked.insert(dlq.name.clone(), dlq::letters(target, &dlq).await?);
            }
            match parked[&dlq.name]
                .iter()
                .find(|l| l.envelope_id.as_deref() == Some(e.id.as_str()))
            {
                Some(l) => Handling::Parked(l.reason.clone()),
                None => Handling::Pending,
            }
        };
        out.push((consumer.name, handling));
    }
    out.sort();
    Ok(out)
}
