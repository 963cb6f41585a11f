//! The platform's ports on the embedded engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_platform::item::{
    Item, Key, Page, Query, SK, Update, Write, validate_item, validate_transaction,
};
use bazaar_platform::ports::{
    DeadLetter, DeadLetters, Encoded, MAX_BATCH, PublishError, Publisher, Table, TableError,
    Topics, WriteFailure, attributes_for_publish,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::engine::{Engine, EngineError, TableDb, Tx, lock, name_of};
use crate::filter::Attribute;

fn store_error(e: EngineError) -> TableError {
    match e {
        EngineError::Invalid(m) => TableError::Invalid(m),
        EngineError::NotFound { .. } => TableError::Invalid(e.to_string()),
        EngineError::Store(s) => TableError::Unavailable(Box::new(s)),
    }
}

fn sql_error(e: rusqlite::Error) -> TableError {
    TableError::Unavailable(Box::new(e))
}

/// A service table in the embedded engine.
#[derive(Clone)]
pub struct EmbeddedTable {
    engine: Arc<Engine>,
    name: String,
}

impl EmbeddedTable {
    /// The table `name` (it must have been created).
    pub fn new(engine: Arc<Engine>, name: impl Into<String>) -> Self {
        EmbeddedTable {
            engine,
            name: name.into(),
        }
    }
}

impl EmbeddedTable {
    /// The table's database.
    fn db(&self) -> Result<TableDb, TableError> {
        self.engine.table_db(&self.name).map_err(store_error)
    }
}

fn read(db: &Connection, key: &Key) -> Result<Option<Item>, TableError> {
    let body: Option<String> = db
        .prepare_cached("SELECT body FROM items WHERE pk = ?1 AND sk = ?2")
        .map_err(sql_error)?
        .query_row(params![key.pk, key.sk], |r| r.get(0))
        .optional()
        .map_err(sql_error)?;
    body.map(|b| serde_json::from_str(&b).map_err(|e| TableError::Unavailable(Box::new(e))))
        .transpose()
}

/// Writes an item whose key `validate_item` gave (so after every check: the in-memory store
/// keeps no rollback journal, and a transaction must not fail halfway through its writes).
fn write(db: &Connection, key: &Key, item: &Item) -> Result<(), TableError> {
    let body = serde_json::to_string(item).map_err(|e| TableError::Invalid(e.to_string()))?;
    db.prepare_cached("INSERT OR REPLACE INTO items (pk, sk, body) VALUES (?1, ?2, ?3)")
        .map_err(sql_error)?
        .execute(params![key.pk, key.sk, body])
        .map_err(sql_error)?;
    Ok(())
}

fn remove(db: &Connection, key: &Key) -> Result<(), TableError> {
    db.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
        .map_err(sql_error)?
        .execute(params![key.pk, key.sk])
        .map_err(sql_error)?;
    Ok(())
}

fn check_item(item: &Item) -> Result<Key, TableError> {
    validate_item(item).map_err(TableError::Invalid)
}

fn apply_update(key: &Key, update: &Update, current: Option<&Item>) -> Result<Item, TableError> {
    update.apply(key, current).map_err(TableError::Invalid)
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        read(&lock(&*self.db()?), key)
    }

    async fn put(
        &self,
        item: Item,
        condition: Option<bazaar_platform::item::Condition>,
    ) -> Result<(), TableError> {
        let key = check_item(&item)?;
        let db = self.db()?;
        let db = lock(&db);
        // The current item is read only to judge a condition: an unconditional put (the
        // archive's, four per event) replaces whatever is there.
        if let Some(c) = condition
            && !c.holds(read(&db, &key)?.as_ref())
        {
            return Err(TableError::ConditionFailed);
        }
        write(&db, &key, &item)
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<bazaar_platform::item::Condition>,
    ) -> Result<Item, TableError> {
        let db = self.db()?;
        let db = lock(&db);
        let current = read(&db, key)?;
        let new = apply_update(key, &update, current.as_ref())?;
        if condition.is_some_and(|c| !c.holds(current.as_ref())) {
            return Err(TableError::ConditionFailed);
        }
        let checked = check_item(&new)?;
        write(&db, &checked, &new)?;
        Ok(new)
    }

    async fn delete(
        &self,
        key: &Key,
        condition: Option<bazaar_platform::item::Condition>,
    ) -> Result<(), TableError> {
        let db = self.db()?;
        let db = lock(&db);
        if let Some(c) = condition {
            let current = read(&db, key)?;
            if !c.holds(current.as_ref()) {
                return Err(TableError::ConditionFailed);
            }
        }
        remove(&db, key)
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let db = self.db()?;
        let db = lock(&db);
        let order = if query.forward { "ASC" } else { "DESC" };
        let mut stmt = db
            .prepare_cached(&format!(
                "SELECT sk, body FROM items WHERE pk = ?1 ORDER BY sk {order}"
            ))
            .map_err(sql_error)?;
        let rows = stmt
            .query_map(params![query.pk], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql_error)?;
        let limit = query.limit.map(|l| l as usize).unwrap_or(usize::MAX);
        let mut page = Page::default();
        let mut bytes = 0usize;
        for row in rows {
            let (sk, body) = row.map_err(sql_error)?;
            if let Some(after) = &query.start_after {
                let past = if query.forward {
                    sk.as_str() > after.as_str()
                } else {
                    sk.as_str() < after.as_str()
                };
                if !past {
                    continue;
                }
            }
            if !query.sort_key.matches(&sk) {
                continue;
            }
            if page.items.len() == limit || bytes > 1024 * 1024 {
                // DynamoDB sets LastEvaluatedKey when it stops early with items left.
                page.last_sk = page
                    .items
                    .last()
                    .and_then(|i| i.get(SK))
                    .and_then(Value::as_str)
                    .map(String::from);
                break;
            }
            bytes += body.len();
            page.items.push(
                serde_json::from_str(&body).map_err(|e| TableError::Unavailable(Box::new(e)))?,
            );
        }
        Ok(page)
    }

    /// In key order (DynamoDB's is by partition hash; the callers may rely on no order).
    async fn scan(
        &self,
        start_after: Option<Key>,
        limit: usize,
    ) -> Result<bazaar_platform::ports::ScanPage, TableError> {
        let db = self.db()?;
        let db = lock(&db);
        let (pk, sk) = start_after
            .as_ref()
            .map(|k| (k.pk.clone(), k.sk.clone()))
            .unwrap_or_default();
        let mut stmt = db
            .prepare_cached(
                "SELECT body FROM items WHERE ?1 = 0 OR pk > ?2 OR (pk = ?2 AND sk > ?3) ORDER BY pk, sk LIMIT ?4",
            )
            .map_err(sql_error)?;
        let wanted = limit.max(1);
        let rows = stmt
            .query_map(
                params![
                    i64::from(start_after.is_some()),
                    pk,
                    sk,
                    i64::try_from(wanted + 1).unwrap_or(i64::MAX)
                ],
                |r| r.get::<_, String>(0),
            )
            .map_err(sql_error)?;
        let mut page = bazaar_platform::ports::ScanPage::default();
        for row in rows {
            let body = row.map_err(sql_error)?;
            if page.items.len() == wanted {
                page.last_key = page.items.last().and_then(Key::of);
                break;
            }
            page.items.push(
                serde_json::from_str(&body).map_err(|e| TableError::Unavailable(Box::new(e)))?,
            );
        }
        Ok(page)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        let db = self.db()?;
        validate_transaction(&writes).map_err(TableError::Invalid)?;
        let db = lock(&db);
        let tx = Tx::begin(&db).map_err(sql_error)?;
        let mut reasons = Vec::with_capacity(writes.len());
        let mut failed = false;
        let mut results = Vec::with_capacity(writes.len());
        for w in &writes {
            let key = w.key().expect("checked above");
            let current = read(&tx, &key)?;
            let ok = w.condition().is_none_or(|c| c.holds(current.as_ref()));
            reasons.push(if ok {
                WriteFailure::None
            } else {
                WriteFailure::ConditionFailed
            });
            failed |= !ok;
            // Every item the transaction writes is built and checked before the first write.
            let next = match w {
                Write::Put { item, .. } => Some(Some(item.clone())),
                Write::Update { key, update, .. } => {
                    let new = apply_update(key, update, current.as_ref())?;
                    check_item(&new)?;
                    Some(Some(new))
                }
                Write::Delete { .. } => Some(None),
                Write::Check { .. } => None,
            };
            results.push((key, next));
        }
        if failed {
            return Err(TableError::TransactionCanceled { reasons });
        }
        for (key, next) in results {
            match next {
                Some(Some(item)) => write(&tx, &key, &item)?,
                Some(None) => remove(&tx, &key)?,
                None => {}
            }
        }
        tx.commit().map_err(sql_error)
    }
}

/// Publishes to the engine's topics, resolved from `TOPIC_ARN_*` like the AWS adapter.
#[derive(Clone)]
pub struct EmbeddedPublisher {
    engine: Arc<Engine>,
    topics: Topics,
}

impl EmbeddedPublisher {
    /// A publisher for the given topics.
    pub fn new(engine: Arc<Engine>, topics: Topics) -> Self {
        EmbeddedPublisher { engine, topics }
    }
}

#[async_trait]
impl Publisher for EmbeddedPublisher {
    async fn publish_encoded(&self, messages: &Encoded<'_>) -> Result<(), PublishError> {
        // Check every message first, so that nothing is published from an invalid batch.
        let mut encoded = Vec::with_capacity(messages.len());
        for (e, text) in messages.iter() {
            let arn = self.topics.arn(e.topic())?.to_string();
            encoded.push((arn, (text, attributes_for_publish(e, text)?)));
        }
        for chunk in encoded.chunks(MAX_BATCH) {
            for (arn, (body, attributes)) in chunk {
                let attrs: BTreeMap<String, Attribute> = attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), Attribute::string(v.clone())))
                    .collect();
                self.engine
                    .publish(arn, body, &attrs)
                    .map_err(|e| match e {
                        EngineError::NotFound { .. } => {
                            PublishError::UnknownTopic(name_of(arn).to_string())
                        }
                        other => PublishError::Unavailable(Box::new(other)),
                    })?;
            }
        }
        Ok(())
    }
}

/// Sends parked messages to a function's DLQ in the engine.
#[derive(Clone)]
pub struct EmbeddedDeadLetters {
    engine: Arc<Engine>,
    queue: Option<String>,
}

impl EmbeddedDeadLetters {
    /// The DLQ at `queue` (a URL, ARN or name); `None` for a function without one.
    pub fn new(engine: Arc<Engine>, queue: Option<String>) -> Self {
        EmbeddedDeadLetters { engine, queue }
    }
}

#[async_trait]
impl DeadLetters for EmbeddedDeadLetters {
    async fn park(&self, letter: DeadLetter) -> Result<(), PublishError> {
        let queue = self
            .queue
            .as_deref()
            .ok_or_else(|| PublishError::UnknownTopic("dead-letter queue (DLQ_URL)".into()))?;
        let attrs = letter
            .attributes
            .into_iter()
            .map(|(k, v)| (k, Attribute::string(v)))
            .collect();
        let dedup = letter
            .group_id
            .as_ref()
            .map(|_| uuid::Uuid::new_v4().to_string());
        self.engine
            .send(
                name_of(queue),
                &letter.body,
                attrs,
                letter.group_id.as_deref(),
                dedup.as_deref(),
            )
            .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}

/// Builds a function's ports on the engine from its environment (`TABLE_NAME`,
/// `TOPIC_ARN_<NAME>`, `DLQ_URL`), as `bazaar_aws::aws_deps` does on AWS.
pub fn deps(
    engine: &Arc<Engine>,
    function: &str,
    env: BTreeMap<String, String>,
    ids: Arc<dyn bazaar_platform::ids::Ids>,
    metrics: Arc<dyn bazaar_platform::telemetry::MetricsSink>,
) -> bazaar_platform::Deps {
    bazaar_platform::Deps {
        function: function.to_string(),
        table: env
            .get("TABLE_NAME")
            .map(|t| Arc::new(EmbeddedTable::new(engine.clone(), t.clone())) as _),
        tables: bazaar_platform::deps::named_tables(&env)
            .map(|(role, t)| {
                (
                    role,
                    Arc::new(EmbeddedTable::new(engine.clone(), t.clone())) as _,
                )
            })
            .collect(),
        publisher: Arc::new(EmbeddedPublisher::new(
            engine.clone(),
            Topics::from_env(&env),
        )),
        dead_letters: Arc::new(EmbeddedDeadLetters::new(
            engine.clone(),
            env.get("DLQ_URL").cloned(),
        )),
        clock: engine.clock().clone(),
        ids,
        metrics,
        keys: None,
        queues: env
            .contains_key("MONITORED_QUEUES")
            .then(|| Arc::new(EmbeddedQueueStats(engine.clone())) as _),
        secrets: bazaar_platform::secrets::SecretBook::from_env(
            &env,
            &(Arc::new(EmbeddedSecrets(engine.clone())) as _),
            engine.clock(),
        ),
        env,
        harness: Default::default(),
    }
}

/// Queue depths from the engine: exact counts, and the oldest message's age.
pub struct EmbeddedQueueStats(pub Arc<Engine>);

#[async_trait]
impl bazaar_platform::ports::QueueStats for EmbeddedQueueStats {
    async fn depth(
        &self,
        url: &str,
    ) -> Result<bazaar_platform::ports::QueueDepth, bazaar_platform::HandlerError> {
        let s = self
            .0
            .stats(name_of(url))
            .map_err(|e| bazaar_platform::HandlerError::Transient(Box::new(e)))?;
        Ok(bazaar_platform::ports::QueueDepth {
            visible: s.visible + s.delayed,
            in_flight: s.in_flight,
            oldest_age_s: Some(s.oldest_age_ms / 1000),
        })
    }
}

/// Secrets in the engine's `secrets` table: what Secrets Manager is to a function on AWS.
pub struct EmbeddedSecrets(pub Arc<Engine>);

fn secret_error(e: EngineError) -> bazaar_platform::secrets::SecretError {
    use bazaar_platform::secrets::SecretError;
    match e {
        EngineError::NotFound { name, .. } => SecretError::NotFound(name),
        EngineError::Invalid(why) => SecretError::Invalid(why),
        other => SecretError::Unavailable {
            id: "local secret store".into(),
            reason: other.to_string(),
        },
    }
}

#[async_trait]
impl bazaar_platform::secrets::SecretStore for EmbeddedSecrets {
    async fn versions(
        &self,
        id: &str,
    ) -> Result<bazaar_platform::secrets::Versions, bazaar_platform::secrets::SecretError> {
        use bazaar_platform::secrets::{SecretError, SecretValue, Versions};
        let stored = self
            .0
            .secret(id)
            .map_err(secret_error)?
            .ok_or_else(|| SecretError::NotFound(id.to_string()))?;
        Ok(Versions {
            current: SecretValue::new(stored.current),
            previous: stored.previous.map(SecretValue::new),
        })
    }
}

#[async_trait]
impl bazaar_platform::secrets::SecretAdmin for EmbeddedSecrets {
    async fn ensure(
        &self,
        name: &str,
        value: &str,
    ) -> Result<String, bazaar_platform::secrets::SecretError> {
        self.0.create_secret(name, value).map_err(secret_error)
    }

    async fn put(
        &self,
        id: &str,
        value: &str,
    ) -> Result<(), bazaar_platform::secrets::SecretError> {
        self.0.put_secret_value(id, value).map_err(secret_error)
    }

    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, bazaar_platform::secrets::SecretError> {
        Ok(self
            .0
            .secret_names(prefix)
            .map_err(secret_error)?
            .into_iter()
            .map(|n| (crate::engine::secret_arn(&n), n))
            .collect())
    }
}
