//! A fixture for handler tests: one function's ports on an in-memory engine, with every
//! resource its environment names created, and probes on what it sends and parks.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_contracts::Envelope;
use bazaar_platform::Deps;
use bazaar_platform::clock::ManualClock;
use bazaar_platform::ids::SequentialIds;
use bazaar_platform::telemetry::CollectedMetrics;

use crate::engine::{Engine, Received, name_of, queue_url, topic_arn};
use crate::filter::Scope;
use crate::{QueueConfig, Subscription, deps, identity};

/// A function's world in memory.
pub struct Fixture {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Its simulated clock.
    pub clock: Arc<ManualClock>,
    /// Metrics the function recorded.
    pub metrics: Arc<CollectedMetrics>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// An empty world at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::at_epoch());
        let engine = Engine::in_memory(clock.clone()).expect("an in-memory engine");
        Fixture {
            engine,
            clock,
            metrics: Arc::new(CollectedMetrics::default()),
        }
    }

    /// Creates the secret `name` with `value` in the engine's secret store; returns its ARN,
    /// for a `<NAME>_SECRET_ARN` variable.
    pub fn secret(&self, name: &str, value: &str) -> String {
        self.engine
            .create_secret(name, value)
            .expect("a valid secret name and value")
    }

    /// Rotates the secret `id` to `value` (the current value becomes the previous).
    pub fn rotate(&self, id: &str, value: &str) {
        self.engine
            .put_secret_value(id, value)
            .expect("an existing secret")
    }

    /// The secret `name` with `value` as a function would hold it (known to it as
    /// `variable`), on this world's clock.
    pub fn held_secret(
        &self,
        variable: &str,
        name: &str,
        value: &str,
    ) -> Arc<bazaar_platform::secrets::Secret> {
        let id = self.secret(name, value);
        Arc::new(bazaar_platform::secrets::Secret::new(
            variable,
            id,
            Arc::new(crate::EmbeddedSecrets(self.engine.clone())),
            self.clock.clone(),
        ))
    }

    /// The ports of `function` with a table (`table`, when given), the `topics` it publishes
    /// to (each with a probe queue) and a DLQ; the same environment variables the template
    /// sets.
    pub fn deps(&self, function: &str, table: Option<&str>, topics: &[&str]) -> Arc<Deps> {
        self.deps_with_env(function, table, topics, &[])
    }

    /// [`Fixture::deps`] with more environment variables (`ISSUER`, `TABLE_NAME_<NAME>`
    /// for another table, which is created, ...).
    pub fn deps_with_env(
        &self,
        function: &str,
        table: Option<&str>,
        topics: &[&str],
        vars: &[(&str, &str)],
    ) -> Arc<Deps> {
        let mut env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(t) = table {
            self.engine.create_table(t).expect("a valid table name");
            env.insert("TABLE_NAME".to_string(), t.to_string());
        }
        // Other tables named by `vars` (`TABLE_NAME_REGISTRY`) exist too.
        for (_, t) in bazaar_platform::deps::named_tables(&env) {
            self.engine.create_table(t).expect("a valid table name");
        }
        for topic in topics {
            self.engine.create_topic(topic);
            let probe = format!("probe-{topic}");
            self.engine
                .create_queue(QueueConfig::new(&probe))
                .expect("probe queue");
            self.engine
                .subscribe(
                    topic,
                    Subscription {
                        queue: probe,
                        filter_policy: None,
                        scope: Scope::MessageAttributes,
                        raw: true,
                    },
                )
                .expect("probe subscription");
            env.insert(
                format!("TOPIC_ARN_{}", topic.to_uppercase()),
                topic_arn(topic),
            );
        }
        let dlq = format!("{function}-dlq");
        self.engine
            .create_queue(QueueConfig::new(&dlq))
            .expect("dlq");
        env.insert("DLQ_URL".to_string(), queue_url(&dlq));
        // Tokens minted with the local key (`identity::token`) are accepted, as on the local
        // stack; `vars` may name another issuer or audience.
        env.entry("JWT_ISSUER".to_string())
            .or_insert_with(|| identity::LOCAL_ISSUER.to_string());
        env.entry("JWT_AUDIENCE".to_string())
            .or_insert_with(|| identity::LOCAL_AUDIENCE.to_string());
        let mut d = deps(
            &self.engine,
            function,
            env,
            Arc::new(SequentialIds::new(0xf1)),
            self.metrics.clone(),
        );
        d.keys = Some(identity::local_keys());
        Arc::new(d)
    }

    /// Every envelope published to `topic` so far.
    pub fn sent(&self, topic: &str) -> Vec<Envelope> {
        self.engine
            .peek(&format!("probe-{topic}"))
            .expect("probe queue")
            .into_iter()
            .map(|m| Envelope::from_json(&m.body).expect("an envelope"))
            .collect()
    }

    /// Every message `function` parked in its DLQ.
    pub fn parked(&self, function: &str) -> Vec<Received> {
        self.engine
            .peek(name_of(&format!("{function}-dlq")))
            .expect("dlq")
    }
}

/// Reads an event file of the repository's `events/` folder.
pub fn event(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A copy of an SQS event whose first record's envelope is changed by `edit` (a new id, another
/// type, other data), for tests that need a variation of a sample event.
pub fn with_envelope(
    mut event: serde_json::Value,
    edit: impl FnOnce(&mut serde_json::Value),
) -> serde_json::Value {
    let body = event["Records"][0]["body"]
        .as_str()
        .expect("an SQS event with a body");
    let mut envelope: serde_json::Value =
        serde_json::from_str(body).expect("the body is an envelope");
    edit(&mut envelope);
    event["Records"][0]["body"] = serde_json::Value::String(envelope.to_string());
    event
}
