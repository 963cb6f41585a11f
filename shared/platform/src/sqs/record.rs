//! An SQS batch as the consumer reads it: the fields it uses, and no more.
//!
//! `aws_lambda_events`' `SqsEvent` reads every field of every record into its own string or
//! map (the system attributes, each message attribute with its type and lists), which was a
//! fifth of a message's platform cost; the consumer uses the body, the id, the queue and,
//! only when it parks a message, its attributes. Here the attributes stay the JSON text they
//! came as until a message is parked, and the other fields are skipped.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A batch of SQS records.
#[derive(Debug, Default, Deserialize)]
pub struct Batch {
    /// The records, in the order SQS gave them.
    #[serde(rename = "Records")]
    pub records: Vec<Record>,
}

/// One SQS record.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// SQS's id of the message (what a partial batch response names).
    #[serde(default)]
    pub message_id: Option<String>,
    /// The message's body.
    #[serde(default)]
    pub body: Option<String>,
    /// `aws:sqs` for a record of SQS.
    #[serde(default)]
    pub event_source: Option<String>,
    /// The queue's ARN.
    #[serde(default, rename = "eventSourceARN")]
    pub event_source_arn: Option<String>,
    /// SQS's attributes of the message, as received.
    #[serde(default)]
    attributes: Attributes,
    /// The message attributes, as received.
    #[serde(default)]
    message_attributes: Attributes,
}

/// Attributes, read only when asked for.
#[derive(Debug, Default)]
enum Attributes {
    /// None came.
    #[default]
    None,
    /// As the event's JSON text.
    Text(Box<RawValue>),
    /// Already read (a batch built in memory, as the local stack's pollers build theirs).
    Read(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: Option<Box<RawValue>> = Deserialize::deserialize(d)?;
        Ok(text.map_or(Attributes::None, Attributes::Text))
    }
}

/// A message attribute as an event carries it: only its text value is used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageAttribute {
    #[serde(default)]
    string_value: Option<String>,
}

impl Attributes {
    /// SQS's attributes of a message: each a string. An unreadable set reads as empty, here
    /// and below: attributes only decorate a message being parked.
    fn system(&self) -> BTreeMap<String, String> {
        match self {
            Attributes::None => BTreeMap::new(),
            Attributes::Read(map) => map.clone(),
            Attributes::Text(raw) => serde_json::from_str(raw.get()).unwrap_or_default(),
        }
    }

    /// Message attributes: each one's `stringValue` (binary ones have none and are left out).
    fn message(&self) -> BTreeMap<String, String> {
        match self {
            Attributes::None => BTreeMap::new(),
            Attributes::Read(map) => map.clone(),
            Attributes::Text(raw) => {
                serde_json::from_str::<BTreeMap<String, Option<MessageAttribute>>>(raw.get())
                    .map(|m| {
                        m.into_iter()
                            .filter_map(|(k, v)| v?.string_value.map(|s| (k, s)))
                            .collect()
                    })
                    .unwrap_or_default()
            }
        }
    }
}

impl Record {
    /// The message attributes' text values.
    pub fn message_attributes(&self) -> BTreeMap<String, String> {
        self.message_attributes.message()
    }

    /// The message group of a FIFO queue's message.
    pub fn group_id(&self) -> Option<String> {
        self.attributes.system().remove("MessageGroupId")
    }

    /// Whether SQS delivered this message before (`ApproximateReceiveCount` above one): after
    /// a failure or a crash, or its visibility timeout ran out. Unknown counts as a first
    /// delivery. Reads only that attribute.
    pub fn redelivered(&self) -> bool {
        #[derive(Deserialize)]
        struct Count<'a> {
            #[serde(rename = "ApproximateReceiveCount", borrow, default)]
            count: Option<std::borrow::Cow<'a, str>>,
        }
        let count = match &self.attributes {
            Attributes::None => None,
            Attributes::Read(map) => map
                .get("ApproximateReceiveCount")
                .map(|c| c.as_str().into()),
            Attributes::Text(raw) => serde_json::from_str::<Count<'_>>(raw.get())
                .ok()
                .and_then(|c| c.count),
        };
        count
            .and_then(|c| c.parse::<u32>().ok())
            .is_some_and(|c| c > 1)
    }
}

impl From<SqsMessage> for Record {
    fn from(m: SqsMessage) -> Record {
        Record {
            message_id: m.message_id,
            body: m.body,
            event_source: m.event_source,
            event_source_arn: m.event_source_arn,
            attributes: Attributes::Read(m.attributes.into_iter().collect()),
            message_attributes: Attributes::Read(
                m.message_attributes
                    .into_iter()
                    .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
                    .collect(),
            ),
        }
    }
}

impl From<SqsEvent> for Batch {
    fn from(e: SqsEvent) -> Batch {
        Batch {
            records: e.records.into_iter().map(Record::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_what_the_consumer_uses_and_reads_attributes_when_asked() {
        let text = r#"{"Records":[{"messageId":"m-1","receiptHandle":"r-1","body":"{\"a\":1}",
            "attributes":{"ApproximateReceiveCount":"2","MessageGroupId":"g-1"},
            "messageAttributes":{"type":{"stringValue":"order.placed","dataType":"String","stringListValues":[],"binaryListValues":[]},
                                 "blob":{"binaryValue":"AAE=","dataType":"Binary"}},
            "md5OfBody":"","md5OfMessageAttributes":null,"eventSource":"aws:sqs",
            "eventSourceARN":"arn:aws:sqs:us-east-1:123456789012:q.fifo","awsRegion":"us-east-1"}]}"#;
        let batch: Batch = serde_json::from_str(text).unwrap();
        let r = &batch.records[0];
        assert_eq!(r.message_id.as_deref(), Some("m-1"));
        assert_eq!(r.body.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            r.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:q.fifo")
        );
        assert_eq!(r.group_id().as_deref(), Some("g-1"));
        assert!(r.redelivered(), "received twice");
        assert_eq!(
            r.message_attributes(),
            BTreeMap::from([("type".to_string(), "order.placed".to_string())])
        );
    }

    #[test]
    fn a_record_without_attributes_or_with_nulls_reads_as_none() {
        let batch: Batch = serde_json::from_str(
            r#"{"Records":[{"messageId":"m-1","body":"x","attributes":null,"messageAttributes":{},"eventSource":"aws:sqs"}]}"#,
        )
        .unwrap();
        assert_eq!(batch.records[0].group_id(), None);
        assert!(batch.records[0].message_attributes().is_empty());
        assert!(!batch.records[0].redelivered(), "unknown: a first delivery");
    }

    #[test]
    fn a_batch_built_in_memory_reads_as_the_same() {
        let mut m = SqsMessage::default();
        m.message_id = Some("m-1".into());
        m.attributes.insert("MessageGroupId".into(), "g-1".into());
        let mut a = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
        a.string_value = Some("order.placed".into());
        m.message_attributes.insert("type".into(), a);
        let mut e = SqsEvent::default();
        e.records.push(m);
        let batch = Batch::from(e);
        assert_eq!(batch.records[0].group_id().as_deref(), Some("g-1"));
        assert_eq!(
            batch.records[0].message_attributes()["type"],
            "order.placed"
        );
    }
}
