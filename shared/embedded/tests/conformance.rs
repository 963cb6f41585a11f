//! The embedded adapters pass the platform's conformance suites.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::Envelope;
use bazaar_embedded::engine::{queue_url, topic_arn};
use bazaar_embedded::filter::{Attribute, Scope};
use bazaar_embedded::{EmbeddedPublisher, EmbeddedTable, Engine, QueueConfig, Subscription};
use bazaar_platform::clock::ManualClock;
use bazaar_platform::conformance::{self, Probe};
use bazaar_platform::ports::Topics;

#[tokio::test]
async fn the_embedded_table_passes_the_table_suite() {
    let engine = Engine::in_memory(Arc::new(ManualClock::at_epoch())).unwrap();
    engine.create_table("conformance").unwrap();
    conformance::table_suite(&EmbeddedTable::new(engine, "conformance"), "ns1").await;
}

#[tokio::test]
async fn the_embedded_table_passes_the_table_suite_on_a_file() {
    let dir = std::env::temp_dir().join(format!("bazaar-conformance-{}", std::process::id()));
    let engine =
        Engine::open(&dir.join("store.sqlite"), Arc::new(ManualClock::at_epoch())).unwrap();
    engine.create_table("conformance").unwrap();
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

struct EngineMessaging(Arc<Engine>);

#[async_trait]
impl conformance::Messaging for EngineMessaging {
    async fn create_queue(
        &self,
        name: &str,
        visibility_timeout: u32,
        redrive: Option<(&str, u32)>,
    ) {
        let mut q = QueueConfig::new(name);
        q.visibility_timeout = visibility_timeout;
        q.redrive = redrive.map(|(dlq, max)| bazaar_embedded::Redrive {
            dead_letter_queue: dlq.into(),
            max_receive_count: max,
        });
        self.0.create_queue(q).unwrap();
    }
    async fn create_topic(&self, name: &str) {
        self.0.create_topic(name);
    }
    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter_policy: Option<serde_json::Value>,
        raw: bool,
    ) {
        self.0
            .subscribe(
                topic,
                Subscription {
                    queue: queue.into(),
                    filter_policy,
                    scope: Scope::MessageAttributes,
                    raw,
                },
            )
            .unwrap();
    }
    async fn publish(
        &self,
        topic: &str,
        body: &str,
        strings: &[(&str, &str)],
        numbers: &[(&str, &str)],
    ) {
        let mut attrs: BTreeMap<String, Attribute> = strings
            .iter()
            .map(|(k, v)| (k.to_string(), Attribute::string(*v)))
            .collect();
        attrs.extend(numbers.iter().map(|(k, v)| {
            (
                k.to_string(),
                Attribute {
                    data_type: "Number".into(),
                    value: v.to_string(),
                },
            )
        }));
        self.0.publish(topic, body, &attrs).unwrap();
    }
    async fn send(&self, queue: &str, body: &str) {
        self.0
            .send(queue, body, BTreeMap::new(), None, None)
            .unwrap();
    }
    async fn receive(&self, queue: &str, max: u32) -> Vec<conformance::Delivered> {
        self.0
            .receive(queue, max as usize, None)
            .unwrap()
            .into_iter()
            .map(|m| conformance::Delivered {
                body: m.body,
                receipt: m.receipt_handle,
                receive_count: m.receive_count,
                attributes: m
                    .attributes
                    .into_iter()
                    .map(|(k, a)| (k, a.value))
                    .collect(),
            })
            .collect()
    }
    async fn delete(&self, queue: &str, receipt: &str) {
        self.0.delete(queue, receipt).unwrap();
    }
    async fn change_visibility(&self, queue: &str, receipt: &str, seconds: u32) {
        self.0.change_visibility(queue, receipt, seconds).unwrap();
    }
}

#[tokio::test]
async fn the_embedded_engine_passes_the_messaging_suite() {
    let engine = Engine::in_memory(Arc::new(ManualClock::at_epoch())).unwrap();
    conformance::messaging_suite(&EngineMessaging(engine), "msg").await;
}

#[tokio::test]
async fn a_file_keeps_each_table_in_its_own_file() {
    use bazaar_platform::item::{Key, item};
    use bazaar_platform::ports::Table;
    let dir = std::env::temp_dir().join(format!("bazaar-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("local.sqlite");
    let key = |pk: &str, sk: &str| Key::new(pk, sk);
    {
        let engine = Engine::open(&path, Arc::new(ManualClock::at_epoch())).unwrap();
        engine.create_table("orders").unwrap();
        engine.create_table("stock").unwrap();
        let orders = EmbeddedTable::new(engine.clone(), "orders");
        let stock = EmbeddedTable::new(engine.clone(), "stock");
        orders
            .put(
                item(&key("O#1", "ORDER"), serde_json::json!({ "n": 1 })),
                None,
            )
            .await
            .unwrap();
        stock
            .put(
                item(&key("S#1", "STOCK"), serde_json::json!({ "n": 2 })),
                None,
            )
            .await
            .unwrap();
        assert!(dir.join("local.tables/orders.sqlite").exists());
        assert!(dir.join("local.tables/stock.sqlite").exists());
        assert!(
            orders.get(&key("S#1", "STOCK")).await.unwrap().is_none(),
            "another table's item stays out"
        );
    }
    // Reopened: each item is read from its table's own file.
    let engine = Engine::open(&path, Arc::new(ManualClock::at_epoch())).unwrap();
    engine.create_table("orders").unwrap();
    engine.create_table("stock").unwrap();
    let orders = EmbeddedTable::new(engine.clone(), "orders");
    let stock = EmbeddedTable::new(engine.clone(), "stock");
    assert_eq!(
        orders.get(&key("O#1", "ORDER")).await.unwrap().unwrap()["n"],
        1
    );
    assert_eq!(
        stock.get(&key("S#1", "STOCK")).await.unwrap().unwrap()["n"],
        2
    );
    assert!(
        engine.create_table("../escape").is_err(),
        "a name is a file name"
    );
    drop((orders, stock, engine));
    Engine::remove_files(&path).unwrap();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "remove_files leaves nothing of the store"
    );
    Engine::remove_files(&path).unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_embedded_secrets_pass_the_secret_suite_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("bazaar-secrets-{}", std::process::id()));
    let path = dir.join("store.sqlite");
    let clock = Arc::new(ManualClock::at_epoch());
    let secrets = bazaar_embedded::EmbeddedSecrets(Engine::open(&path, clock.clone()).unwrap());
    conformance::secret_suite(&secrets, &secrets, "bazaar-test").await;
    drop(secrets);

    use bazaar_platform::secrets::{SecretAdmin, SecretStore};
    let reopened = bazaar_embedded::EmbeddedSecrets(Engine::open(&path, clock).unwrap());
    let arn = reopened
        .ensure("bazaar-test-webhook-secret", "a-value-from-the-template")
        .await
        .unwrap();
    let held = reopened.versions(&arn).await.unwrap();
    assert_eq!(
        (
            held.current.expose(),
            held.previous.as_ref().map(|p| p.expose())
        ),
        ("third-value-0003", Some("second-value-0002")),
        "a restart (which ensures every secret again) keeps the rotated value"
    );
    let _ = std::fs::remove_dir_all(dir);
}
