//! Dependency faults for the local stack, seeded so that a failing run can be replayed: a
//! table that throttles and whose transactions conflict, a topic service that fails (whole
//! or half-way through a batch), and clocks that disagree between functions. Each wraps a
//! function's real port ([`Chaos::wrap`]); the platform must turn every one of them into a
//! retry with no lost and no duplicated effect.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bazaar_platform::Deps;
use bazaar_platform::clock::Clock;
use bazaar_platform::item::{Condition, Item, Key, Page, Query, Update, Write};
use bazaar_platform::ports::{Encoded, PublishError, Publisher, Table, TableError, WriteFailure};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What goes wrong, and how often.
#[derive(Debug, Clone)]
pub struct Chaos {
    /// The seed of every random choice.
    pub seed: u64,
    /// Probability that a table call is throttled.
    pub throttle: f64,
    /// Probability that a transaction is cancelled by a conflicting one.
    pub conflict: f64,
    /// Probability that a publish fails (half the time after publishing part of the batch).
    pub publish_failure: f64,
    /// Each function's clock is off by up to this much, either way (fixed per function).
    pub max_skew: Duration,
    /// The functions affected (all when empty).
    pub functions: Vec<String>,
    /// What was injected so far (shared by every function's wrappers), and the switch that
    /// turns injection off while a test sets up its data.
    pub injected: Arc<Injected>,
}

/// Counts of injected faults.
#[derive(Debug, Default)]
pub struct Injected {
    /// Table calls throttled.
    pub throttled: AtomicUsize,
    /// Transactions cancelled as conflicting.
    pub conflicts: AtomicUsize,
    /// Publishes failed (whole or half-way).
    pub publish_failures: AtomicUsize,
    /// Off: nothing is injected (and nothing drawn from the seeded streams).
    disarmed: AtomicBool,
}

impl Injected {
    /// Turns injection on or off (on from the start).
    pub fn arm(&self, on: bool) {
        self.disarmed.store(!on, Ordering::Relaxed);
    }

    fn armed(&self) -> bool {
        !self.disarmed.load(Ordering::Relaxed)
    }

    /// (throttled, conflicts, publish failures) so far.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.throttled.load(Ordering::Relaxed),
            self.conflicts.load(Ordering::Relaxed),
            self.publish_failures.load(Ordering::Relaxed),
        )
    }
}

impl Chaos {
    /// Nothing goes wrong.
    pub fn none(seed: u64) -> Self {
        Chaos {
            seed,
            throttle: 0.0,
            conflict: 0.0,
            publish_failure: 0.0,
            max_skew: Duration::zero(),
            functions: Vec::new(),
            injected: Arc::default(),
        }
    }

    /// Wraps `deps`' table, publisher and clock when `deps.function` is affected.
    pub fn wrap(&self, deps: &mut Deps) {
        if !self.functions.is_empty() && !self.functions.contains(&deps.function) {
            return;
        }
        // One stream per function, so that one function's calls do not shift another's faults.
        let salt = deps.function.bytes().fold(self.seed, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
        let rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(salt)));
        let faulty = |inner: Arc<dyn bazaar_platform::ports::Table>| -> Arc<dyn bazaar_platform::ports::Table> {
            Arc::new(FaultyTable {
                inner,
                injected: self.injected.clone(),
                rng: rng.clone(),
                throttle: self.throttle,
                conflict: self.conflict,
            })
        };
        if let Some(table) = deps.table.take() {
            deps.table = Some(faulty(table));
        }
        // The shared tables (the sku registry) throttle and conflict too.
        for table in deps.tables.values_mut() {
            *table = faulty(table.clone());
        }
        deps.publisher = Arc::new(FaultyPublisher {
            inner: deps.publisher.clone(),
            injected: self.injected.clone(),
            rng: rng.clone(),
            rate: self.publish_failure,
        });
        let max = self.max_skew.num_milliseconds();
        if max > 0 {
            let skew = rng.lock().expect("chaos lock").random_range(-max..=max);
            deps.clock = Arc::new(SkewedClock {
                inner: deps.clock.clone(),
                skew: Duration::milliseconds(skew),
            });
        }
    }
}

fn roll(rng: &Mutex<SmallRng>, p: f64) -> bool {
    p > 0.0 && rng.lock().expect("chaos lock").random_bool(p)
}

/// A table that is sometimes throttled and whose transactions sometimes conflict.
struct FaultyTable {
    inner: Arc<dyn Table>,
    injected: Arc<Injected>,
    rng: Arc<Mutex<SmallRng>>,
    throttle: f64,
    conflict: f64,
}

impl FaultyTable {
    fn check(&self) -> Result<(), TableError> {
        if self.injected.armed() && roll(&self.rng, self.throttle) {
            self.injected.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(TableError::Throttled);
        }
        Ok(())
    }
}

#[async_trait]
impl Table for FaultyTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        self.check()?;
        self.inner.put(item, condition).await
    }
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        self.check()?;
        self.inner.update(key, update, condition).await
    }
    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError> {
        self.check()?;
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        self.check()?;
        self.inner.query(query).await
    }
    async fn scan(
        &self,
        start_after: Option<Key>,
        limit: usize,
    ) -> Result<bazaar_platform::ports::ScanPage, TableError> {
        self.check()?;
        self.inner.scan(start_after, limit).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.check()?;
        if self.injected.armed() && roll(&self.rng, self.conflict) {
            self.injected.conflicts.fetch_add(1, Ordering::Relaxed);
            // As DynamoDB reports it: the conflicting write named, the others `None`.
            let at = self
                .rng
                .lock()
                .expect("chaos lock")
                .random_range(0..writes.len().max(1));
            let reasons = (0..writes.len())
                .map(|i| {
                    if i == at {
                        WriteFailure::Conflict
                    } else {
                        WriteFailure::None
                    }
                })
                .collect();
            return Err(TableError::TransactionCanceled { reasons });
        }
        self.inner.transact(writes).await
    }
}

/// A topic service that sometimes fails, sometimes after publishing part of a batch.
struct FaultyPublisher {
    inner: Arc<dyn Publisher>,
    injected: Arc<Injected>,
    rng: Arc<Mutex<SmallRng>>,
    rate: f64,
}

#[async_trait]
impl Publisher for FaultyPublisher {
    async fn publish_encoded(&self, messages: &Encoded<'_>) -> Result<(), PublishError> {
        if !(self.injected.armed() && roll(&self.rng, self.rate)) {
            return self.inner.publish_encoded(messages).await;
        }
        self.injected
            .publish_failures
            .fetch_add(1, Ordering::Relaxed);
        let partly = messages.len() > 1 && roll(&self.rng, 0.5);
        if partly {
            let half = messages.len() / 2;
            self.inner
                .publish_encoded(&messages.split_at(half).0)
                .await?;
            return Err(PublishError::Partial {
                failed: messages.len() - half,
                total: messages.len(),
            });
        }
        Err(PublishError::Unavailable(
            "injected: SNS unavailable".into(),
        ))
    }
}

/// A clock off by a fixed amount.
struct SkewedClock {
    inner: Arc<dyn Clock>,
    skew: Duration,
}

impl Clock for SkewedClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + self.skew
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> bazaar_platform::clock::Wait<'_> {
        self.inner.sleep_until(at - self.skew)
    }
}
