//! The embedded adapters pass the platform's conformance suites.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::Envelope;
use bazaar_embedded::engine::{queue_url, topic_arn};
use bazaar_embedded::filter::Scope;
use bazaar_embedded::{EmbeddedPublisher, EmbeddedTable, Engine, QueueConfig, Subscription};
use bazaar_platform::clock::ManualClock;
use bazaar_platform::conformance::{self, Probe};
use bazaar_platform::ports::Topics;

#[tokio::test]
async fn the_embedded_table_passes_the_table_suite() {
    let engine = Engine::in_memory(Arc::new(ManualClock::at_epoch())).unwrap();
    engine.create_table("conformance");
    conformance::table_suite(&EmbeddedTable::new(engine, "conformance"), "ns1").await;
}

#[tokio::test]
async fn the_embedded_table_passes_the_table_suite_on_a_file() {
    let dir = std::env::temp_dir().join(format!("bazaar-conformance-{}", std::process::id()));
    let engine =
        Engine::open(&dir.join("store.sqlite"), Arc::new(ManualClock::at_epoch())).unwrap();
    engine.create_table("conformance");
    conformance::table_suite(&EmbeddedTable::new(engine, "conformance"), "file").await;
    let _ = std::fs::remove_dir_all(dir);
}

struct QueueProbe(Arc<Engine>);

#[async_trait]
impl Probe for QueueProbe {
    async fn delivered(&self, topic: &str) -> Vec<(Envelope, BTreeMap<String, String>)> {
        self.0
            .peek(&format!("probe-{topic}"))
            .unwrap()
            .into_iter()
            .map(|m| {
                (
                    Envelope::from_json(&m.body).unwrap(),
                    m.attributes
                        .into_iter()
                        .map(|(k, a)| (k, a.value))
                        .collect(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn the_embedded_publisher_passes_the_publish_suite() {
    let engine = Engine::in_memory(Arc::new(ManualClock::at_epoch())).unwrap();
    let mut env = BTreeMap::new();
    for topic in ["inventory", "tasks"] {
        engine.create_topic(topic);
        engine
            .create_queue(QueueConfig::new(format!("probe-{topic}")))
            .unwrap();
        engine
            .subscribe(
                topic,
                Subscription {
                    queue: format!("probe-{topic}"),
                    filter_policy: None,
                    scope: Scope::MessageAttributes,
                    raw: true,
                },
            )
            .unwrap();
        env.insert(
            format!("TOPIC_ARN_{}", topic.to_uppercase()),
            topic_arn(topic),
        );
    }
    env.insert("TOPIC_ARN_NOSUCHENTITY_NOT".into(), queue_url("x"));
    let publisher = EmbeddedPublisher::new(engine.clone(), Topics::from_env(&env));
    conformance::publish_suite(&publisher, &QueueProbe(engine), "pub").await;
}
