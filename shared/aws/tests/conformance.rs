//! The AWS SDK adapters pass the platform's conformance suites against moto_server.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use bazaar_aws::{DynamoTable, SnsPublisher, testing};
use bazaar_contracts::Envelope;
use bazaar_platform::conformance::{self, Probe};
use bazaar_platform::ports::Topics;

#[tokio::test]
async fn the_dynamodb_table_passes_the_table_suite() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let client = aws_sdk_dynamodb::Client::new(&config);
    let name = testing::unique("conformance");
    testing::create_table(&client, &name).await;
    conformance::table_suite(&DynamoTable::new(client, name), "ns1").await;
}

struct SqsProbe {
    client: aws_sdk_sqs::Client,
    queues: BTreeMap<String, String>,
}

#[async_trait]
impl Probe for SqsProbe {
    async fn delivered(&self, topic: &str) -> Vec<(Envelope, BTreeMap<String, String>)> {
        let url = &self.queues[topic];
        let mut out = Vec::new();
        loop {
            let got = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            if got.messages().is_empty() {
                break;
            }
            for m in got.messages() {
                let attrs = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| {
                                v.string_value().map(|s| (k.clone(), s.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((Envelope::from_json(m.body().unwrap()).unwrap(), attrs));
            }
        }
        out
    }
}

#[tokio::test]
async fn the_sns_publisher_passes_the_publish_suite() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut env = BTreeMap::new();
    let mut queues = BTreeMap::new();
    for topic in ["inventory", "tasks"] {
        let arn = testing::create_topic(&sns, topic).await;
        let url = sqs
            .create_queue()
            .queue_name(testing::unique("probe"))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        sns.subscribe()
            .topic_arn(&arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        env.insert(format!("TOPIC_ARN_{}", topic.to_uppercase()), arn);
        queues.insert(topic.to_string(), url);
    }
    let publisher = SnsPublisher::new(sns, Topics::from_env(&env));
    conformance::publish_suite(
        &publisher,
        &SqsProbe {
            client: sqs,
            queues,
        },
        "pub",
    )
    .await;
}

struct AwsMessaging {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    urls: std::sync::Mutex<BTreeMap<String, String>>,
    topics: std::sync::Mutex<BTreeMap<String, String>>,
}

impl AwsMessaging {
    fn url(&self, name: &str) -> String {
        self.urls.lock().unwrap()[name].clone()
    }
    async fn arn(&self, name: &str) -> String {
        let url = self.url(name);
        self.sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone()
    }
}

#[async_trait]
impl conformance::Messaging for AwsMessaging {
    async fn create_queue(
        &self,
        name: &str,
        visibility_timeout: u32,
        redrive: Option<(&str, u32)>,
    ) {
        let mut req = self.sqs.create_queue().queue_name(name).attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout.to_string(),
        );
        if let Some((dlq, max)) = redrive {
            let policy = serde_json::json!({ "deadLetterTargetArn": self.arn(dlq).await, "maxReceiveCount": max }).to_string();
            req = req.attributes(QueueAttributeName::RedrivePolicy, policy);
        }
        let url = req.send().await.unwrap().queue_url().unwrap().to_string();
        self.urls.lock().unwrap().insert(name.into(), url);
    }
    async fn create_topic(&self, name: &str) {
        let arn = self
            .sns
            .create_topic()
            .name(name)
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();
        self.topics.lock().unwrap().insert(name.into(), arn);
    }
    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter_policy: Option<serde_json::Value>,
        raw: bool,
    ) {
        let topic_arn = self.topics.lock().unwrap()[topic].clone();
        let mut req = self
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(self.arn(queue).await)
            .attributes("RawMessageDelivery", raw.to_string());
        if let Some(p) = filter_policy {
            req = req.attributes("FilterPolicy", p.to_string());
        }
        req.send().await.unwrap();
    }
    async fn publish(
        &self,
        topic: &str,
        body: &str,
        strings: &[(&str, &str)],
        numbers: &[(&str, &str)],
    ) {
        use aws_sdk_sns::types::MessageAttributeValue;
        let topic_arn = self.topics.lock().unwrap()[topic].clone();
        let mut req = self.sns.publish().topic_arn(topic_arn).message(body);
        for (k, v) in strings {
            req = req.message_attributes(
                *k,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*v)
                    .build()
                    .unwrap(),
            );
        }
        for (k, v) in numbers {
            req = req.message_attributes(
                *k,
                MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value(*v)
                    .build()
                    .unwrap(),
            );
        }
        req.send().await.unwrap();
    }
    async fn send(&self, queue: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(self.url(queue))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    async fn receive(&self, queue: &str, max: u32) -> Vec<conformance::Delivered> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(self.url(queue))
            .max_number_of_messages(max as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .map(|m| conformance::Delivered {
                body: m.body().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                attributes: m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| {
                                v.string_value().map(|s| (k.clone(), s.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }
    async fn delete(&self, queue: &str, receipt: &str) {
        self.sqs
            .delete_message()
            .queue_url(self.url(queue))
            .receipt_handle(receipt)
            .send()
            .await
            .unwrap();
    }
    async fn change_visibility(&self, queue: &str, receipt: &str, seconds: u32) {
        self.sqs
            .change_message_visibility()
            .queue_url(self.url(queue))
            .receipt_handle(receipt)
            .visibility_timeout(seconds as i32)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sqs_and_sns_pass_the_messaging_suite() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let m = AwsMessaging {
        sns: aws_sdk_sns::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
        urls: Default::default(),
        topics: Default::default(),
    };
    conformance::messaging_suite(&m, &testing::unique("msg")).await;
}

#[tokio::test]
async fn secrets_manager_passes_the_secret_suite() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let store = bazaar_aws::SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config));
    conformance::secret_suite(&store, &store, &testing::unique("bazaar-test")).await;
}

#[tokio::test]
async fn a_function_whose_secret_cannot_be_read_does_not_start_and_says_which() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let missing = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}",
        testing::unique("absent")
    );
    let env = BTreeMap::from([("WEBHOOK_SECRET_ARN".to_string(), missing.clone())]);
    let deps = bazaar_aws::aws_deps(&config, "payments-webhook", env);
    let error = deps.secrets.warm().await.unwrap_err();
    assert_eq!(error.variable, "WEBHOOK_SECRET_ARN");
    assert_eq!(error.found.as_deref(), Some(missing.as_str()));
    assert!(error.expected.contains("does not exist"), "{error}");
}
