//! The item model of Bazaar's tables and the semantics of conditions and updates.
//!
//! Every service table has the same key schema: a string partition key `pk` and a string sort
//! key `sk` (single-table design), and a numeric `ttl` attribute (epoch seconds) after which
//! DynamoDB may delete the item. Items are JSON objects: strings, numbers, booleans, null,
//! lists and maps map one to one onto DynamoDB's `S`, `N`, `BOOL`, `NULL`, `L` and `M`.
//!
//! The functions here ([`Condition::holds`], [`Update::apply`], [`SortKey::matches`]) restate
//! DynamoDB's rules once; the embedded store uses them and the conformance suite checks that
//! DynamoDB agrees.

use serde_json::{Map, Value};

/// An item: a JSON object holding at least `pk` and `sk`.
pub type Item = Map<String, Value>;

/// Name of the partition key attribute.
pub const PK: &str = "pk";
/// Name of the sort key attribute.
pub const SK: &str = "sk";
/// Name of the time-to-live attribute (epoch seconds).
pub const TTL: &str = "ttl";
/// DynamoDB's item size limit (400 KB, counting attribute names and values).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
}

impl Key {
    /// A key from its two parts.
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Key {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// The key of an item, if it has string `pk` and `sk`.
    pub fn of(item: &Item) -> Option<Key> {
        Some(Key::new(item.get(PK)?.as_str()?, item.get(SK)?.as_str()?))
    }
}

/// Builds an item from a key and attributes.
pub fn item(key: &Key, attributes: Value) -> Item {
    let mut map = match attributes {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.insert(PK.into(), Value::String(key.pk.clone()));
    map.insert(SK.into(), Value::String(key.sk.clone()));
    map
}

/// The approximate stored size of an item, as DynamoDB counts it (names plus values).
pub(crate) fn size_of(item: &Item) -> usize {
    fn value_size(v: &Value) -> usize {
        match v {
            Value::Null | Value::Bool(_) => 1,
            Value::Number(n) => n.to_string().len().div_ceil(2) + 1,
            Value::String(s) => s.len(),
            Value::Array(a) => 3 + a.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
            Value::Object(m) => {
                3 + m
                    .iter()
                    .map(|(k, v)| 1 + k.len() + value_size(v))
                    .sum::<usize>()
            }
        }
    }
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// A condition on the current state of an item, checked atomically with a write.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The item exists.
    Exists,
    /// The item does not exist.
    NotExists,
    /// The attribute exists.
    AttributeExists(String),
    /// The attribute does not exist.
    AttributeNotExists(String),
    /// The attribute equals the value (a missing attribute equals nothing).
    Equals(String, Value),
    /// The attribute is a number at least this large (a missing attribute fails).
    AtLeast(String, i64),
    /// The attribute is a number strictly below this one (a missing attribute fails).
    LessThan(String, i64),
    /// All hold.
    And(Vec<Condition>),
    /// At least one holds.
    Or(Vec<Condition>),
}

impl Condition {
    /// Whether the condition holds for the current item (`None` when there is none).
    pub fn holds(&self, current: Option<&Item>) -> bool {
        let attr = |name: &str| current.and_then(|i| i.get(name));
        match self {
            Condition::Exists => current.is_some(),
            Condition::NotExists => current.is_none(),
            Condition::AttributeExists(n) => attr(n).is_some(),
            Condition::AttributeNotExists(n) => attr(n).is_none(),
            Condition::Equals(n, v) => attr(n).is_some_and(|a| values_equal(a, v)),
            Condition::AtLeast(n, x) => attr(n).and_then(number).is_some_and(|a| a >= *x as f64),
            Condition::LessThan(n, x) => attr(n).and_then(number).is_some_and(|a| a < *x as f64),
            Condition::And(cs) => cs.iter().all(|c| c.holds(current)),
            Condition::Or(cs) => cs.iter().any(|c| c.holds(current)),
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Equality as DynamoDB sees it: numbers compare by value (`1` equals `1.0`).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Changes to an item, applied atomically. Like DynamoDB's `UpdateItem`, an update of a
/// missing item creates it (guard with [`Condition::Exists`] when that is wrong).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Attributes to set.
    pub set: Vec<(String, Value)>,
    /// Numeric attributes to add to (a missing attribute counts as 0); negative to subtract.
    pub add: Vec<(String, i64)>,
    /// Attributes to remove.
    pub remove: Vec<String>,
}

impl Update {
    /// An empty update.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an attribute.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set.push((name.into(), value.into()));
        self
    }

    /// Adds to a numeric attribute.
    pub fn add(mut self, name: impl Into<String>, by: i64) -> Self {
        self.add.push((name.into(), by));
        self
    }

    /// Removes an attribute.
    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.remove.push(name.into());
        self
    }

    /// Names every attribute the update touches, for validation.
    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        self.set
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.add.iter().map(|(n, _)| n.as_str()))
            .chain(self.remove.iter().map(String::as_str))
    }

    /// DynamoDB's checks on an update: at least one change, and none to the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.attributes().any(|a| a == PK || a == SK) {
            return Err("an update cannot change the key attributes pk and sk".into());
        }
        if self.set.is_empty() && self.add.is_empty() && self.remove.is_empty() {
            return Err("an update needs at least one change".into());
        }
        Ok(())
    }

    /// Applies the update to the current item, returning the new one. Fails when an `add`
    /// targets a non-numeric attribute, or the update touches the key.
    pub fn apply(&self, key: &Key, current: Option<&Item>) -> Result<Item, String> {
        self.validate()?;
        let mut item = current.cloned().unwrap_or_else(|| item(key, Value::Null));
        for (name, value) in &self.set {
            item.insert(name.clone(), value.clone());
        }
        for (name, by) in &self.add {
            let now = match item.get(name) {
                None => 0,
                Some(Value::Number(n)) => n
                    .as_i64()
                    .ok_or_else(|| format!("attribute {name} is not an integer"))?,
                Some(_) => return Err(format!("attribute {name} is not a number")),
            };
            item.insert(name.clone(), Value::from(now + by));
        }
        for name in &self.remove {
            item.remove(name);
        }
        Ok(item)
    }
}

/// A condition on the sort key within one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// Every item of the partition.
    Any,
    /// Exactly this sort key.
    Eq(String),
    /// Sort keys starting with this prefix.
    BeginsWith(String),
    /// Sort keys between the two, both included.
    Between(String, String),
    /// Sort keys below this one.
    Lt(String),
    /// Sort keys at most this one.
    Le(String),
    /// Sort keys above this one.
    Gt(String),
    /// Sort keys at least this one.
    Ge(String),
}

impl SortKey {
    /// Whether a sort key satisfies the condition (byte-wise comparison, as DynamoDB does for
    /// strings).
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            SortKey::Any => true,
            SortKey::Eq(x) => sk == x,
            SortKey::BeginsWith(p) => sk.starts_with(p.as_str()),
            SortKey::Between(a, b) => sk >= a.as_str() && sk <= b.as_str(),
            SortKey::Lt(x) => sk < x.as_str(),
            SortKey::Le(x) => sk <= x.as_str(),
            SortKey::Gt(x) => sk > x.as_str(),
            SortKey::Ge(x) => sk >= x.as_str(),
        }
    }
}

/// A query of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The partition.
    pub pk: String,
    /// Which sort keys.
    pub sort_key: SortKey,
    /// At most this many items in the page (DynamoDB also stops at 1 MB).
    pub limit: Option<u32>,
    /// Ascending sort key order when true.
    pub forward: bool,
    /// Continue after this sort key (from [`Page::last_sk`]).
    pub start_after: Option<String>,
}

impl Query {
    /// Every item of a partition, ascending.
    pub fn partition(pk: impl Into<String>) -> Query {
        Query {
            pk: pk.into(),
            sort_key: SortKey::Any,
            limit: None,
            forward: true,
            start_after: None,
        }
    }

    /// Restricts the sort key.
    pub fn sort_key(mut self, sk: SortKey) -> Query {
        self.sort_key = sk;
        self
    }

    /// Limits the page size.
    pub fn limit(mut self, n: u32) -> Query {
        self.limit = Some(n);
        self
    }

    /// Continues after a sort key.
    pub fn start_after(mut self, sk: Option<String>) -> Query {
        self.start_after = sk;
        self
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The items, in sort key order.
    pub items: Vec<Item>,
    /// Set when more items may follow: pass it to [`Query::start_after`].
    pub last_sk: Option<String>,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Creates or replaces an item.
    Put {
        /// The whole new item.
        item: Item,
        /// Must hold for the current item.
        condition: Option<Condition>,
    },
    /// Changes an item.
    Update {
        /// Which item.
        key: Key,
        /// The changes.
        update: Update,
        /// Must hold for the current item.
        condition: Option<Condition>,
    },
    /// Deletes an item.
    Delete {
        /// Which item.
        key: Key,
        /// Must hold for the current item.
        condition: Option<Condition>,
    },
    /// Writes nothing but makes the transaction depend on a condition.
    Check {
        /// Which item.
        key: Key,
        /// Must hold for the current item.
        condition: Condition,
    },
}

impl Write {
    /// The key the write touches.
    pub fn key(&self) -> Option<Key> {
        match self {
            Write::Put { item, .. } => Key::of(item),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => {
                Some(key.clone())
            }
        }
    }

    /// The condition of the write, if any.
    pub fn condition(&self) -> Option<&Condition> {
        match self {
            Write::Put { condition, .. }
            | Write::Update { condition, .. }
            | Write::Delete { condition, .. } => condition.as_ref(),
            Write::Check { condition, .. } => Some(condition),
        }
    }
}

/// The attribute that carries a record's version for optimistic concurrency.
pub const VERSION: &str = "version";

/// Optimistic concurrency: the condition that a record is still the one read, by its numeric
/// `attribute`. `read` is the value read, `None` when there was no record; a record written
/// before it carried the attribute reads as 0. A write guarded by it fails (a typed conflict:
/// [`crate::ports::TableError::is_stale`]) when another writer got there first, and the unit
/// of work runs again on fresh reads.
pub fn unchanged_at(attribute: &str, read: Option<u64>) -> Condition {
    match read {
        None => Condition::NotExists,
        Some(0) => Condition::Or(vec![
            Condition::AttributeNotExists(attribute.into()),
            Condition::Equals(attribute.into(), Value::from(0u64)),
        ]),
        Some(v) => Condition::Equals(attribute.into(), Value::from(v)),
    }
}

/// [`unchanged_at`] on [`VERSION`].
pub fn unchanged(read: Option<u64>) -> Condition {
    unchanged_at(VERSION, read)
}

/// "Put if newer": the guard for replacing a record whose version is `stored` (`None`: there
/// is none) by one of version `incoming`, or `None` when the stored one is as new or newer and
/// the incoming one is to be dropped (messages arrive in any order).
pub fn newer(stored: Option<u64>, incoming: u64) -> Option<Condition> {
    match stored {
        Some(v) if v >= incoming => None,
        _ => Some(unchanged(stored)),
    }
}

/// Stores a serializable record under a key (its fields become the item's attributes).
pub fn record<T: serde::Serialize>(key: &Key, value: &T) -> Item {
    item(key, serde_json::to_value(value).unwrap_or(Value::Null))
}

/// Reads a record back from an item; the key attributes and unknown attributes are ignored.
/// An unreadable record is a bug (the service wrote it), never the caller's fault.
pub fn parse<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, crate::ports::HandlerError> {
    serde_json::from_value(Value::Object(item))
        .map_err(|e| crate::ports::HandlerError::bug(format!("stored record unreadable: {e}")))
}

impl From<(String, String)> for Key {
    fn from((pk, sk): (String, String)) -> Key {
        Key { pk, sk }
    }
}

/// DynamoDB's checks on an item written: non-empty string keys, at most 400 KB. Returns its key.
pub fn validate_item(item: &Item) -> Result<Key, String> {
    let key =
        Key::of(item).ok_or_else(|| format!("an item needs string attributes {PK} and {SK}"))?;
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err("key attributes must not be empty strings".into());
    }
    if size_of(item) > MAX_ITEM_BYTES {
        return Err(format!(
            "item size {} exceeds DynamoDB's 400 KB",
            size_of(item)
        ));
    }
    Ok(key)
}

/// DynamoDB's checks on a transaction: 1 to 100 writes, at most one per item, each valid.
pub fn validate_transaction(writes: &[Write]) -> Result<(), String> {
    let max = crate::ports::MAX_TRANSACTION_WRITES;
    if writes.is_empty() || writes.len() > max {
        return Err(format!(
            "a transaction takes 1 to {max} writes, got {}",
            writes.len()
        ));
    }
    let mut keys = std::collections::HashSet::new();
    for w in writes {
        let key = match w {
            Write::Put { item, .. } => validate_item(item)?,
            Write::Update { key, update, .. } => {
                update.validate()?;
                key.clone()
            }
            Write::Delete { key, .. } | Write::Check { key, .. } => key.clone(),
        };
        if !keys.insert(key) {
            return Err("a transaction cannot include two writes to the same item".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    #[test]
    fn a_guard_holds_only_for_the_version_read() {
        let at = |v: Option<u64>| {
            v.map(|v| item(&Key::new("p", "s"), serde_json::json!({ "version": v })))
        };
        let legacy = item(&Key::new("p", "s"), serde_json::json!({}));
        assert!(unchanged(None).holds(None));
        assert!(!unchanged(None).holds(at(Some(1)).as_ref()));
        assert!(unchanged(Some(0)).holds(Some(&legacy)));
        assert!(unchanged(Some(0)).holds(at(Some(0)).as_ref()));
        assert!(!unchanged(Some(0)).holds(at(Some(1)).as_ref()));
        assert!(unchanged(Some(3)).holds(at(Some(3)).as_ref()));
        assert!(!unchanged(Some(3)).holds(at(Some(4)).as_ref()));
        assert!(!unchanged(Some(3)).holds(None), "deleted meanwhile");
        assert_eq!(newer(Some(5), 5), None, "as new: dropped");
        assert_eq!(newer(Some(5), 4), None, "older: dropped");
        assert_eq!(newer(Some(5), 6), Some(unchanged(Some(5))));
        assert_eq!(newer(None, 1), Some(Condition::NotExists));
    }
}
