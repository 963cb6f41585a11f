//! What the toolbelt reads and changes, as one port with two adapters: the local stack's
//! store ([`LocalBackend`]) and the AWS APIs (`crate::aws::AwsBackend`, real AWS or any
//! compatible endpoint). Every command is written once against [`Backend`], so that the same
//! code runs on a laptop and in production.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_embedded::filter::Attribute;
use bazaar_embedded::{EmbeddedPublisher, EmbeddedTable, Engine, Received};
use bazaar_platform::ports::{Publisher, Table, Topics};
use chrono::{DateTime, TimeZone, Utc};

/// Counts of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Messages that can be received now (delayed ones included).
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
}

/// A message as read from a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMessage {
    /// The queue's id of the message.
    pub message_id: String,
    /// The handle to delete or release it with (empty when only peeked).
    pub receipt: String,
    /// The body.
    pub body: String,
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
    /// How many times it was received (the toolbelt's own reads included).
    pub receive_count: u32,
    /// When it was sent to this queue.
    pub sent_at: DateTime<Utc>,
    /// FIFO message group.
    pub group_id: Option<String>,
}

impl QueueMessage {
    /// The order messages are shown and moved in: oldest first, ties by id.
    pub fn arrival(&self) -> (DateTime<Utc>, &str) {
        (self.sent_at, &self.message_id)
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The body.
    pub body: String,
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
    /// FIFO message group.
    pub group_id: Option<String>,
    /// FIFO deduplication id.
    pub dedup_id: Option<String>,
}

/// Where the toolbelt's commands act.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Names the target for people (printed at the top of long operations).
    fn describe(&self) -> String;
    /// The current time (the engine's clock locally, so that tests drive it).
    fn now(&self) -> DateTime<Utc>;
    /// The clock itself, for what waits on it (a migration's rate limit).
    fn clock(&self) -> Arc<dyn bazaar_platform::clock::Clock>;
    /// Who runs the command, for audit records.
    async fn caller(&self) -> String;
    /// Counts of a queue, by name.
    async fn counts(&self, queue: &str) -> anyhow::Result<Counts>;
    /// Age of a queue's oldest message in seconds; `None` when the backend cannot tell.
    async fn oldest_age(&self, queue: &str) -> Option<i64>;
    /// Receives up to `max` (1 to 10) messages and hides them for `hold_s` seconds.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        hold_s: u32,
    ) -> anyhow::Result<Vec<QueueMessage>>;
    /// Makes a received message visible again at once.
    async fn release(&self, queue: &str, receipt: &str) -> anyhow::Result<()>;
    /// Makes received messages visible again at once (in batches where the service has them).
    async fn release_all(&self, queue: &str, receipts: &[String]) -> anyhow::Result<()> {
        for r in receipts {
            self.release(queue, r).await?;
        }
        Ok(())
    }
    /// Deletes a received message; false when its receipt is stale.
    async fn delete(&self, queue: &str, receipt: &str) -> anyhow::Result<bool>;
    /// Sends a message to a queue.
    async fn send(&self, queue: &str, message: &Outgoing) -> anyhow::Result<()>;
    /// Every message of a queue, left as it was (except, on SQS, its receive count).
    async fn peek(&self, queue: &str) -> anyhow::Result<Vec<QueueMessage>> {
        let mut seen = BTreeMap::new();
        loop {
            let batch = self.receive(queue, 10, 60).await?;
            if batch.is_empty() || batch.iter().all(|m| seen.contains_key(&m.message_id)) {
                break;
            }
            for m in batch {
                seen.insert(m.message_id.clone(), m);
            }
        }
        let receipts: Vec<String> = seen.values().map(|m| m.receipt.clone()).collect();
        self.release_all(queue, &receipts).await?;
        let mut all: Vec<QueueMessage> = seen.into_values().collect();
        all.sort_by(|a, b| a.arrival().cmp(&b.arrival()));
        Ok(all)
    }
    /// The ARN of a topic, by name.
    async fn topic_arn(&self, topic: &str) -> anyhow::Result<String>;
    /// A publisher for the given topics (logical name to ARN).
    fn publisher(&self, topics: Topics) -> Arc<dyn Publisher>;
    /// A table, by name.
    fn table(&self, name: &str) -> Arc<dyn Table>;
    /// The secret store (the engine's, or Secrets Manager).
    fn secrets(&self) -> Arc<dyn bazaar_platform::secrets::SecretAdmin>;
    /// Deletes every item of a table; returns how many went.
    async fn empty_table(&self, name: &str) -> anyhow::Result<usize>;
}

/// The local stack's store: the SQLite file `scripts/dev` writes (or an in-memory engine in
/// tests).
pub struct LocalBackend {
    engine: Arc<Engine>,
    description: String,
}

impl LocalBackend {
    /// The toolbelt on an engine.
    pub fn new(engine: Arc<Engine>, description: impl Into<String>) -> Self {
        LocalBackend {
            engine,
            description: description.into(),
        }
    }
}

fn from_received(r: Received) -> QueueMessage {
    QueueMessage {
        message_id: r.message_id,
        receipt: r.receipt_handle,
        body: r.body,
        attributes: r
            .attributes
            .into_iter()
            .map(|(k, a)| (k, a.value))
            .collect(),
        receive_count: r.receive_count,
        sent_at: Utc
            .timestamp_millis_opt(r.sent_at_ms)
            .single()
            .unwrap_or_default(),
        group_id: r.group_id,
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn now(&self) -> DateTime<Utc> {
        self.engine.clock().now()
    }

    fn clock(&self) -> Arc<dyn bazaar_platform::clock::Clock> {
        self.engine.clock().clone()
    }

    async fn caller(&self) -> String {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        format!("local:{user}")
    }

    async fn counts(&self, queue: &str) -> anyhow::Result<Counts> {
        let s = self.engine.stats(queue)?;
        Ok(Counts {
            visible: s.visible + s.delayed,
            in_flight: s.in_flight,
        })
    }

    async fn oldest_age(&self, queue: &str) -> Option<i64> {
        self.engine
            .stats(queue)
            .ok()
            .map(|s| s.oldest_age_ms / 1000)
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        hold_s: u32,
    ) -> anyhow::Result<Vec<QueueMessage>> {
        Ok(self
            .engine
            .receive(queue, max, Some(hold_s))?
            .into_iter()
            .map(from_received)
            .collect())
    }

    async fn release(&self, queue: &str, receipt: &str) -> anyhow::Result<()> {
        self.engine.change_visibility(queue, receipt, 0)?;
        Ok(())
    }

    async fn delete(&self, queue: &str, receipt: &str) -> anyhow::Result<bool> {
        Ok(self.engine.delete(queue, receipt)?)
    }

    async fn send(&self, queue: &str, message: &Outgoing) -> anyhow::Result<()> {
        let attributes = message
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Attribute::string(v.clone())))
            .collect();
        self.engine.send(
            queue,
            &message.body,
            attributes,
            message.group_id.as_deref(),
            message.dedup_id.as_deref(),
        )?;
        Ok(())
    }

    /// The store can be read without receiving, so a peek changes nothing at all.
    async fn peek(&self, queue: &str) -> anyhow::Result<Vec<QueueMessage>> {
        Ok(self
            .engine
            .peek(queue)?
            .into_iter()
            .map(from_received)
            .collect())
    }

    async fn topic_arn(&self, topic: &str) -> anyhow::Result<String> {
        Ok(bazaar_embedded::engine::topic_arn(topic))
    }

    fn publisher(&self, topics: Topics) -> Arc<dyn Publisher> {
        Arc::new(EmbeddedPublisher::new(self.engine.clone(), topics))
    }

    fn table(&self, name: &str) -> Arc<dyn Table> {
        Arc::new(EmbeddedTable::new(self.engine.clone(), name))
    }

    fn secrets(&self) -> Arc<dyn bazaar_platform::secrets::SecretAdmin> {
        Arc::new(bazaar_embedded::EmbeddedSecrets(self.engine.clone()))
    }

    async fn empty_table(&self, name: &str) -> anyhow::Result<usize> {
        Ok(self.engine.clear_table(name)?)
    }
}
