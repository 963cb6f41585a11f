//! Event source mappings: what Lambda's SQS pollers do for the local stack. Each mapping takes
//! a batch from its queue when one is ready (a full batch, or a partial one whose
//! `MaximumBatchingWindowInSeconds` closed), invokes its function with it, deletes what
//! succeeded and leaves the failures (partial batch responses) to come back after their
//! visibility timeout. On an AWS API the mapping polls the real queue instead.

use std::sync::Mutex;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use bazaar_embedded::engine::{ACCOUNT, REGION, queue_arn};
use bazaar_embedded::{Engine, Received};

use crate::functions::Functions;

/// One SQS trigger of a function.
pub(crate) struct Esm {
    /// The function's logical id.
    pub(crate) function: String,
    /// The queue's name.
    pub(crate) queue: String,
    pub(crate) batch_size: usize,
    /// The batching window (0: deliver whatever is visible at once).
    pub(crate) window_ms: i64,
    pub(crate) report_failures: bool,
    /// When the window of a partial batch opened.
    pub(crate) window_started: Mutex<Option<i64>>,
    /// On an AWS API: the poller of the real queue.
    pub(crate) poller: Option<crate::aws::SqsPoller>,
}

impl Esm {
    /// Polls once: hands a batch to the function when one is ready (a full batch, or a
    /// partial one whose batching window closed), deletes what succeeded. Returns how many
    /// messages were handed over.
    pub(crate) async fn poll(&self, engine: &Engine, functions: &Functions) -> usize {
        let esm = self;
        if let Some(poller) = &esm.poller {
            return match poller.poll_once(0).await {
                Ok((n, _)) => n,
                Err(e) => {
                    tracing::error!(queue = %esm.queue, error = %e, "polling failed");
                    0
                }
            };
        }
        // Without a batching window a poller takes whatever is there, so it needs no count
        // first: an empty receive says the same, in one statement fewer per batch.
        if esm.window_ms > 0 {
            let Ok(visible) = engine.visible_up_to(&esm.queue, esm.batch_size) else {
                return 0;
            };
            let now = engine.clock().now().timestamp_millis();
            let mut started = esm.window_started.lock().expect("esm lock");
            if visible == 0 {
                *started = None;
                return 0;
            }
            if visible < esm.batch_size {
                let since = *started.get_or_insert(now);
                if now - since < esm.window_ms {
                    return 0;
                }
            }
            *started = None;
        }
        let mut batch: Vec<Received> = Vec::new();
        while batch.len() < esm.batch_size {
            let want = (esm.batch_size - batch.len()).min(10);
            match engine.receive(&esm.queue, want, None) {
                // Fewer than asked for: the queue has no more to give now.
                Ok(got) if got.len() < want => {
                    batch.extend(got);
                    break;
                }
                Ok(got) => batch.extend(got),
                Err(e) => {
                    tracing::error!(queue = %esm.queue, error = %e, "receive failed");
                    break;
                }
            }
        }
        if batch.is_empty() {
            return 0;
        }
        let event = sqs_batch(&esm.queue, &batch);
        let outcome = functions.invoke_batch(&esm.function, event).await;
        let failed: Vec<String> = match &outcome {
            Ok(response) if esm.report_failures => {
                let ids: Vec<&str> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                // As on Lambda: an unknown or empty identifier fails the whole batch.
                if ids
                    .iter()
                    .any(|id| id.is_empty() || !batch.iter().any(|m| m.message_id == *id))
                {
                    batch.iter().map(|m| m.message_id.clone()).collect()
                } else {
                    ids.into_iter().map(String::from).collect()
                }
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::error!(function = %esm.function, queue = %esm.queue, error = %e, "invocation failed; the whole batch will be retried");
                batch.iter().map(|m| m.message_id.clone()).collect()
            }
        };
        let done = batch
            .iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt_handle.as_str());
        if let Err(e) = engine.delete_all(&esm.queue, done) {
            // The messages stay and come back after their visibility timeout: delivered again,
            // which the functions' inboxes absorb.
            tracing::error!(queue = %esm.queue, error = %e, "deleting processed messages failed");
        }
        batch.len()
    }

    /// When this mapping has something to do next (a message becomes visible, or its window
    /// closes), in epoch milliseconds.
    pub(crate) fn next_due_ms(&self, engine: &Engine) -> Option<i64> {
        let visible = engine.next_visible_ms(&self.queue).ok().flatten();
        let window = self
            .window_started
            .lock()
            .expect("esm lock")
            .map(|s| s + self.window_ms);
        [visible, window].into_iter().flatten().min()
    }

    /// Runs this mapping's poller until `stop` says so, as Lambda's poller does: a batch as
    /// soon as one is ready, then waiting for a send or the next due time (a second at most).
    pub(crate) async fn run(
        &self,
        engine: &Engine,
        functions: &Functions,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *stop.borrow() {
                return;
            }
            let changed = engine.next_change();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.poll(engine, functions).await > 0 {
                // An embedded function may run to the end without ever waiting: let the
                // other pollers and the HTTP side have the thread between batches.
                tokio::task::yield_now().await;
                continue;
            }
            let now = engine.clock().now().timestamp_millis();
            let wait = self
                .next_due_ms(engine)
                .map(|t| std::time::Duration::from_millis((t - now).max(0) as u64))
                .unwrap_or(std::time::Duration::from_secs(1))
                .min(std::time::Duration::from_secs(1));
            tokio::select! {
                _ = stop.changed() => return,
                _ = &mut changed => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The Lambda SQS event for a batch of received messages.
pub fn sqs_batch(queue: &str, batch: &[Received]) -> SqsEvent {
    let arn = queue_arn(queue);
    let records = batch
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes = [
                ("ApproximateReceiveCount", m.receive_count.to_string()),
                ("SentTimestamp", m.sent_at_ms.to_string()),
                ("SenderId", ACCOUNT.to_string()),
                (
                    "ApproximateFirstReceiveTimestamp",
                    m.first_receive_ms.to_string(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(
                m.group_id
                    .iter()
                    .map(|g| ("MessageGroupId".to_string(), g.clone())),
            )
            .collect();
            record.message_attributes = m
                .attributes
                .iter()
                .map(|(k, a)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.string_value = Some(a.value.clone());
                    attribute.data_type = Some(a.data_type.clone());
                    (k.clone(), attribute)
                })
                .collect();
            record.event_source = Some("aws:sqs".to_string());
            record.event_source_arn = Some(arn.clone());
            record.aws_region = Some(REGION.to_string());
            record
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}
