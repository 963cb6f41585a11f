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
        let arn = sns
            .create_topic()
            .name(testing::unique(topic))
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();
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
