//! The dead-letter port on SQS.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use bazaar_platform::ports::{DeadLetter, DeadLetters, PublishError};

/// SQS allows at most 10 message attributes; the rest are dropped, reason first kept.
const MAX_ATTRIBUTES: usize = 10;

/// Sends parked messages to a function's DLQ.
#[derive(Clone, Debug)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: Option<String>,
}

impl SqsDeadLetters {
    /// The DLQ at `queue_url` (`None` when the function has none: parking then fails and the
    /// message is retried, never dropped).
    pub fn new(client: Client, queue_url: Option<String>) -> Self {
        SqsDeadLetters { client, queue_url }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn park(&self, letter: DeadLetter) -> Result<(), PublishError> {
        let url = self
            .queue_url
            .as_deref()
            .ok_or_else(|| PublishError::UnknownTopic("dead-letter queue (DLQ_URL)".into()))?;
        // The reason attributes come first so that they survive the 10-attribute limit.
        let mut ordered: Vec<(&String, &String)> = letter
            .attributes
            .iter()
            .filter(|(k, _)| k.starts_with("bazaar."))
            .collect();
        ordered.extend(
            letter
                .attributes
                .iter()
                .filter(|(k, _)| !k.starts_with("bazaar.")),
        );
        let mut attrs = HashMap::new();
        for (k, v) in ordered.into_iter().take(MAX_ATTRIBUTES) {
            let value = if v.is_empty() { "-" } else { v.as_str() };
            attrs.insert(
                k.clone(),
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .map_err(|e| PublishError::Unavailable(Box::new(e)))?,
            );
        }
        let mut req = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(&letter.body)
            .set_message_attributes(Some(attrs));
        if let Some(group) = &letter.group_id {
            req = req
                .message_group_id(group)
                .message_deduplication_id(uuid_like(&letter.body, group));
        }
        req.send()
            .await
            .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}

fn uuid_like(body: &str, group: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    group.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Queue depths from SQS's attributes. SQS's API does not tell the oldest message's age
/// (CloudWatch's `ApproximateAgeOfOldestMessage` does, and the template alarms on it), so it
/// is left unknown rather than paid for with a CloudWatch read every minute.
#[derive(Clone, Debug)]
pub struct SqsQueueStats {
    client: Client,
}

impl SqsQueueStats {
    /// Reads through `client`.
    pub fn new(client: Client) -> Self {
        SqsQueueStats { client }
    }
}

#[async_trait]
impl bazaar_platform::ports::QueueStats for SqsQueueStats {
    async fn depth(
        &self,
        url: &str,
    ) -> Result<bazaar_platform::ports::QueueDepth, bazaar_platform::HandlerError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| bazaar_platform::HandlerError::Transient(Box::new(e)))?
            .attributes
            .unwrap_or_default();
        let n = |a: A| -> u64 { attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0) };
        Ok(bazaar_platform::ports::QueueDepth {
            visible: n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesDelayed),
            in_flight: n(A::ApproximateNumberOfMessagesNotVisible),
            oldest_age_s: None,
        })
    }
}
