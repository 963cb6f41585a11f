//! Ports kept in plain memory, for measuring the platform's own cost: no SQLite, no network.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bazaar_platform::item::{Condition, Item, Key, Page, Query, Update, Write};
use bazaar_platform::ports::{
    DeadLetter, DeadLetters, Encoded, PublishError, Publisher, Table, TableError, WriteFailure,
    attributes_for_publish,
};

/// A table in a `BTreeMap`, with DynamoDB's conditions and all-or-nothing transactions.
#[derive(Default)]
pub struct MemoryTable {
    items: Mutex<BTreeMap<Key, Item>>,
}

impl MemoryTable {
    /// How many items the table holds.
    pub fn len(&self) -> usize {
        self.items.lock().expect("table lock").len()
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key_of(item: &Item) -> Result<Key, TableError> {
    Key::of(item).ok_or_else(|| TableError::Invalid("an item without pk and sk".into()))
}

/// The item `write` leaves (None: deleted; Err: its condition failed).
fn after(write: &Write, current: Option<&Item>) -> Result<Option<Item>, TableError> {
    let check = |c: Option<&Condition>| {
        if c.is_some_and(|c| !c.holds(current)) {
            Err(TableError::ConditionFailed)
        } else {
            Ok(())
        }
    };
    match write {
        Write::Put { item, condition } => {
            check(condition.as_ref())?;
            Ok(Some(item.clone()))
        }
        Write::Update {
            key,
            update,
            condition,
        } => {
            check(condition.as_ref())?;
            update
                .apply(key, current)
                .map(Some)
                .map_err(TableError::Invalid)
        }
        Write::Delete { condition, .. } => {
            check(condition.as_ref())?;
            Ok(None)
        }
        Write::Check { condition, .. } => {
            check(Some(condition))?;
            Ok(current.cloned())
        }
    }
}

#[async_trait]
impl Table for MemoryTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        Ok(self.items.lock().expect("table lock").get(key).cloned())
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let key = key_of(&item)?;
        let mut items = self.items.lock().expect("table lock");
        let new = after(&Write::Put { item, condition }, items.get(&key))?;
        items.insert(key, new.expect("a put leaves an item"));
        Ok(())
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        let mut items = self.items.lock().expect("table lock");
        let write = Write::Update {
            key: key.clone(),
            update,
            condition,
        };
        let new = after(&write, items.get(key))?.expect("an update leaves an item");
        items.insert(key.clone(), new.clone());
        Ok(new)
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError> {
        let mut items = self.items.lock().expect("table lock");
        let write = Write::Delete {
            key: key.clone(),
            condition,
        };
        after(&write, items.get(key))?;
        items.remove(key);
        Ok(())
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let items = self.items.lock().expect("table lock");
        let mut found: Vec<Item> = items
            .range(Key::new(&query.pk, "")..)
            .take_while(|(k, _)| k.pk == query.pk)
            .filter(|(k, _)| query.sort_key.matches(&k.sk))
            .filter(|(k, _)| match &query.start_after {
                Some(after) if query.forward => k.sk.as_str() > after.as_str(),
                Some(after) => k.sk.as_str() < after.as_str(),
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
        let mut items = self.items.lock().expect("table lock");
        let mut results = Vec::with_capacity(writes.len());
        let mut reasons = Vec::with_capacity(writes.len());
        for write in &writes {
            let key = write
                .key()
                .ok_or_else(|| TableError::Invalid("a write without a key".into()))?;
            match after(write, items.get(&key)) {
                Ok(new) => {
                    reasons.push(WriteFailure::None);
                    results.push((key, new, matches!(write, Write::Check { .. })));
                }
                Err(_) => reasons.push(WriteFailure::ConditionFailed),
            }
        }
        if reasons.iter().any(|r| *r != WriteFailure::None) {
            return Err(TableError::TransactionCanceled { reasons });
        }
        for (key, new, check_only) in results {
            match (new, check_only) {
                (_, true) => {}
                (Some(item), false) => {
                    items.insert(key, item);
                }
                (None, false) => {
                    items.remove(&key);
                }
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
