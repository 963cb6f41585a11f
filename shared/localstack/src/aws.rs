//! The template on an AWS API endpoint (moto in the tests, or any AWS-compatible server):
//! creating its resources ([`provision`]) and running a function against real queues as
//! Lambda's event source mapping does ([`SqsPoller`]).
//!
//! Provisioning is idempotent: it reads what exists, creates what is missing, corrects
//! attributes that differ, and reports each change, so that a second run reports none.
//! Encryption, alarms and IAM are CloudFormation's business on a real account; this creates
//! what the code paths need (topics, queues with redrive, subscriptions with filter policies
//! and raw delivery, tables).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use bazaar_aws::usage::Usage;
use bazaar_embedded::engine::{name_of, queue_arn, queue_url, topic_arn};
use bazaar_platform::function::LambdaFunction;
use serde_json::{Value, json};

use crate::template::StackModel;

/// What exists on the endpoint after provisioning, by resource name.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// Topic ARNs.
    pub topic_arns: BTreeMap<String, String>,
    /// Queue URLs.
    pub queue_urls: BTreeMap<String, String>,
    /// Queue ARNs.
    pub queue_arns: BTreeMap<String, String>,
    /// Secret ARNs (the endpoint adds a suffix of its own to each name).
    pub secret_arns: BTreeMap<String, String>,
    /// What this run created or changed, one line each (empty when all was in place).
    pub changes: Vec<String>,
}

impl Provisioned {
    /// A function's environment with the local stack's ARNs and URLs replaced by the
    /// endpoint's: whole values, and the values of a list of `Id=value` pairs
    /// (`MONITORED_DLQS`).
    pub fn rebind(&self, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        env.iter()
            .map(|(k, v)| {
                let value = map_values(v, |one| self.real(one).cloned());
                (k.clone(), value)
            })
            .collect()
    }

    /// The endpoint's ARN or URL for a local one.
    fn real(&self, local: &str) -> Option<&String> {
        let name = name_of(local);
        if local == topic_arn(name) {
            self.topic_arns.get(name)
        } else if local == queue_url(name) {
            self.queue_urls.get(name)
        } else if local == queue_arn(name) {
            self.queue_arns.get(name)
        } else if local == bazaar_embedded::engine::secret_arn(name) {
            self.secret_arns.get(name)
        } else {
            None
        }
    }
}

/// `value` with `change` applied to it whole or, where it does not apply to the whole, to each
/// value of a list of `Id=value` pairs (`MONITORED_DLQS`); what `change` leaves (`None`)
/// stays as it was.
pub fn map_values(value: &str, change: impl Fn(&str) -> Option<String>) -> String {
    if let Some(whole) = change(value) {
        return whole;
    }
    if !value.contains('=') {
        return value.to_string();
    }
    value
        .split(',')
        .map(|pair| match pair.split_once('=') {
            Some((id, v)) => change(v).map_or_else(|| pair.to_string(), |c| format!("{id}={c}")),
            None => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn err(service: &str, e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    anyhow::anyhow!("{service}: {}", aws_sdk_sqs::error::DisplayErrorContext(e))
}

/// Creates (or corrects) the template's topics, queues, subscriptions and tables.
pub async fn provision(model: &StackModel, config: &SdkConfig) -> anyhow::Result<Provisioned> {
    let sns = aws_sdk_sns::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let mut out = Provisioned::default();

    let mut existing_topics = Vec::new();
    let mut pages = sns.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("SNS ListTopics", e))?;
        existing_topics.extend(
            page.topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(String::from)),
        );
    }
    for name in model.topics.values() {
        let suffix = format!(":{name}");
        let arn = match existing_topics.iter().find(|a| a.ends_with(&suffix)) {
            Some(arn) => arn.clone(),
            None => {
                let arn = sns
                    .create_topic()
                    .name(name)
                    .send()
                    .await
                    .map_err(|e| err("SNS CreateTopic", e))?
                    .topic_arn
                    .context("CreateTopic returned no ARN")?;
                out.changes.push(format!("created topic {name}"));
                arn
            }
        };
        out.topic_arns.insert(name.clone(), arn);
    }

    // Dead-letter queues first, so that redrive policies can name their ARNs.
    let mut queues: Vec<_> = model.queues.values().collect();
    queues.sort_by_key(|q| (q.redrive.is_some(), q.name.clone()));
    for q in queues {
        let mut wanted: HashMap<QueueAttributeName, String> = HashMap::from([
            (
                QueueAttributeName::VisibilityTimeout,
                q.visibility_timeout.to_string(),
            ),
            (QueueAttributeName::DelaySeconds, q.delay.to_string()),
        ]);
        if let Some(r) = &q.redrive {
            let dlq = out
                .queue_arns
                .get(&r.dead_letter_queue)
                .with_context(|| format!("{}: no queue {}", q.name, r.dead_letter_queue))?;
            wanted.insert(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq, "maxReceiveCount": r.max_receive_count})
                    .to_string(),
            );
        }
        let url = match sqs.get_queue_url().queue_name(&q.name).send().await {
            Ok(found) => found.queue_url.context("GetQueueUrl returned no URL")?,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_queue_does_not_exist()) =>
            {
                let mut create = sqs.create_queue().queue_name(&q.name);
                for (k, v) in &wanted {
                    create = create.attributes(k.clone(), v);
                }
                if q.fifo() {
                    create = create
                        .attributes(QueueAttributeName::FifoQueue, "true")
                        .attributes(
                            QueueAttributeName::ContentBasedDeduplication,
                            q.content_based_deduplication.to_string(),
                        );
                }
                let url = create
                    .send()
                    .await
                    .map_err(|e| err("SQS CreateQueue", e))?
                    .queue_url
                    .context("CreateQueue returned no URL")?;
                out.changes.push(format!("created queue {}", q.name));
                wanted.clear();
                url
            }
            Err(e) => return Err(err("SQS GetQueueUrl", e)),
        };
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| err("SQS GetQueueAttributes", e))?
            .attributes
            .unwrap_or_default();
        let differing: HashMap<QueueAttributeName, String> = wanted
            .into_iter()
            .filter(|(k, v)| !same_attribute(attrs.get(k), v))
            .collect();
        if !differing.is_empty() {
            let mut names: Vec<String> = differing.keys().map(|k| k.as_str().to_string()).collect();
            names.sort();
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(differing))
                .send()
                .await
                .map_err(|e| err("SQS SetQueueAttributes", e))?;
            out.changes
                .push(format!("set {} of queue {}", names.join(", "), q.name));
        }
        let arn = attrs
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .context("no QueueArn attribute")?;
        out.queue_arns.insert(q.name.clone(), arn);
        out.queue_urls.insert(q.name.clone(), url);
    }

    for s in &model.subscriptions {
        let topic = &out.topic_arns[&s.topic];
        let queue = out
            .queue_arns
            .get(&s.queue)
            .with_context(|| format!("{}: no queue {}", s.logical_id, s.queue))?;
        let mut wanted = BTreeMap::from([("RawMessageDelivery", s.raw.to_string())]);
        if let Some(p) = &s.filter_policy {
            wanted.insert("FilterPolicy", p.to_string());
            wanted.insert(
                "FilterPolicyScope",
                match s.scope {
                    bazaar_embedded::filter::Scope::MessageAttributes => "MessageAttributes",
                    bazaar_embedded::filter::Scope::MessageBody => "MessageBody",
                }
                .into(),
            );
        }
        let mut found = None;
        let mut pages = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| err("SNS ListSubscriptionsByTopic", e))?;
            if let Some(sub) = page
                .subscriptions()
                .iter()
                .find(|x| x.endpoint() == Some(queue.as_str()))
            {
                found = sub.subscription_arn().map(String::from);
            }
        }
        match found {
            None => {
                let mut subscribe = sns
                    .subscribe()
                    .topic_arn(topic)
                    .protocol("sqs")
                    .endpoint(queue)
                    .return_subscription_arn(true);
                for (k, v) in &wanted {
                    subscribe = subscribe.attributes(*k, v);
                }
                subscribe
                    .send()
                    .await
                    .map_err(|e| err("SNS Subscribe", e))?;
                out.changes
                    .push(format!("subscribed {} to {}", s.queue, s.topic));
            }
            Some(arn) => {
                let attrs = sns
                    .get_subscription_attributes()
                    .subscription_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| err("SNS GetSubscriptionAttributes", e))?
                    .attributes
                    .unwrap_or_default();
                for (k, v) in &wanted {
                    if !same_subscription_attribute(attrs.get(*k), v) {
                        sns.set_subscription_attributes()
                            .subscription_arn(&arn)
                            .attribute_name(*k)
                            .attribute_value(v)
                            .send()
                            .await
                            .map_err(|e| err("SNS SetSubscriptionAttributes", e))?;
                        out.changes
                            .push(format!("set {k} of {}'s subscription", s.queue));
                    }
                }
            }
        }
    }

    // Secrets: created with the local stack's values when absent; one already there keeps
    // its value (a rotation done on the endpoint survives a restart).
    {
        use bazaar_platform::secrets::SecretAdmin;
        let secrets =
            bazaar_aws::SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(config));
        let existing: BTreeMap<String, String> = secrets
            .list("")
            .await
            .map_err(|e| anyhow::anyhow!("Secrets Manager ListSecrets: {e}"))?
            .into_iter()
            .map(|(arn, name)| (name, arn))
            .collect();
        for (id, name) in &model.secrets {
            let arn = match existing.get(name) {
                Some(arn) => arn.clone(),
                None => {
                    let arn = secrets
                        .ensure(name, &StackModel::local_secret_value(id))
                        .await
                        .map_err(|e| anyhow::anyhow!("Secrets Manager CreateSecret {name}: {e}"))?;
                    out.changes.push(format!("created secret {name}"));
                    arn
                }
            };
            out.secret_arns.insert(name.clone(), arn);
        }
    }
    for name in model.tables.values() {
        match dynamodb.describe_table().table_name(name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                create_table(&dynamodb, name).await?;
                out.changes.push(format!("created table {name}"));
            }
            Err(e) => return Err(err("DynamoDB DescribeTable", e)),
        }
    }
    Ok(out)
}

fn same_attribute(current: Option<&String>, wanted: &str) -> bool {
    match current {
        None => false,
        Some(c) if c == wanted => true,
        // JSON attributes compare by value (servers reorder keys and quote numbers).
        Some(c) => match (
            serde_json::from_str::<Value>(c),
            serde_json::from_str::<Value>(wanted),
        ) {
            (Ok(a), Ok(b)) => normalize(&a) == normalize(&b),
            _ => false,
        },
    }
}

fn same_subscription_attribute(current: Option<&String>, wanted: &str) -> bool {
    match current {
        // Absent means the default: raw delivery off, scope on attributes.
        None => wanted == "false" || wanted == "MessageAttributes",
        Some(c) => same_attribute(Some(c), wanted),
    }
}

fn normalize(v: &Value) -> Value {
    match v {
        Value::String(s) => s
            .parse::<f64>()
            .map(|n| json!(n))
            .unwrap_or_else(|_| v.clone()),
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| err("DynamoDB CreateTable", e))?;
    Ok(())
}

/// A function fed from a real queue, as Lambda's event source mapping does it: receive a
/// batch, invoke the function with the SQS event, delete the records it did not report as
/// failures. Failed records stay and come back after the visibility timeout.
pub struct SqsPoller {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    batch_size: i32,
    function: Arc<dyn LambdaFunction>,
    retry_at_once: bool,
    /// Where the event source's SQS requests and the function's invocations are counted:
    /// the counter, the function's name and its memory (MB).
    usage: Option<(Arc<Usage>, String, u32)>,
}

/// The label under which receives that found nothing are counted: a standing cost of every
/// queue with a trigger (Lambda's pollers receive all the time), not of the messages.
pub const IDLE_POLLING: &str = "(idle polling)";

impl SqsPoller {
    /// A poller of `queue_url` (whose ARN is `queue_arn`) for `function`.
    pub fn new(
        config: &SdkConfig,
        queue_url: &str,
        queue_arn: &str,
        batch_size: u32,
        function: Arc<dyn LambdaFunction>,
    ) -> Self {
        SqsPoller {
            sqs: aws_sdk_sqs::Client::new(config),
            queue_url: queue_url.to_string(),
            queue_arn: queue_arn.to_string(),
            region: config
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
            batch_size: batch_size.clamp(1, 10) as i32,
            function,
            retry_at_once: false,
            usage: None,
        }
    }

    /// Counts in `usage` (when given) the invocations of `function` (with `memory_mb`) and
    /// the requests this event source makes, as `<function> (event source)`: on AWS they are
    /// Lambda's, billed to the account as SQS requests. Receives that come back empty go under
    /// [`IDLE_POLLING`].
    pub fn counted(mut self, usage: Option<Arc<Usage>>, function: &str, memory_mb: u32) -> Self {
        self.usage = usage.map(|u| (u, function.to_string(), memory_mb));
        self
    }

    fn count(&self, operation: &str, payload: usize, idle: bool) {
        if let Some((usage, function, _)) = &self.usage {
            let label = if idle {
                IDLE_POLLING.to_string()
            } else {
                format!("{function} (event source)")
            };
            usage.request(&label, "SQS", operation, payload);
        }
    }

    /// Makes failed records visible again at once instead of after the visibility timeout
    /// (tests, whose business clock is simulated while the endpoint's is real).
    pub fn retry_at_once(mut self, yes: bool) -> Self {
        self.retry_at_once = yes;
        self
    }

    /// Receives one batch (waiting up to `wait_s` seconds for one) and runs it; returns how
    /// many records it received and how many failed.
    pub async fn poll_once(&self, wait_s: i32) -> anyhow::Result<(usize, usize)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| err("SQS ReceiveMessage", e))?;
        let messages = out.messages.unwrap_or_default();
        let payload = messages.iter().map(|m| m.body().map_or(0, str::len)).sum();
        self.count("ReceiveMessage", payload, messages.is_empty());
        if messages.is_empty() {
            return Ok((0, 0));
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                let message_attributes: serde_json::Map<String, Value> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    json!({"stringValue": v.string_value(), "stringListValues": [], "binaryListValues": [], "dataType": v.data_type()}),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        let started = std::time::Instant::now();
        let response = self.function.invoke(json!({ "Records": records })).await;
        if let Some((usage, function, memory)) = &self.usage {
            usage.invoked(function, *memory, started.elapsed(), messages.len());
        }
        let response = response.map_err(|e| anyhow::anyhow!("{e}"))?;
        let failed: Vec<&str> = response
            .get("batchItemFailures")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if self.retry_at_once {
            for m in messages
                .iter()
                .filter(|m| failed.contains(&m.message_id().unwrap_or_default()))
            {
                self.count("ChangeMessageVisibility", 0, false);
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map_err(|e| err("SQS ChangeMessageVisibility", e))?;
            }
        }
        let done = messages
            .iter()
            .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
            .enumerate()
            .map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !done.is_empty() {
            self.count("DeleteMessageBatch", 0, false);
            let out = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| err("SQS DeleteMessageBatch", e))?;
            if let Some(f) = out.failed.first() {
                // As Lambda: the record comes back and the inbox makes it harmless.
                tracing::warn!(code = f.code, "a processed record could not be deleted");
            }
        }
        Ok((messages.len(), failed.len()))
    }

    /// Polls until a receive comes back empty; returns how many records ran.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let (n, _) = self.poll_once(0).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }
}
