//! The publish port on SNS.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use bazaar_platform::ports::{
    Encoded, MAX_BATCH, PublishError, Publisher, Topics, attributes_for_publish,
};

/// Publishes envelopes to SNS topics with `PublishBatch`, at most 10 per request.
///
/// Each request carries the current invocation's X-Ray trace header (`X-Amzn-Trace-Id`),
/// when there is one: a topic with active tracing passes it to its subscriptions, and Lambda
/// continues the trace in the function an SQS queue triggers, so that AWS's own trace view
/// joins the hops as Bazaar's `traceparent` does.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: Client,
    topics: Topics,
    trace_header: fn() -> Option<String>,
}

/// The X-Ray trace header of the invocation being handled: the Lambda runtime sets
/// `_X_AMZN_TRACE_ID` for each one. None outside Lambda.
pub fn lambda_trace_header() -> Option<String> {
    std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|v| !v.is_empty())
}

impl SnsPublisher {
    /// A publisher for the given topics.
    pub fn new(client: Client, topics: Topics) -> Self {
        SnsPublisher {
            client,
            topics,
            trace_header: lambda_trace_header,
        }
    }

    /// The same publisher, taking the trace header from `source` (tests; another runtime).
    pub fn with_trace_header(mut self, source: fn() -> Option<String>) -> Self {
        self.trace_header = source;
        self
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
                let request = self
                    .client
                    .publish_batch()
                    .topic_arn(&arn)
                    .set_publish_batch_request_entries(Some(entries));
                let sent = match (self.trace_header)() {
                    Some(header) => {
                        request
                            .customize()
                            .mutate_request(move |r| {
                                r.headers_mut().insert("X-Amzn-Trace-Id", header.clone());
                            })
                            .send()
                            .await
                    }
                    None => request.send().await,
                };
                let out = sent.map_err(|e| match e.as_service_error() {
                    Some(
                        aws_sdk_sns::operation::publish_batch::PublishBatchError::NotFoundException(
                            _,
                        ),
                    ) => PublishError::UnknownTopic(arn.clone()),
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
