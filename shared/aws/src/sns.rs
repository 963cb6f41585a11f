//! The publish port on SNS.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use bazaar_platform::ports::{
    Encoded, MAX_BATCH, PublishError, Publisher, Topics, attributes_for_publish,
};

/// Publishes envelopes to SNS topics with `PublishBatch`, at most 10 per request.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: Client,
    topics: Topics,
}

impl SnsPublisher {
    /// A publisher for the given topics.
    pub fn new(client: Client, topics: Topics) -> Self {
        SnsPublisher { client, topics }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, PublishError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PublishError::Unavailable(Box::new(e)))
}

#[async_trait]
impl Publisher for SnsPublisher {
    async fn publish_encoded(&self, messages: &Encoded<'_>) -> Result<(), PublishError> {
        // Validate everything before the first request, so an invalid batch sends nothing.
        let mut by_topic: BTreeMap<String, Vec<(&str, BTreeMap<String, String>)>> = BTreeMap::new();
        for (e, text) in messages.iter() {
            let arn = self.topics.arn(e.topic())?.to_string();
            by_topic
                .entry(arn)
                .or_default()
                .push((text, attributes_for_publish(e, text)?));
        }
        let mut failed = 0;
        for (arn, messages) in by_topic {
            for chunk in messages.chunks(MAX_BATCH) {
                let mut entries = Vec::with_capacity(chunk.len());
                for (i, (body, attributes)) in chunk.iter().enumerate() {
                    let attrs: HashMap<String, MessageAttributeValue> = attributes
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), attribute(v)?)))
                        .collect::<Result<_, PublishError>>()?;
                    entries.push(
                        PublishBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message(*body)
                            .set_message_attributes(Some(attrs))
                            .build()
                            .map_err(|e| PublishError::Unavailable(Box::new(e)))?,
                    );
                }
                let out = self.client.publish_batch().topic_arn(&arn).set_publish_batch_request_entries(Some(entries)).send().await.map_err(|e| match e.as_service_error() {
                    Some(aws_sdk_sns::operation::publish_batch::PublishBatchError::NotFoundException(_)) => PublishError::UnknownTopic(arn.clone()),
                    _ => PublishError::Unavailable(Box::new(e)),
                })?;
                failed += out.failed().len();
            }
        }
        if failed > 0 {
            return Err(PublishError::Partial {
                failed,
                total: messages.len(),
            });
        }
        Ok(())
    }
}
