//! `bazaar migrate` on the local stack's store and on moto (started by `scripts/test`), with
//! identity's real migration (signing keys gain their public half): a dry run changes
//! nothing; a run killed half-way and resumed changes each item exactly once; a writer that
//! changes an item during the run loses nothing; the rate limit holds on the simulated clock;
//! the key set published is the same before and after (the function reads both shapes).

mod common;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use bazaar_aws::testing;
use bazaar_localstack::Stack;
use bazaar_platform::clock::Clock;
use bazaar_platform::item::{Condition, Item, Key, Page, Query, Update, Write, item};
use bazaar_platform::migrate::{Migration, Runner};
use bazaar_platform::ports::{ScanPage, Table, TableError};
use chrono::Duration;
use serde_json::json;

const KEYS: usize = 25;

/// What a table adapter did, seen from the outside: the migration's successful updates per
/// key; it can stop the run dead after some (a kill) or let a writer in before one.
#[derive(Default)]
struct Watch {
    updates: Mutex<BTreeMap<Key, u32>>,
    kill_after: Mutex<Option<usize>>,
    killed: tokio::sync::Notify,
    writer_before: Mutex<Option<Key>>,
}

struct Watched {
    inner: Arc<dyn Table>,
    watch: Arc<Watch>,
}

#[async_trait]
impl Table for Watched {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        self.inner.put(item, condition).await
    }
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        let killed = {
            let total: u32 = self.watch.updates.lock().unwrap().values().sum();
            self.watch
                .kill_after
                .lock()
                .unwrap()
                .is_some_and(|k| total as usize >= k)
        };
        if killed {
            self.watch.killed.notify_one();
            // The process is gone: nothing after this happens.
            std::future::pending::<()>().await;
        }
        let contested = {
            let mut w = self.watch.writer_before.lock().unwrap();
            if w.as_ref() == Some(key) {
                w.take()
            } else {
                None
            }
        };
        if contested.is_some() {
            // A function retires the key meanwhile, and tags it: a plain update of its own.
            self.inner
                .update(
                    key,
                    Update::new()
                        .set("active_until", 42)
                        .set("retired_by", "identity-api"),
                    None,
                )
                .await?;
        }
        let out = self.inner.update(key, update, condition).await?;
        *self
            .watch
            .updates
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default() += 1;
        Ok(out)
    }
    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError> {
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.inner.transact(writes).await
    }
    async fn scan(&self, start_after: Option<Key>, limit: usize) -> Result<ScanPage, TableError> {
        self.inner.scan(start_after, limit).await
    }
}

/// Every item of a table, by key.
async fn everything(t: &dyn Table) -> BTreeMap<Key, Item> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = t.scan(after, 50).await.unwrap();
        for i in page.items {
            out.insert(Key::of(&i).unwrap(), i);
        }
        match page.last_key {
            Some(k) => after = Some(k),
            None => return out,
        }
    }
}

/// `KEYS` signing keys stored as identity stored them before it kept the public half, and
/// two users (not the migration's).
async fn seed(table: &dyn Table) -> Vec<Key> {
    let key = bazaar_platform::jwt::SigningKey::generate("seed").unwrap();
    let pkcs8 = base64::engine::general_purpose::STANDARD.encode(key.to_pkcs8().unwrap());
    let mut keys = Vec::new();
    for i in 0..KEYS {
        let kid = format!("k-old-{i:02}");
        let k = Key::new("KEY", kid.as_str());
        table
            .put(
                item(
                    &k,
                    json!({ "kid": kid, "pkcs8": pkcs8, "created": 1_700_000_000 + i as i64,
                            "active_until": 4_102_444_800_i64 }),
                ),
                None,
            )
            .await
            .unwrap();
        keys.push(k);
    }
    for name in ["ada", "bob"] {
        table
            .put(
                item(
                    &Key::new(format!("USER#{name}"), "PROFILE"),
                    json!({ "username": name, "password_hash": "x", "roles": [] }),
                ),
                None,
            )
            .await
            .unwrap();
    }
    keys
}

struct World {
    table: Arc<dyn Table>,
    ops: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl World {
    fn runner(&self, table: Arc<dyn Table>, rate: f64) -> Runner {
        Runner {
            table,
            checkpoints: self.ops.clone(),
            clock: self.clock.clone(),
            units_per_second: rate,
            page: 10,
        }
    }
}

async fn migrations_run_once_lose_nothing_and_keep_their_rate(w: World) {
    let m = identity_api::migrations::KeyPublicHalf;
    // The stack has installed its development key already, in the new shape.
    let ttl = Duration::minutes(15);
    let current = identity_api::published_keys(w.table.as_ref(), w.clock.now(), ttl)
        .await
        .unwrap()
        .keys
        .len();
    let keys = seed(w.table.as_ref()).await;
    let published = identity_api::published_keys(w.table.as_ref(), w.clock.now(), ttl)
        .await
        .unwrap();
    assert_eq!(
        published.keys.len(),
        current + KEYS,
        "the old shape is published too (parsed)"
    );

    // A dry run changes nothing.
    let before = everything(w.table.as_ref()).await;
    let plan = w.runner(w.table.clone(), 1000.0).plan(&m).await.unwrap();
    assert_eq!(plan.to_change, KEYS as u64);
    assert_eq!(plan.scanned, before.len() as u64);
    assert_eq!(plan.samples.len(), 3);
    assert!(plan.samples.iter().all(|(_, u)| u.set[0].0 == "public"));
    assert_eq!(
        everything(w.table.as_ref()).await,
        before,
        "the dry run changed nothing"
    );
    let shown = bazaar_toolbelt::migrate::render_plan(&m, &plan);
    eprint!("{shown}");
    assert!(shown.contains(&format!("{KEYS} would change")), "{shown}");

    // Killed after 13 changes: the checkpoint holds the first page (10) only.
    let watch = Arc::new(Watch::default());
    *watch.kill_after.lock().unwrap() = Some(13);
    let watched: Arc<dyn Table> = Arc::new(Watched {
        inner: w.table.clone(),
        watch: watch.clone(),
    });
    let first = w.runner(watched.clone(), 1000.0);
    tokio::select! {
        r = first.apply(&m, false, |_| {}) => panic!("the run was to be killed, it ended: {r:?}"),
        _ = watch.killed.notified() => {}
    }
    let stopped = first.checkpoint(m.id()).await.unwrap().unwrap();
    assert!(!stopped.done);
    assert_eq!(
        stopped.changed, 10,
        "the checkpoint is the last page done: {stopped:?}"
    );

    // Resumed, with a function writing one of the items still to do.
    *watch.kill_after.lock().unwrap() = None;
    let contested = keys[KEYS - 1].clone();
    *watch.writer_before.lock().unwrap() = Some(contested.clone());
    let started = w.clock.now();
    let rate = 20.0;
    let clock = w.clock.clone();
    let done = w
        .runner(watched, rate)
        .apply(&m, false, |c| {
            eprintln!(
                "{}",
                bazaar_toolbelt::migrate::progress_line(c, clock.now(), rate)
            )
        })
        .await
        .unwrap();
    assert!(done.done && done.failed == 0, "{done:?}");
    assert!(
        done.retried >= 1,
        "the writer's change made one retry: {done:?}"
    );

    let updates = watch.updates.lock().unwrap().clone();
    for k in &keys {
        assert_eq!(
            updates.get(k),
            Some(&1),
            "{k:?} changed exactly once: {updates:?}"
        );
    }
    assert_eq!(updates.len(), KEYS, "and nothing else");
    let after = everything(w.table.as_ref()).await;
    for k in &keys {
        assert!(after[k].contains_key("public"), "{k:?} migrated");
    }
    let kept = &after[&contested];
    assert_eq!(
        (kept.get("active_until"), kept.get("retired_by")),
        (Some(&json!(42)), Some(&json!("identity-api"))),
        "the writer's update is kept"
    );
    for user in after.keys().filter(|k| k.pk.starts_with("USER#")) {
        assert_eq!(after[user], before[user], "other items untouched");
    }

    // Within the rate, on the simulated clock: the resumed run's units took their time.
    let took = (w.clock.now() - started).num_milliseconds() as f64 / 1000.0;
    let resumed_units = done.units - stopped.units;
    assert!(
        took + 0.001 >= resumed_units / rate,
        "{resumed_units:.1} units at {rate}/s took {took:.2} s"
    );

    // Both shapes publish the same keys (the contested one is retired, so one fewer).
    let now_published = identity_api::published_keys(w.table.as_ref(), w.clock.now(), ttl)
        .await
        .unwrap();
    let mut expected = published.keys.clone();
    expected.retain(|k| k.kid != contested.sk);
    assert_eq!(now_published.keys, expected);

    // Run again: done, nothing changes.
    let again = w
        .runner(w.table.clone(), rate)
        .apply(&m, false, |_| {})
        .await
        .unwrap();
    assert_eq!(again, done);
    let restarted = w
        .runner(w.table.clone(), rate)
        .apply(&m, true, |_| {})
        .await
        .unwrap();
    assert_eq!(restarted.changed, 0, "every item already has the new shape");
    assert_eq!(everything(w.table.as_ref()).await, after);
}

#[tokio::test]
async fn migrations_on_the_local_stack() {
    let model = common::model(None);
    let stack = Stack::build(model.clone(), common::options()).unwrap();
    let engine = stack.engine().clone();
    let table = |logical: &str| -> Arc<dyn Table> {
        Arc::new(bazaar_embedded::EmbeddedTable::new(
            engine.clone(),
            model.tables[logical].clone(),
        ))
    };
    migrations_run_once_lose_nothing_and_keep_their_rate(World {
        table: table("IdentityTable"),
        ops: table("OpsTable"),
        clock: engine.clock().clone(),
    })
    .await;
}

#[tokio::test]
async fn migrations_on_aws_apis() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let model = common::model(Some(testing::unique("mig")));
    let stack = Stack::build_on_aws(model.clone(), common::options(), config.clone(), true)
        .await
        .unwrap();
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = |logical: &str| -> Arc<dyn Table> {
        Arc::new(bazaar_aws::DynamoTable::new(
            client.clone(),
            model.tables[logical].clone(),
        ))
    };
    migrations_run_once_lose_nothing_and_keep_their_rate(World {
        table: table("IdentityTable"),
        ops: table("OpsTable"),
        clock: stack.engine().clock().clone(),
    })
    .await;
}
