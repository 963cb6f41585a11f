//! The publish port on SNS.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use bazaar_platform::ports::{
    Encoded, MAX_BATCH, MAX_MESSAGE_BYTES, PublishError, Publisher, Topics, attributes_for_publish,
};

/// Publishes envelopes to SNS topics with `PublishBatch`, at most 10 and 256 KiB per request.
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
            for chunk in batches(&messages) {
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

/// What SNS counts of a message against a request's limit: its body and every attribute's
/// name, type and value.
fn weight((body, attributes): &(&str, BTreeMap<String, String>)) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(k, v)| k.len() + "String".len() + v.len())
            .sum::<usize>()
}

/// Splits one topic's messages into `PublishBatch` requests: at most ten entries, and at most
/// 256 KiB together (a request over it is refused whole). A consumer publishes what all the
/// records of its batch send at once, so ten large messages can meet in one list.
fn batches<'m, 'a>(
    messages: &'m [(&'a str, BTreeMap<String, String>)],
) -> Vec<&'m [(&'a str, BTreeMap<String, String>)]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let w = weight(m);
        if i > start && (i - start == MAX_BATCH || size + w > MAX_MESSAGE_BYTES) {
            out.push(&messages[start..i]);
            (start, size) = (i, 0);
        }
        size += w;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_takes_ten_messages_and_256_kib_at_most() {
        let small = "x".repeat(100);
        let large = "y".repeat(100 * 1024);
        let none = BTreeMap::new;
        let sizes = |list: Vec<(&str, BTreeMap<String, String>)>| {
            batches(&list).iter().map(|b| b.len()).collect::<Vec<_>>()
        };
        assert_eq!(
            sizes((0..25).map(|_| (small.as_str(), none())).collect()),
            [10, 10, 5]
        );
        // 100 KiB each: two fit under 256 KiB, a third does not.
        assert_eq!(
            sizes((0..5).map(|_| (large.as_str(), none())).collect()),
            [2, 2, 1]
        );
        // Attributes count too.
        let mut attributes = BTreeMap::new();
        attributes.insert("k".to_string(), "v".repeat(60 * 1024));
        assert_eq!(
            sizes(vec![
                (large.as_str(), attributes.clone()),
                (large.as_str(), attributes),
            ]),
            [1, 1]
        );
        assert!(sizes(Vec::new()).is_empty());
    }
}
