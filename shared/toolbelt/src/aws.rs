//! The toolbelt on the AWS APIs: SQS, SNS, DynamoDB and STS through the AWS SDK, with the
//! default credential chain and region, or an `--endpoint-url` (moto in the tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use bazaar_aws::{DynamoTable, SnsPublisher};
use bazaar_platform::ports::{Publisher, Table, Topics};
use chrono::{DateTime, TimeZone, Utc};

use crate::backend::{Backend, Counts, Outgoing, QueueMessage};

/// SQS, SNS, DynamoDB and STS clients, and the queue URLs found so far.
pub struct AwsBackend {
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    sts: aws_sdk_sts::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    secrets: bazaar_aws::SecretsManagerStore,
    description: String,
    urls: Mutex<HashMap<String, String>>,
}

impl AwsBackend {
    /// A backend on the SDK configuration `config`.
    pub fn new(config: &SdkConfig) -> Self {
        let region = config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "no region".into());
        let description = match config.endpoint_url() {
            Some(url) => format!("AWS API at {url} ({region})"),
            None => format!("AWS {region}"),
        };
        AwsBackend {
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            secrets: bazaar_aws::SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(
                config,
            )),
            description,
            urls: Mutex::new(HashMap::new()),
        }
    }

    async fn url(&self, queue: &str) -> anyhow::Result<String> {
        if let Some(url) = self.urls.lock().expect("urls").get(queue) {
            return Ok(url.clone());
        }
        let url = self
            .sqs
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .with_context(|| {
                format!("finding queue {queue} (is the stack deployed for this stage and region?)")
            })?
            .queue_url
            .with_context(|| format!("no URL for queue {queue}"))?;
        self.urls
            .lock()
            .expect("urls")
            .insert(queue.to_string(), url.clone());
        Ok(url)
    }

    async fn visible(&self, url: &str) -> anyhow::Result<u64> {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        Ok(number(
            &attrs,
            QueueAttributeName::ApproximateNumberOfMessages,
        ))
    }
}

impl AwsBackend {
    /// SQS's API does not tell the oldest message's age; CloudWatch's
    /// `ApproximateAgeOfOldestMessage` does, a minute or so behind. `None` when it has no
    /// recent datapoint (a queue idle for long, or a server without CloudWatch data).
    async fn cloudwatch_oldest_age(&self, queue: &str) -> Option<i64> {
        use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
        use aws_sdk_cloudwatch::types::{Dimension, Statistic};
        let now = Utc::now();
        let out = self
            .cloudwatch
            .get_metric_statistics()
            .namespace("AWS/SQS")
            .metric_name("ApproximateAgeOfOldestMessage")
            .dimensions(Dimension::builder().name("QueueName").value(queue).build())
            .start_time(AwsTime::from_secs((now - chrono::Duration::minutes(10)).timestamp()))
            .end_time(AwsTime::from_secs(now.timestamp()))
            .period(60)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .map_err(|e| {
                tracing::debug!(error = %aws_sdk_cloudwatch::error::DisplayErrorContext(e), "no oldest age");
            })
            .ok()?;
        out.datapoints()
            .iter()
            .filter_map(|d| Some((d.timestamp()?.secs(), d.maximum()?)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, age)| age as i64)
    }
}

fn number(attrs: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> u64 {
    attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn sdk_error<E>(e: aws_sdk_sqs::error::SdkError<E>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    anyhow::anyhow!("SQS: {}", aws_sdk_sqs::error::DisplayErrorContext(e))
}

#[async_trait]
impl Backend for AwsBackend {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn clock(&self) -> Arc<dyn bazaar_platform::clock::Clock> {
        Arc::new(bazaar_platform::clock::SystemClock)
    }

    async fn caller(&self) -> String {
        match self.sts.get_caller_identity().send().await {
            Ok(identity) => identity.arn.unwrap_or_else(|| "unknown".into()),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sts::error::DisplayErrorContext(e), "who am I? STS did not say");
                "unknown".into()
            }
        }
    }

    async fn counts(&self, queue: &str) -> anyhow::Result<Counts> {
        let url = self.url(queue).await?;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(sdk_error)?
            .attributes
            .unwrap_or_default();
        Ok(Counts {
            visible: number(&attrs, QueueAttributeName::ApproximateNumberOfMessages)
                + number(
                    &attrs,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                ),
            in_flight: number(
                &attrs,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ),
        })
    }

    async fn oldest_age(&self, queue: &str) -> Option<i64> {
        self.cloudwatch_oldest_age(queue).await
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        hold_s: u32,
    ) -> anyhow::Result<Vec<QueueMessage>> {
        let url = self.url(queue).await?;
        // Short polling samples a subset of SQS's servers: an empty answer while the queue
        // says it holds visible messages is asked again, with a short wait that asks them all.
        let mut wait = 0;
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(max.clamp(1, 10) as i32)
                .visibility_timeout(hold_s as i32)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(sdk_error)?;
            let messages = out.messages.unwrap_or_default();
            if !messages.is_empty() || wait > 0 || self.visible(&url).await? == 0 {
                return Ok(messages.into_iter().map(read).collect());
            }
            wait = 1;
        }
    }

    async fn release(&self, queue: &str, receipt: &str) -> anyhow::Result<()> {
        let url = self.url(queue).await?;
        self.sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn release_all(&self, queue: &str, receipts: &[String]) -> anyhow::Result<()> {
        let url = self.url(queue).await?;
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sdk_error)?;
            if let Some(f) = out.failed.first() {
                // Not fatal: the message becomes visible when its hold ends anyway.
                tracing::warn!(
                    queue,
                    code = f.code,
                    "a held message could not be released early"
                );
            }
        }
        Ok(())
    }

    async fn delete(&self, queue: &str, receipt: &str) -> anyhow::Result<bool> {
        let url = self.url(queue).await?;
        match self
            .sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn send(&self, queue: &str, message: &Outgoing) -> anyhow::Result<()> {
        let url = self.url(queue).await?;
        let mut attributes = HashMap::new();
        for (k, v) in &message.attributes {
            attributes.insert(
                k.clone(),
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()?,
            );
        }
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(&message.body)
            .set_message_attributes(Some(attributes))
            .set_message_group_id(message.group_id.clone())
            .set_message_deduplication_id(message.dedup_id.clone())
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn topic_arn(&self, topic: &str) -> anyhow::Result<String> {
        let suffix = format!(":{topic}");
        let mut pages = self.sns.list_topics().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sns::error::DisplayErrorContext(e)))?;
            if let Some(arn) = page
                .topics()
                .iter()
                .filter_map(|t| t.topic_arn())
                .find(|arn| arn.ends_with(&suffix))
            {
                return Ok(arn.to_string());
            }
        }
        anyhow::bail!("no topic {topic} (is the stack deployed for this stage and region?)")
    }

    fn publisher(&self, topics: Topics) -> Arc<dyn Publisher> {
        Arc::new(SnsPublisher::new(self.sns.clone(), topics))
    }

    fn secrets(&self) -> Arc<dyn bazaar_platform::secrets::SecretAdmin> {
        Arc::new(self.secrets.clone())
    }

    fn table(&self, name: &str) -> Arc<dyn Table> {
        Arc::new(DynamoTable::new(self.dynamodb.clone(), name))
    }

    async fn empty_table(&self, name: &str) -> anyhow::Result<usize> {
        let table = self.table(name);
        let mut deleted = 0;
        let mut pages = self
            .dynamodb
            .scan()
            .table_name(name)
            .projection_expression("pk, sk")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e))
            })?;
            for item in page.items() {
                let key = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                if let (Some(pk), Some(sk)) = (key("pk"), key("sk")) {
                    table
                        .delete(&bazaar_platform::item::Key::new(pk, sk), None)
                        .await?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

fn read(m: aws_sdk_sqs::types::Message) -> QueueMessage {
    let system = m.attributes.unwrap_or_default();
    let sys = |name: MessageSystemAttributeName| system.get(&name).cloned();
    let attributes: BTreeMap<String, String> = m
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
        .collect();
    QueueMessage {
        message_id: m.message_id.unwrap_or_default(),
        receipt: m.receipt_handle.unwrap_or_default(),
        body: m.body.unwrap_or_default(),
        attributes,
        receive_count: sys(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        sent_at: sys(MessageSystemAttributeName::SentTimestamp)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or_default(),
        group_id: sys(MessageSystemAttributeName::MessageGroupId),
    }
}
