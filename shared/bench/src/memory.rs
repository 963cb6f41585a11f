//! Ports kept in plain memory, for measuring the platform's own cost: no SQLite, no network.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use bazaar_platform::item::{Condition, Item, Key, Page, Query, Update, Write};
use bazaar_platform::ports::{
    DeadLetter, DeadLetters, Encoded, PublishError, Publisher, Table, TableError, WriteFailure,
    attributes_for_publish,
};

/// A table laid out as DynamoDB lays one out: partitions found by hashing their key, items
/// ordered by sort key within a partition; with DynamoDB's conditions and all-or-nothing
/// transactions. A write moves its item in rather than copying it: the table is a stand-in
/// for a store across the network, and what the benchmark measures is the platform's work
/// around it, not a copy the real store never makes in this process.
#[derive(Default)]
pub struct MemoryTable {
    partitions: Mutex<HashMap<String, BTreeMap<String, Item>>>,
}

type Partitions = HashMap<String, BTreeMap<String, Item>>;

impl MemoryTable {
    /// How many items the table holds.
    pub fn len(&self) -> usize {
        self.partitions
            .lock()
            .expect("table lock")
            .values()
            .map(BTreeMap::len)
            .sum()
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the item at `key`, whatever it holds: what a benchmark calls between its
    /// measured runs to keep the table at the size of a warm function's working set.
    pub fn forget(&self, key: &Key) {
        remove(&mut self.partitions.lock().expect("table lock"), key);
    }
}

fn current<'a>(partitions: &'a Partitions, key: &Key) -> Option<&'a Item> {
    partitions.get(&key.pk).and_then(|p| p.get(&key.sk))
}

fn insert(partitions: &mut Partitions, key: Key, item: Item) {
    partitions.entry(key.pk).or_default().insert(key.sk, item);
}

fn remove(partitions: &mut Partitions, key: &Key) {
    if let Some(p) = partitions.get_mut(&key.pk) {
        p.remove(&key.sk);
        if p.is_empty() {
            partitions.remove(&key.pk);
        }
    }
}

fn key_of(item: &Item) -> Result<Key, TableError> {
    Key::of(item).ok_or_else(|| TableError::Invalid("an item without pk and sk".into()))
}

fn check(condition: Option<&Condition>, current: Option<&Item>) -> Result<(), TableError> {
    if condition.is_some_and(|c| !c.holds(current)) {
        Err(TableError::ConditionFailed)
    } else {
        Ok(())
    }
}

/// What a write does to its item, once its condition held.
enum Effect {
    /// The item becomes this.
    Set(Item),
    /// The item goes.
    Remove,
    /// Nothing changes (a condition check).
    Keep,
}

/// The effect `write` has on `current` (Err: its condition failed).
fn after(write: Write, current: Option<&Item>) -> Result<Effect, TableError> {
    match write {
        Write::Put { item, condition } => {
            check(condition.as_ref(), current)?;
            Ok(Effect::Set(item))
        }
        Write::Update {
            key,
            update,
            condition,
        } => {
            check(condition.as_ref(), current)?;
            update
                .apply(&key, current)
                .map(Effect::Set)
                .map_err(TableError::Invalid)
        }
        Write::Delete { condition, .. } => {
            check(condition.as_ref(), current)?;
            Ok(Effect::Remove)
        }
        Write::Check { condition, .. } => {
            check(Some(&condition), current)?;
            Ok(Effect::Keep)
        }
    }
}

#[async_trait]
impl Table for MemoryTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let partitions = self.partitions.lock().expect("table lock");
        Ok(current(&partitions, key).cloned())
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let key = key_of(&item)?;
        let mut partitions = self.partitions.lock().expect("table lock");
        check(condition.as_ref(), current(&partitions, &key))?;
        insert(&mut partitions, key, item);
        Ok(())
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        let mut partitions = self.partitions.lock().expect("table lock");
        let old = current(&partitions, key);
        check(condition.as_ref(), old)?;
        let new = update.apply(key, old).map_err(TableError::Invalid)?;
        insert(&mut partitions, key.clone(), new.clone());
        Ok(new)
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError> {
        let mut partitions = self.partitions.lock().expect("table lock");
        check(condition.as_ref(), current(&partitions, key))?;
        remove(&mut partitions, key);
        Ok(())
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let partitions = self.partitions.lock().expect("table lock");
        let mut found: Vec<Item> = partitions
            .get(&query.pk)
            .into_iter()
            .flat_map(|p| p.iter())
            .filter(|(sk, _)| query.sort_key.matches(sk))
            .filter(|(sk, _)| match &query.start_after {
                Some(after) if query.forward => sk.as_str() > after.as_str(),
                Some(after) => sk.as_str() < after.as_str(),
                None => true,
            })
            .map(|(_, v)| v.clone())
            .collect();
        if !query.forward {
            found.reverse();
        }
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        let more = found.len() > limit;
        found.truncate(limit);
        let last_sk = more
            .then(|| found.last().and_then(Key::of).map(|k| k.sk))
            .flatten();
        Ok(Page {
            items: found,
            last_sk,
        })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        let mut partitions = self.partitions.lock().expect("table lock");
        let mut effects = Vec::with_capacity(writes.len());
        let mut reasons = Vec::with_capacity(writes.len());
        for write in writes {
            let key = write
                .key()
                .ok_or_else(|| TableError::Invalid("a write without a key".into()))?;
            match after(write, current(&partitions, &key)) {
                Ok(effect) => {
                    reasons.push(WriteFailure::None);
                    effects.push((key, effect));
                }
                Err(_) => reasons.push(WriteFailure::ConditionFailed),
            }
        }
        if reasons.iter().any(|r| *r != WriteFailure::None) {
            return Err(TableError::TransactionCanceled { reasons });
        }
        for (key, effect) in effects {
            match effect {
                Effect::Set(item) => insert(&mut partitions, key, item),
                Effect::Remove => remove(&mut partitions, &key),
                Effect::Keep => {}
            }
        }
        Ok(())
    }
}

/// A publisher that encodes each envelope as the SNS adapter would (body and attributes)
/// and keeps only a count: the cost of a publish request without the network.
#[derive(Default)]
pub struct EncodingPublisher {
    published: Mutex<usize>,
}

impl EncodingPublisher {
    /// Envelopes published so far.
    pub fn count(&self) -> usize {
        *self.published.lock().expect("publisher lock")
    }
}

#[async_trait]
impl Publisher for EncodingPublisher {
    async fn publish_encoded(&self, messages: &Encoded<'_>) -> Result<(), PublishError> {
        for (envelope, text) in messages.iter() {
            std::hint::black_box(attributes_for_publish(envelope, text)?);
        }
        *self.published.lock().expect("publisher lock") += messages.len();
        Ok(())
    }
}

/// A DLQ that refuses: a benchmark whose messages are parked measures the wrong thing.
pub struct NoDeadLetters;

#[async_trait]
impl DeadLetters for NoDeadLetters {
    async fn park(&self, letter: DeadLetter) -> Result<(), PublishError> {
        Err(PublishError::UnknownTopic(format!(
            "a benchmark message was parked: {letter:?}"
        )))
    }
}
