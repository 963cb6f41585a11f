//! The store and the semantics of the emulated services.
//!
//! Configuration (queues, topics, subscriptions, tables) is held in memory and comes from the
//! template each time the stack starts; data (items and messages) lives in SQLite so that a
//! `scripts/dev` session survives a restart. The queues are one SQLite database and each table
//! another, each behind its own lock, which makes every operation atomic, as the real services'
//! single-item operations and transactions are. No operation spans two of them (a
//! transaction is on one table; the outbox publishes after its table write commits), so
//! functions working on different tables, or on a table while another polls a queue, run
//! side by side rather than waiting on one lock.
//!
//! SQS, as AWS documents it:
//! - a received message is invisible for the visibility timeout, then visible again unless
//!   deleted with its *latest* receipt handle;
//! - each receive increments the receive count; a queue with a redrive policy moves a message
//!   to its dead-letter queue when a receive would exceed `maxReceiveCount`;
//! - FIFO queues hand out messages in order per message group, and none of a group while one
//!   of it is in flight; a deduplication id seen in the last 5 minutes is dropped.
//!
//! SNS fan-out: a publish is delivered to every subscribed queue whose filter policy matches;
//! with raw delivery the body is the message and attributes become SQS message attributes,
//! otherwise the body is the SNS notification JSON.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bazaar_platform::clock::Clock;
use bazaar_platform::ids::random_uuid;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::filter::{self, Attribute, Scope};

/// The account id in local ARNs and URLs.
pub const ACCOUNT: &str = "000000000000";
/// The region in local ARNs.
pub const REGION: &str = "local";
/// SQS's message size limit.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// FIFO deduplication interval.
const DEDUP_MS: i64 = 5 * 60 * 1000;

/// A queue's settings, as the template's `AWS::SQS::Queue` declares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// The queue name (ends in `.fifo` for FIFO queues).
    pub name: String,
    /// Seconds a received message stays invisible.
    pub visibility_timeout: u32,
    /// Seconds a sent message waits before it is visible.
    pub delay: u32,
    /// Where messages go after too many receives.
    pub redrive: Option<Redrive>,
    /// FIFO: use a hash of the body as deduplication id when none is given.
    pub content_based_deduplication: bool,
}

impl QueueConfig {
    /// A standard queue with AWS's defaults (30 s visibility, no delay, no redrive).
    pub fn new(name: impl Into<String>) -> Self {
        QueueConfig {
            name: name.into(),
            visibility_timeout: 30,
            delay: 0,
            redrive: None,
            content_based_deduplication: false,
        }
    }

    /// Whether the queue is FIFO.
    pub fn fifo(&self) -> bool {
        self.name.ends_with(".fifo")
    }
}

/// A redrive policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// The dead-letter queue's name.
    pub dead_letter_queue: String,
    /// Receives allowed before the message is moved.
    pub max_receive_count: u32,
}

/// A queue subscribed to a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The queue's name.
    pub queue: String,
    /// The filter policy, if any.
    pub filter_policy: Option<Value>,
    /// What the policy is matched against.
    pub scope: Scope,
    /// Raw message delivery.
    pub raw: bool,
}

/// A received message.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// SQS's message id (new for every send, redrive and replay).
    pub message_id: String,
    /// The handle to delete it or change its visibility with.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// Message attributes.
    pub attributes: BTreeMap<String, Attribute>,
    /// How many times it was received, this time included.
    pub receive_count: u32,
    /// When it was sent, in epoch milliseconds.
    pub sent_at_ms: i64,
    /// When it was first received, in epoch milliseconds.
    pub first_receive_ms: i64,
    /// FIFO message group.
    pub group_id: Option<String>,
}

/// Counts of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages that can be received now.
    pub visible: u64,
    /// Messages received and not yet deleted nor visible again.
    pub in_flight: u64,
    /// Messages sent with a delay that has not passed.
    pub delayed: u64,
    /// Age of the oldest message in milliseconds (0 when empty).
    pub oldest_age_ms: i64,
}

/// What the engine refuses.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such queue, topic or table.
    #[error("{kind} {name:?} does not exist")]
    NotFound {
        /// `queue`, `topic` or `table`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A request the real service would refuse.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// SQLite failed.
    #[error("store failure")]
    Store(#[from] rusqlite::Error),
}

#[derive(Default)]
struct Config {
    queues: BTreeMap<String, QueueConfig>,
    topics: BTreeMap<String, Vec<Subscription>>,
}

/// Where the engine keeps its databases.
enum Storage {
    /// SQLite's `memdb` VFS, one private database per connection.
    Memory,
    /// The queues' file; each table's file sits beside it, in `<stem>.tables/`.
    File(PathBuf),
}

/// One table's database, behind its own lock.
pub(crate) type TableDb = Arc<Mutex<Connection>>;

/// Delivery as SQS may do it on a bad day, for tests: standard queues get every message
/// `1 + duplicates` times and hand out visible messages in a seeded random order.
#[derive(Debug, Default)]
struct Chaos {
    duplicates: u32,
    /// Whether `duplicates` is a maximum, drawn per message, rather than a fixed count.
    at_most: bool,
    shuffle: Option<rand::rngs::SmallRng>,
}

/// The embedded services.
pub struct Engine {
    /// The queues (messages and FIFO deduplication ids).
    db: Mutex<Connection>,
    /// Each table's database, by table name.
    tables: RwLock<HashMap<String, TableDb>>,
    storage: Storage,
    clock: Arc<dyn Clock>,
    config: RwLock<Config>,
    changed: tokio::sync::Notify,
    chaos: Mutex<Chaos>,
    /// Every send, as (queue, envelope id), once [`Engine::record_sends`] is called.
    journal: Mutex<Option<Vec<(String, String)>>>,
    /// Observers of every send ([`Engine::tap`]).
    taps: RwLock<Vec<Tap>>,
}

/// Sees every message sent to a queue: (queue name, body).
pub type Tap = Arc<dyn Fn(&str, &str) + Send + Sync>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, attributes TEXT NOT NULL,
  sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
  first_receive INTEGER, receipt TEXT, group_id TEXT);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS messages_in_order ON messages (queue, seq);
DROP INDEX IF EXISTS messages_by_receipt;
CREATE TABLE IF NOT EXISTS fifo_dedup (queue TEXT NOT NULL, dedup_id TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (queue, dedup_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, current TEXT NOT NULL, previous TEXT, changed_at INTEGER NOT NULL);
";

/// A table's database. Items are rows in insertion order with a unique index on the key,
/// rather than rows of a b-tree ordered by key: items carrying an envelope are over 1 KB, a
/// key-ordered b-tree holds three or four of them per page and rebalanced its pages at
/// most inserts, where appending a row and inserting a short index entry does not.
const TABLE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (pk TEXT NOT NULL, sk TEXT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS items_by_key ON items (pk, sk);
";

/// The local ARN of a secret.
pub fn secret_arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}")
}

/// The name of a secret given by its ARN (any region's: a stack provisioned on an endpoint
/// names them so too) or by its name.
pub fn secret_name(id: &str) -> &str {
    match id.split_once(":secret:") {
        Some((prefix, name)) if prefix.starts_with("arn:") => name,
        _ => id,
    }
}

/// One secret as the engine keeps it: what Secrets Manager calls the `AWSCURRENT` and
/// `AWSPREVIOUS` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// The current value.
    pub current: String,
    /// The value before the last change.
    pub previous: Option<String>,
}

/// The local ARN of a topic.
pub fn topic_arn(name: &str) -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}")
}

/// The local ARN of a queue.
pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

/// The local URL of a queue.
pub fn queue_url(name: &str) -> String {
    format!("http://sqs.{REGION}.localhost/{ACCOUNT}/{name}")
}

/// The name inside an ARN or URL (its last `:` or `/` segment); a plain name stays as it is.
pub fn name_of(arn_or_url: &str) -> &str {
    arn_or_url.rsplit([':', '/']).next().unwrap_or(arn_or_url)
}

impl Engine {
    /// An engine whose data lives in memory only (tests).
    pub fn in_memory(clock: Arc<dyn Clock>) -> Result<Arc<Engine>, EngineError> {
        let conn = connect(&Storage::Memory, None)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self::with_connection(conn, Storage::Memory, clock))
    }

    /// An engine whose data lives in a SQLite file, created if needed; each table's data in
    /// a file of its own beside it (`<stem>.tables/<table>.sqlite`).
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Arc<Engine>, EngineError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                EngineError::Invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let storage = Storage::File(path.to_path_buf());
        let conn = connect(&storage, None)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self::with_connection(conn, storage, clock))
    }

    /// Deletes what [`Engine::open`] keeps at `path`: the queues' file with its log, and
    /// every table's file. Nothing there is not an error.
    pub fn remove_files(path: &Path) -> std::io::Result<()> {
        let mut names = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            names.push(name.into());
        }
        for name in names {
            match std::fs::remove_file(&name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match std::fs::remove_dir_all(tables_dir(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn with_connection(conn: Connection, storage: Storage, clock: Arc<dyn Clock>) -> Arc<Engine> {
        Arc::new(Engine {
            db: Mutex::new(conn),
            tables: RwLock::new(HashMap::new()),
            storage,
            clock,
            config: RwLock::new(Config::default()),
            changed: tokio::sync::Notify::new(),
            chaos: Mutex::new(Chaos::default()),
            journal: Mutex::new(None),
            taps: RwLock::new(Vec::new()),
        })
    }

    /// Makes standard queues deliver every message sent from now on `1 + duplicates` times,
    /// and hand out visible messages in an order drawn from `seed` instead of send order (what
    /// SQS's at-least-once, best-effort-order delivery allows). FIFO queues are unaffected.
    pub fn set_chaos(&self, duplicates: u32, seed: Option<u64>) {
        use rand::SeedableRng;
        let mut chaos = self.chaos.lock().expect("chaos lock");
        chaos.duplicates = duplicates;
        chaos.at_most = false;
        chaos.shuffle = seed.map(rand::rngs::SmallRng::seed_from_u64);
    }

    /// Like [`Engine::set_chaos`], but each message is delivered `1 + d` times with `d` drawn
    /// from `0..=max_duplicates` by the seeded generator: some messages once, some several
    /// times, reproducibly.
    pub fn set_chaos_at_most(&self, max_duplicates: u32, seed: u64) {
        use rand::SeedableRng;
        let mut chaos = self.chaos.lock().expect("chaos lock");
        chaos.duplicates = max_duplicates;
        chaos.at_most = true;
        chaos.shuffle = Some(rand::rngs::SmallRng::seed_from_u64(seed));
    }

    /// Starts keeping a journal of every message sent to a queue (directly or by a topic's
    /// fan-out), once per send whatever the duplicates chaos adds: what a history checker
    /// needs to know which consumer was owed which message.
    pub fn record_sends(&self) {
        let mut journal = self.journal.lock().expect("journal lock");
        journal.get_or_insert_with(Vec::new);
    }

    /// Calls `tap` with every message sent to a queue from now on (directly or through a
    /// topic), before it is stored: for benchmarks that time a flow by the messages it
    /// sends, without polling. A tap must be quick; it runs on the sender's path.
    pub fn tap(&self, tap: Tap) {
        self.taps.write().expect("taps lock").push(tap);
    }

    /// The journal so far: (queue, the `id` attribute of the message, empty without one).
    pub fn sends(&self) -> Vec<(String, String)> {
        self.journal
            .lock()
            .expect("journal lock")
            .clone()
            .unwrap_or_default()
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        lock(&self.db)
    }

    /// Waits until a message is sent anywhere (the local stack's pollers sleep on it).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// A wait for the next send anywhere, to take *before* looking at the queues: once
    /// [`Notified::enable`](tokio::sync::futures::Notified::enable)d it completes for any
    /// send after that point, so a message sent between the look and the wait is not missed.
    pub fn next_change(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    // ---- configuration ----

    /// Creates a queue, or updates its settings (idempotent, like `CreateQueue`).
    pub fn create_queue(&self, config: QueueConfig) -> Result<(), EngineError> {
        if let Some(r) = &config.redrive
            && r.max_receive_count == 0
        {
            return Err(EngineError::Invalid(
                "maxReceiveCount must be at least 1".into(),
            ));
        }
        self.config
            .write()
            .expect("config lock")
            .queues
            .insert(config.name.clone(), config);
        Ok(())
    }

    /// A queue's settings.
    pub fn queue(&self, name: &str) -> Result<QueueConfig, EngineError> {
        self.config
            .read()
            .expect("config lock")
            .queues
            .get(name_of(name))
            .cloned()
            .ok_or_else(|| EngineError::NotFound {
                kind: "queue",
                name: name.to_string(),
            })
    }

    /// Every queue's name.
    pub fn queue_names(&self) -> Vec<String> {
        self.config
            .read()
            .expect("config lock")
            .queues
            .keys()
            .cloned()
            .collect()
    }

    /// Creates a topic (idempotent).
    pub fn create_topic(&self, name: &str) {
        self.config
            .write()
            .expect("config lock")
            .topics
            .entry(name.to_string())
            .or_default();
    }

    /// Subscribes a queue to a topic.
    pub fn subscribe(&self, topic: &str, subscription: Subscription) -> Result<(), EngineError> {
        if let Some(p) = &subscription.filter_policy {
            filter::validate(p).map_err(EngineError::Invalid)?;
        }
        self.queue(&subscription.queue)?;
        let mut config = self.config.write().expect("config lock");
        let subs = config
            .topics
            .get_mut(name_of(topic))
            .ok_or_else(|| EngineError::NotFound {
                kind: "topic",
                name: topic.to_string(),
            })?;
        subs.retain(|s| s.queue != subscription.queue);
        subs.push(subscription);
        Ok(())
    }

    /// Creates the secret `name` with `value` unless it exists (an existing secret keeps its
    /// value, so that a rotation survives a restart); returns its ARN. Names are Secrets
    /// Manager's: up to 512 letters, digits and `/_+=.@-`.
    pub fn create_secret(&self, name: &str, value: &str) -> Result<String, EngineError> {
        if name.is_empty()
            || name.len() > 512
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        {
            return Err(EngineError::Invalid(format!(
                "secret name {name:?}: up to 512 letters, digits or /_+=.@-"
            )));
        }
        if value.is_empty() {
            return Err(EngineError::Invalid(format!(
                "secret {name:?}: a value cannot be empty"
            )));
        }
        let now = self.clock.now().timestamp_millis();
        self.db()
            .prepare_cached(
                "INSERT INTO secrets (name, current, previous, changed_at) VALUES (?1, ?2, NULL, ?3) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, value, now])?;
        Ok(secret_arn(name))
    }

    /// Makes `value` the current value of the secret `id` (an ARN or a name); the current
    /// one becomes the previous.
    pub fn put_secret_value(&self, id: &str, value: &str) -> Result<(), EngineError> {
        let name = secret_name(id);
        if value.is_empty() {
            return Err(EngineError::Invalid(format!(
                "secret {name:?}: a value cannot be empty"
            )));
        }
        let now = self.clock.now().timestamp_millis();
        let changed = self
            .db()
            .prepare_cached(
                "UPDATE secrets SET previous = CASE WHEN current = ?2 THEN previous ELSE current END, current = ?2, changed_at = ?3 WHERE name = ?1",
            )?
            .execute(params![name, value, now])?;
        if changed == 0 {
            return Err(EngineError::NotFound {
                kind: "secret",
                name: name.to_string(),
            });
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// The secret `id` (an ARN or a name), if it exists.
    pub fn secret(&self, id: &str) -> Result<Option<StoredSecret>, EngineError> {
        Ok(self
            .db()
            .prepare_cached("SELECT current, previous FROM secrets WHERE name = ?1")?
            .query_row(params![secret_name(id)], |r| {
                Ok(StoredSecret {
                    current: r.get(0)?,
                    previous: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// The names of the secrets that start with `prefix`, in order.
    pub fn secret_names(&self, prefix: &str) -> Result<Vec<String>, EngineError> {
        let db = self.db();
        let mut statement = db.prepare_cached("SELECT name FROM secrets ORDER BY name")?;
        let names = statement
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    /// Creates a table (idempotent): opens its database.
    pub fn create_table(&self, name: &str) -> Result<(), EngineError> {
        if self.tables.read().expect("tables lock").contains_key(name) {
            return Ok(());
        }
        // DynamoDB's characters (it also wants 3 characters at least; tests use shorter
        // names): the name is a file name on disk.
        if name.is_empty()
            || name.len() > 255
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(EngineError::Invalid(format!(
                "table name {name:?}: up to 255 letters, digits, '_', '-' or '.'"
            )));
        }
        if let Storage::File(path) = &self.storage {
            let dir = tables_dir(path);
            std::fs::create_dir_all(&dir).map_err(|e| {
                EngineError::Invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = connect(&self.storage, Some(name))?;
        conn.execute_batch(TABLE_SCHEMA)?;
        self.tables
            .write()
            .expect("tables lock")
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(conn)));
        Ok(())
    }

    /// Deletes every item of a table (what deleting and re-creating a DynamoDB table does);
    /// returns how many were deleted.
    pub fn clear_table(&self, name: &str) -> Result<usize, EngineError> {
        let db = self.table_db(name)?;
        let db = lock(&db);
        Ok(db.prepare_cached("DELETE FROM items")?.execute([])?)
    }

    /// A table's database.
    pub(crate) fn table_db(&self, name: &str) -> Result<TableDb, EngineError> {
        self.tables
            .read()
            .expect("tables lock")
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::NotFound {
                kind: "table",
                name: name.to_string(),
            })
    }

    // ---- SNS ----

    /// Publishes to a topic: delivers to every subscription whose filter policy matches.
    /// Returns the SNS message id.
    pub fn publish(
        &self,
        topic: &str,
        body: &str,
        attributes: &BTreeMap<String, Attribute>,
    ) -> Result<String, EngineError> {
        let subs = self
            .config
            .read()
            .expect("config lock")
            .topics
            .get(name_of(topic))
            .cloned()
            .ok_or_else(|| EngineError::NotFound {
                kind: "topic",
                name: topic.to_string(),
            })?;
        check_size(body, attributes, "SNS")?;
        let message_id = random_uuid();
        // Every copy is built and checked first, then all are stored in one transaction:
        // one commit for the fan-out rather than one per queue.
        let mut copies = Vec::with_capacity(subs.len());
        for sub in subs {
            if let Some(policy) = &sub.filter_policy
                && !filter::matches(policy, sub.scope, attributes, body)
            {
                continue;
            }
            let q = self.queue(&sub.queue)?;
            if sub.raw {
                check_send(&q, body, attributes, None, None)?;
                copies.push((q, None, attributes.clone()));
            } else {
                let attrs: serde_json::Map<String, Value> = attributes
                    .iter()
                    .map(|(k, a)| (k.clone(), json!({"Type": a.data_type, "Value": a.value})))
                    .collect();
                let notification = json!({
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn(name_of(topic)),
                    "Message": body,
                    "Timestamp": self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "MessageAttributes": attrs,
                })
                .to_string();
                let none = BTreeMap::new();
                check_send(&q, &notification, &none, None, None)?;
                copies.push((q, Some(notification), none));
            }
        }
        if copies.is_empty() {
            return Ok(message_id);
        }
        let db = self.db();
        let tx = Tx::begin(&db)?;
        for (q, notification, attrs) in copies {
            self.store(
                &tx,
                &q,
                notification.as_deref().unwrap_or(body),
                attrs,
                None,
                None,
            )?;
        }
        tx.commit()?;
        drop(db);
        self.changed.notify_waiters();
        Ok(message_id)
    }

    // ---- SQS ----

    /// Sends a message. FIFO queues need a group id; a deduplication id (or, with
    /// content-based deduplication, the body's hash) seen in the last 5 minutes is dropped.
    pub fn send(
        &self,
        queue: &str,
        body: &str,
        attributes: BTreeMap<String, Attribute>,
        group_id: Option<&str>,
        dedup_id: Option<&str>,
    ) -> Result<String, EngineError> {
        let q = self.queue(queue)?;
        check_send(&q, body, &attributes, group_id, dedup_id)?;
        let id = self.store(&self.db(), &q, body, attributes, group_id, dedup_id)?;
        self.changed.notify_waiters();
        Ok(id)
    }

    /// Stores a message that [`check_send`] accepted (so that only SQLite can fail here).
    fn store(
        &self,
        db: &Connection,
        q: &QueueConfig,
        body: &str,
        attributes: BTreeMap<String, Attribute>,
        group_id: Option<&str>,
        dedup_id: Option<&str>,
    ) -> Result<String, EngineError> {
        let now = self.now_ms();
        let id = random_uuid();
        if let Some(journal) = self.journal.lock().expect("journal lock").as_mut() {
            let envelope_id = attributes.get("id").map(|a| a.value.clone());
            journal.push((q.name.clone(), envelope_id.unwrap_or_default()));
        }
        for tap in self.taps.read().expect("taps lock").iter() {
            tap(&q.name, body);
        }
        if q.fifo() {
            let group = group_id.expect("checked: a FIFO message has a group");
            let dedup = match dedup_id {
                Some(d) => d.to_string(),
                None => {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    body.hash(&mut h);
                    format!("{:x}", h.finish())
                }
            };
            db.prepare_cached("DELETE FROM fifo_dedup WHERE queue = ?1 AND until <= ?2")?
                .execute(params![q.name, now])?;
            let seen: Option<i64> = db
                .prepare_cached("SELECT until FROM fifo_dedup WHERE queue = ?1 AND dedup_id = ?2")?
                .query_row(params![q.name, dedup], |r| r.get(0))
                .optional()?;
            if seen.is_some() {
                return Ok(id);
            }
            db.prepare_cached(
                "INSERT INTO fifo_dedup (queue, dedup_id, until) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![q.name, dedup, now + DEDUP_MS])?;
            insert_message(db, &q.name, &id, body, &attributes, now, now, Some(group))?;
        } else {
            let copies = {
                let mut chaos = self.chaos.lock().expect("chaos lock");
                let max = chaos.duplicates;
                match (chaos.at_most, chaos.shuffle.as_mut()) {
                    (true, Some(rng)) => 1 + rand::Rng::random_range(rng, 0..=max),
                    _ => 1 + max,
                }
            };
            for copy in 0..copies {
                let copy_id = if copy == 0 { id.clone() } else { random_uuid() };
                let visible_at = now + i64::from(q.delay) * 1000;
                insert_message(
                    db,
                    &q.name,
                    &copy_id,
                    body,
                    &attributes,
                    now,
                    visible_at,
                    group_id,
                )?;
            }
        }
        Ok(id)
    }

    /// Receives up to `max` (1 to 10) visible messages, making them invisible for the visibility
    /// timeout (the queue's, or `visibility_timeout` seconds). Messages past their queue's
    /// `maxReceiveCount` move to its dead-letter queue instead.
    pub fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_timeout: Option<u32>,
    ) -> Result<Vec<Received>, EngineError> {
        if max == 0 || max > 10 {
            return Err(EngineError::Invalid(
                "MaxNumberOfMessages must be 1 to 10".into(),
            ));
        }
        let q = self.queue(queue)?;
        let vt = i64::from(visibility_timeout.unwrap_or(q.visibility_timeout)) * 1000;
        let now = self.now_ms();
        let db = self.db();
        let tx = Tx::begin(&db)?;
        let mut out = Vec::new();
        let mut moved = false;
        {
            let mut stmt = tx.prepare_cached("SELECT seq, id, body, attributes, sent_at, visible_at, receive_count, first_receive, group_id FROM messages WHERE queue = ?1 ORDER BY seq")?;
            let rows = stmt.query_map(params![q.name], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, u32>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })?;
            // Rows come lazily in send order (the (queue, seq) index) and the scan stops at
            // `max`: a receive reads the head of a backlog, not all of it. Only the
            // reordering chaos of the tests reads every row, to shuffle them.
            let shuffling = !q.fifo() && self.chaos.lock().expect("chaos lock").shuffle.is_some();
            let rows: Box<dyn Iterator<Item = rusqlite::Result<_>>> = if shuffling {
                use rand::seq::SliceRandom;
                let mut all: Vec<_> = rows.collect::<Result<_, _>>()?;
                if let Some(rng) = self.chaos.lock().expect("chaos lock").shuffle.as_mut() {
                    all.shuffle(rng);
                }
                Box::new(all.into_iter().map(Ok))
            } else {
                Box::new(rows)
            };
            let mut blocked_groups: HashSet<String> = HashSet::new();
            let mut picked = Vec::new();
            for row in rows {
                let row = row?;
                let (seq, _, _, _, _, visible_at, receive_count, _, ref group) = row;
                let visible = visible_at <= now;
                if q.fifo() {
                    let g = group.clone().unwrap_or_default();
                    if blocked_groups.contains(&g) {
                        continue;
                    }
                    if !visible {
                        blocked_groups.insert(g);
                        continue;
                    }
                } else if !visible {
                    continue;
                }
                if let Some(r) = &q.redrive
                    && receive_count >= r.max_receive_count
                {
                    picked.push((seq, row, true));
                    continue;
                }
                picked.push((seq, row, false));
                if picked.iter().filter(|(_, _, dead)| !dead).count() >= max {
                    break;
                }
            }
            drop(stmt);
            // Everything that can refuse is settled before the first write: the in-memory
            // store keeps no rollback journal.
            let dlq = match &q.redrive {
                Some(r) if picked.iter().any(|(_, _, dead)| *dead) => {
                    Some(self.queue(&r.dead_letter_queue)?)
                }
                _ => None,
            };
            for (
                seq,
                (_, id, body, attributes, sent_at, _, receive_count, first_receive, group),
                dead,
            ) in picked
            {
                if dead {
                    let dlq = dlq.as_ref().expect("dead implies a dead-letter queue");
                    // A moved message keeps its id and receive count, and goes to the back of the DLQ.
                    tx.prepare_cached("DELETE FROM messages WHERE seq = ?1")?
                        .execute(params![seq])?;
                    tx.prepare_cached("INSERT INTO messages (queue, id, body, attributes, sent_at, visible_at, receive_count, first_receive, group_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?.execute(params![dlq.name, id, body, attributes, sent_at, now, receive_count, first_receive, group],
                    )?;
                    moved = true;
                    continue;
                }
                // The handle names the row, so that deleting by it needs no index of handles
                // (one b-tree less to change at every receive and delete).
                let receipt = format!("{seq}.{}", random_uuid());
                let first = first_receive.unwrap_or(now);
                tx.prepare_cached("UPDATE messages SET receive_count = receive_count + 1, visible_at = ?1, receipt = ?2, first_receive = ?3 WHERE seq = ?4")?.execute(params![now + vt, receipt, first, seq])?;
                out.push(Received {
                    message_id: id,
                    receipt_handle: receipt,
                    body,
                    attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                    receive_count: receive_count + 1,
                    sent_at_ms: sent_at,
                    first_receive_ms: first,
                    group_id: group,
                });
            }
        }
        tx.commit()?;
        drop(db);
        if moved {
            self.changed.notify_waiters();
        }
        Ok(out)
    }

    /// Deletes a message by its latest receipt handle. Returns false when the handle is stale
    /// (the message was received again since) or the message is gone, as SQS silently does.
    pub fn delete(&self, queue: &str, receipt_handle: &str) -> Result<bool, EngineError> {
        Ok(self.delete_all(queue, [receipt_handle])? > 0)
    }

    /// Deletes several messages by their receipt handles in one transaction (what a poller
    /// does with the records a function processed): one commit for a batch rather than one
    /// per message. Returns how many were deleted; a stale or foreign handle deletes nothing,
    /// as in [`Engine::delete`].
    pub fn delete_all<'h>(
        &self,
        queue: &str,
        receipt_handles: impl IntoIterator<Item = &'h str>,
    ) -> Result<usize, EngineError> {
        let q = self.queue(queue)?;
        let db = self.db();
        let tx = Tx::begin(&db)?;
        let mut deleted = 0;
        {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM messages WHERE seq = ?1 AND queue = ?2 AND receipt = ?3",
            )?;
            for handle in receipt_handles {
                if let Some(seq) = seq_of(handle) {
                    deleted += stmt.execute(params![seq, q.name, handle])?;
                }
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// Changes how long a received message stays invisible, counted from now (0 makes it
    /// visible at once).
    pub fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<bool, EngineError> {
        let q = self.queue(queue)?;
        let at = self.now_ms() + i64::from(seconds) * 1000;
        let Some(seq) = seq_of(receipt_handle) else {
            return Ok(false);
        };
        let n = self
            .db()
            .prepare_cached(
                "UPDATE messages SET visible_at = ?1 WHERE seq = ?2 AND queue = ?3 AND receipt = ?4",
            )?
            .execute(params![at, seq, q.name, receipt_handle])?;
        if seconds == 0 {
            self.changed.notify_waiters();
        }
        Ok(n > 0)
    }

    /// Deletes every message of a queue.
    pub fn purge(&self, queue: &str) -> Result<(), EngineError> {
        let q = self.queue(queue)?;
        self.db()
            .prepare_cached("DELETE FROM messages WHERE queue = ?1")?
            .execute(params![q.name])?;
        Ok(())
    }

    /// Counts of a queue.
    pub fn stats(&self, queue: &str) -> Result<QueueStats, EngineError> {
        let q = self.queue(queue)?;
        let now = self.now_ms();
        let db = self.db();
        let (visible, in_flight, delayed, oldest): (i64, i64, i64, Option<i64>) = db
            .prepare_cached(
                "SELECT
               COALESCE(SUM(visible_at <= ?2), 0),
               COALESCE(SUM(visible_at > ?2 AND receive_count > 0), 0),
               COALESCE(SUM(visible_at > ?2 AND receive_count = 0), 0),
               MIN(sent_at)
             FROM messages WHERE queue = ?1",
            )?
            .query_row(params![q.name, now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        Ok(QueueStats {
            visible: visible as u64,
            in_flight: in_flight as u64,
            delayed: delayed as u64,
            oldest_age_ms: oldest.map(|o| (now - o).max(0)).unwrap_or(0),
        })
    }

    /// How many messages of `queue` can be received now, counting no further than `cap`:
    /// what a poller needs to know (is there a full batch?) without scanning a backlog.
    pub fn visible_up_to(&self, queue: &str, cap: usize) -> Result<usize, EngineError> {
        let q = self.queue(queue)?;
        let now = self.now_ms();
        let db = self.db();
        let n: i64 = db.prepare_cached("SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE queue = ?1 AND visible_at <= ?2 LIMIT ?3)")?.query_row(params![q.name, now, cap as i64],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// When the next invisible message of a queue becomes visible (epoch ms), if any.
    pub fn next_visible_ms(&self, queue: &str) -> Result<Option<i64>, EngineError> {
        let q = self.queue(queue)?;
        let now = self.now_ms();
        Ok(self
            .db()
            .prepare_cached(
                "SELECT MIN(visible_at) FROM messages WHERE queue = ?1 AND visible_at > ?2",
            )?
            .query_row(params![q.name, now], |r| r.get(0))?)
    }

    /// Every message of a queue, visible or not, without receiving it (for tests and tools).
    pub fn peek(&self, queue: &str) -> Result<Vec<Received>, EngineError> {
        let q = self.queue(queue)?;
        let db = self.db();
        let mut stmt = db.prepare_cached("SELECT id, body, attributes, sent_at, receive_count, first_receive, group_id FROM messages WHERE queue = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![q.name], |r| {
            Ok(Received {
                message_id: r.get(0)?,
                receipt_handle: String::new(),
                body: r.get(1)?,
                attributes: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                sent_at_ms: r.get(3)?,
                receive_count: r.get(4)?,
                first_receive_ms: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                group_id: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The row a receipt handle names (`<seq>.<random>`); `None` for a handle the engine did not
/// give out (it matches no message, as a stale one does not).
fn seq_of(receipt_handle: &str) -> Option<i64> {
    receipt_handle.split_once('.')?.0.parse().ok()
}

/// A transaction whose `BEGIN`, `COMMIT` and `ROLLBACK` are cached statements (rusqlite's
/// `Transaction` parses them at every use: a twentieth of the stack's CPU). Rolled back on
/// drop unless committed.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    done: bool,
}

impl<'c> Tx<'c> {
    /// Begins a (deferred) transaction.
    pub(crate) fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN")?.execute([])?;
        Ok(Tx { conn, done: false })
    }

    /// Commits it.
    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.done = true;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]))
        {
            tracing::error!(error = %e, "rolling back a store transaction failed");
        }
    }
}

/// Takes a database's lock. The engine checks everything that can refuse before its first
/// write, so a panic while holding the lock cannot leave a transaction half-written, and a
/// poisoned lock is taken as it is.
pub(crate) fn lock(db: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    db.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a file engine keeps its tables' files.
fn tables_dir(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bazaar".into());
    path.with_file_name(format!("{stem}.tables"))
}

/// Opens a database of `storage`, the queues' (`None`) or a table's, and sets it up.
fn connect(storage: &Storage, table: Option<&str>) -> Result<Connection, EngineError> {
    let conn = match storage {
        Storage::Memory => {
            // SQLite's `memdb` VFS rather than `:memory:`. With `:memory:` the page cache is
            // the database, and the commit of every write scanned it
            // (`pcache1TruncateUnsafe`, from `pager_end_transaction`): a third of the stack's
            // CPU once a run held a few thousand messages, growing with the data. On `memdb`
            // the pager works as for a file, and the saga ran twice as fast. A name without a
            // leading `/` is private to this connection. `memdb` caps a database at 1 GiB by
            // default; `:memory:` had no cap but the machine's memory, and a long soak run
            // may need more, so the cap is lifted.
            let name = table.unwrap_or("bazaar");
            let conn = Connection::open(format!("file:{name}?vfs=memdb"))?;
            let mut unlimited = i64::MAX;
            conn.file_control(
                rusqlite::DEFAULT_NAME,
                rusqlite::FileControl::SizeLimit(&mut unlimited),
            )?;
            // No rollback journal: copying every page into it before changing it was a tenth
            // of the stack's CPU, and nothing needs it: the engine settles everything that can
            // refuse (conditions, checks, the dead-letter queue) before a transaction's first
            // write, so a transaction that fails is one that wrote nothing. (SQLite itself
            // failing halfway, out of memory, would leave it half-done; the data is gone when
            // the process ends either way.)
            conn.pragma_update(None, "journal_mode", "OFF")?;
            conn.pragma_update(None, "synchronous", "OFF")?;
            conn
        }
        Storage::File(path) => {
            let conn = match table {
                None => Connection::open(path)?,
                Some(name) => Connection::open(tables_dir(path).join(format!("{name}.sqlite")))?,
            };
            configure_file(&conn)?;
            conn
        }
    };
    // Every statement the engine runs, prepared once: parsing SQL was a tenth of the local
    // stack's CPU when each call prepared its own.
    conn.set_prepared_statement_cache_capacity(64);
    // A fixed plan per statement: otherwise SQLite peeks at some bound values while planning
    // (a `LIMIT ?`, for one) and re-prepares the statement whenever they are bound again,
    // which undid the cache for most reads. The engine's plans do not depend on values.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

/// The settings of a durable file.
fn configure_file(conn: &Connection) -> Result<(), EngineError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoint every 20,000 pages (80 MiB of log) rather than SQLite's 1,000: the messages
    // table's indexes change with every send, receive and delete, so a checkpoint rewrote the
    // same hot pages over and over, and checkpoints (with their fsync) were an eighth of the
    // CPU. Saga on the file: 111 → 135 orders/s (100,000 pages gave 157, for a 400 MiB log).
    // The log is truncated back to that size after each checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", 20_000)?;
    conn.pragma_update(None, "journal_size_limit", 80 * 1024 * 1024)?;
    Ok(())
}

/// What SQS refuses in a send, checked before anything is stored.
fn check_send(
    q: &QueueConfig,
    body: &str,
    attributes: &BTreeMap<String, Attribute>,
    group_id: Option<&str>,
    dedup_id: Option<&str>,
) -> Result<(), EngineError> {
    check_size(body, attributes, "SQS")?;
    if body.is_empty() {
        return Err(EngineError::Invalid(
            "the message body must not be empty".into(),
        ));
    }
    if q.fifo() {
        if group_id.is_none() {
            return Err(EngineError::Invalid(format!(
                "{} is FIFO: MessageGroupId is required",
                q.name
            )));
        }
        if dedup_id.is_none() && !q.content_based_deduplication {
            return Err(EngineError::Invalid(format!(
                "{} needs a MessageDeduplicationId (no content-based deduplication)",
                q.name
            )));
        }
    }
    Ok(())
}

/// SNS and SQS count the body and every attribute's name, type and value against 256 KiB.
fn check_size(
    body: &str,
    attributes: &BTreeMap<String, Attribute>,
    service: &str,
) -> Result<(), EngineError> {
    let size = body.len()
        + attributes
            .iter()
            .map(|(k, a)| k.len() + a.data_type.len() + a.value.len())
            .sum::<usize>();
    if size > MAX_MESSAGE_BYTES {
        return Err(EngineError::Invalid(format!(
            "message is {size} bytes, over {service}'s 256 KiB"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_message(
    db: &Connection,
    queue: &str,
    id: &str,
    body: &str,
    attributes: &BTreeMap<String, Attribute>,
    sent_at: i64,
    visible_at: i64,
    group: Option<&str>,
) -> Result<(), EngineError> {
    let attrs =
        serde_json::to_string(attributes).map_err(|e| EngineError::Invalid(e.to_string()))?;
    db.prepare_cached("INSERT INTO messages (queue, id, body, attributes, sent_at, visible_at, group_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![queue, id, body, attrs, sent_at, visible_at, group])?;
    Ok(())
}
