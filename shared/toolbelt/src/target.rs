//! The stack a command acts on: the template's model (names of queues, tables, topics and
//! who consumes what) and the backend that holds them.

use std::sync::Arc;

use anyhow::{Context, bail};
use bazaar_localstack::StackModel;
use bazaar_localstack::template::EventDef;

use crate::backend::Backend;

/// A queue of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// Its logical id (`OrdersSagaQueue`).
    pub logical_id: String,
    /// Its name.
    pub name: String,
}

/// A function that consumes a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRef {
    /// Its logical id (`OrdersSagaFunction`).
    pub logical_id: String,
    /// The name it records its inbox under (`orders-saga`).
    pub name: String,
    /// Its table, where its inbox lives.
    pub table: Option<String>,
}

/// The template and the backend.
pub struct Target {
    /// The template, resolved for the stage.
    pub model: StackModel,
    /// Where the resources live.
    pub backend: Arc<dyn Backend>,
}

impl Target {
    /// A target.
    pub fn new(model: StackModel, backend: Arc<dyn Backend>) -> Self {
        Target { model, backend }
    }

    fn queue_ref(&self, logical_id: &str) -> QueueRef {
        QueueRef {
            logical_id: logical_id.to_string(),
            name: self.model.queues[logical_id].name.clone(),
        }
    }

    /// Finds a queue by logical id, name or the function that consumes it (logical id or
    /// binary name), ignoring case.
    pub fn queue(&self, what: &str) -> anyhow::Result<QueueRef> {
        let lower = what.to_ascii_lowercase();
        if let Some((id, _)) = self.model.queues.iter().find(|(id, q)| {
            id.to_ascii_lowercase() == lower || q.name.to_ascii_lowercase() == lower
        }) {
            return Ok(self.queue_ref(id));
        }
        if let Some(queue) = self
            .model
            .functions
            .iter()
            .filter(|(id, f)| id.to_ascii_lowercase() == lower || f.binary == lower)
            .find_map(|(_, f)| {
                f.events.iter().find_map(|(_, e)| match e {
                    EventDef::Sqs { queue, .. } => Some(queue.clone()),
                    _ => None,
                })
            })
            && let Some((id, _)) = self.model.queues.iter().find(|(_, q)| q.name == queue)
        {
            return Ok(self.queue_ref(id));
        }
        let mut known: Vec<&str> = self.model.queues.keys().map(String::as_str).collect();
        known.sort();
        bail!(
            "no queue {what:?} in the template; give a logical id, a queue name or a consumer such as orders-saga. Queues: {}",
            known.join(", ")
        )
    }

    /// Finds a dead-letter queue: the queue named, when it is one, or the DLQ of the queue
    /// (or consumer) named.
    pub fn dead_letter_queue(&self, what: &str) -> anyhow::Result<QueueRef> {
        let q = self.queue(what)?;
        match &self.model.queues[&q.logical_id].redrive {
            Some(r) => {
                let (id, _) = self
                    .model
                    .queues
                    .iter()
                    .find(|(_, d)| d.name == r.dead_letter_queue)
                    .with_context(|| {
                        format!(
                            "{} redrives to {}, which the template does not declare",
                            q.logical_id, r.dead_letter_queue
                        )
                    })?;
                Ok(self.queue_ref(id))
            }
            None if !self.sources_of(&q.name).is_empty() => Ok(q),
            None => bail!(
                "{} is not a dead-letter queue and has no redrive policy",
                q.logical_id
            ),
        }
    }

    /// The queues whose redrive policy points at `dlq`.
    pub fn sources_of(&self, dlq: &str) -> Vec<QueueRef> {
        self.model
            .queues
            .iter()
            .filter(|(_, q)| {
                q.redrive
                    .as_ref()
                    .is_some_and(|r| r.dead_letter_queue == dlq)
            })
            .map(|(id, _)| self.queue_ref(id))
            .collect()
    }

    /// The queue called `name` (a name, URL or ARN).
    pub fn queue_named(&self, name_url_or_arn: &str) -> Option<QueueRef> {
        let name = bazaar_embedded::engine::name_of(name_url_or_arn);
        self.model
            .queues
            .iter()
            .find(|(_, q)| q.name == name)
            .map(|(id, _)| self.queue_ref(id))
    }

    /// The function that consumes the queue called `queue`.
    pub fn consumer_of(&self, queue: &str) -> Option<ConsumerRef> {
        self.model.functions.iter().find_map(|(id, f)| {
            let consumes = f
                .events
                .iter()
                .any(|(_, e)| matches!(e, EventDef::Sqs { queue: q, .. } if q == queue));
            consumes.then(|| ConsumerRef {
                logical_id: id.clone(),
                name: f.name(),
                table: f.environment.get("TABLE_NAME").cloned(),
            })
        })
    }

    /// The operations table: where the event archive and the toolbelt's audit records live.
    pub fn ops_table(&self) -> anyhow::Result<String> {
        self.model
            .functions
            .values()
            .find(|f| f.binary == "event-archiver")
            .and_then(|f| f.environment.get("TABLE_NAME"))
            .cloned()
            .context("the template has no event-archiver with a table (the operations table)")
    }

    /// The name of a topic by its logical name (`order`, `tasks`), as functions find it in
    /// their `TOPIC_ARN_<NAME>` variables.
    pub fn topic_name(&self, logical: &str) -> Option<String> {
        let var = format!("TOPIC_ARN_{}", logical.to_ascii_uppercase());
        self.model.functions.values().find_map(|f| {
            f.environment
                .get(&var)
                .map(|arn| bazaar_embedded::engine::name_of(arn).to_string())
        })
    }
}
