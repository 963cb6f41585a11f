//! The table port on DynamoDB.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update as DynamoUpdate,
};
use bazaar_platform::item::{
    Condition, Item, Key, PK, Page, Query, SK, SortKey, Update, Write, validate_item,
    validate_transaction,
};
use bazaar_platform::ports::{Table, TableError, WriteFailure};
use serde_json::{Map, Number, Value};

use crate::usage::{Usage, read_units, write_units};

/// A service table on DynamoDB (key schema `pk` + `sk`, both strings).
#[derive(Clone, Debug)]
pub struct DynamoTable {
    client: Client,
    name: String,
    /// Where the capacity units of each call are recorded, and for which function.
    usage: Option<(Arc<Usage>, String)>,
}

impl DynamoTable {
    /// The table `name`, reached through `client`.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        DynamoTable {
            client,
            name: name.into(),
            usage: None,
        }
    }

    /// Records the capacity units of every call in `usage`, as `function`'s (see
    /// [`crate::usage`] for how they are computed).
    pub fn counted(mut self, usage: Arc<Usage>, function: &str) -> Self {
        self.usage = Some((usage, function.to_string()));
        self
    }

    fn charge(&self, read: f64, write: f64) {
        if let Some((usage, function)) = &self.usage {
            usage.units(function, read, write);
        }
    }

    /// The size last seen of the item at `key` (0 when not counted or never seen).
    fn seen(&self, key: &Key) -> usize {
        self.usage.as_ref().map_or(0, |(usage, _)| {
            usage.size_seen(&self.name, &key.pk, &key.sk)
        })
    }

    /// Remembers the size of the item at `key` (`None`: gone), when counted.
    fn see(&self, key: &Key, size: Option<usize>) {
        if let Some((usage, _)) = &self.usage {
            usage.saw(&self.name, &key.pk, &key.sk, size);
        }
    }

    /// Remembers the size of each of `items` as read, when counted.
    fn see_items(&self, items: &[HashMap<String, AttributeValue>]) {
        if self.usage.is_none() {
            return;
        }
        for item in items {
            let s = |n: &str| item.get(n).and_then(|v| v.as_s().ok());
            if let (Some(pk), Some(sk)) = (s(PK), s(SK)) {
                self.see(&Key::new(pk.as_str(), sk.as_str()), Some(item_size(item)));
            }
        }
    }
}

/// The size DynamoDB bills for an attribute value: strings and binaries by their bytes,
/// numbers by about one byte per two digits plus one, lists and maps 3 bytes plus one per
/// element plus their elements (and a map's names).
pub fn attribute_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + attribute_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + attribute_size(e))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(n) => n.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(b) => b.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// The size DynamoDB bills for an item: each attribute's name and value.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + attribute_size(v)).sum()
}

/// The size the adapter knows of an item an expression changes: its key and the values
/// written (a lower bound of the item's size).
fn known_size(key: &Key, values: &Option<HashMap<String, AttributeValue>>) -> usize {
    item_size(&key_of(key))
        + values
            .iter()
            .flat_map(|v| v.values())
            .map(attribute_size)
            .sum::<usize>()
}

/// JSON to DynamoDB: strings, numbers, booleans, null, lists and maps.
pub fn to_attribute(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attribute).collect()),
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

/// DynamoDB to JSON. Sets and binaries, which Bazaar never writes, read as lists and base64.
pub fn from_attribute(a: &AttributeValue) -> Value {
    match a {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(n) => parse_number(n),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(l) => Value::Array(l.iter().map(from_attribute).collect()),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), from_attribute(v)))
                .collect(),
        ),
        AttributeValue::Ss(s) => Value::Array(s.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(n) => Value::Array(n.iter().map(|n| parse_number(n)).collect()),
        other => Value::String(format!("{other:?}")),
    }
}

fn parse_number(n: &str) -> Value {
    if let Ok(i) = n.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = n.parse::<u64>() {
        return Value::Number(u.into());
    }
    n.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(n.to_string()))
}

fn to_item(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter()
        .map(|(k, v)| (k.clone(), to_attribute(v)))
        .collect()
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), from_attribute(v)))
        .collect::<Map<_, _>>()
}

fn key_of(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(key.pk.clone())),
        (SK.to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

/// Placeholders of one expression: `#nN` for names and `:vN` for values, so that any
/// attribute name (reserved words included) is safe.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, attribute: &str) -> String {
        if let Some((p, _)) = self.names.iter().find(|(_, n)| n.as_str() == attribute) {
            return p.clone();
        }
        let p = format!("#n{}", self.names.len());
        self.names.insert(p.clone(), attribute.to_string());
        p
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), v);
        p
    }

    fn condition(&mut self, c: &Condition) -> String {
        match c {
            Condition::Exists => format!("attribute_exists({})", self.name(PK)),
            Condition::NotExists => format!("attribute_not_exists({})", self.name(PK)),
            Condition::AttributeExists(a) => format!("attribute_exists({})", self.name(a)),
            Condition::AttributeNotExists(a) => format!("attribute_not_exists({})", self.name(a)),
            Condition::Equals(a, v) => {
                format!("{} = {}", self.name(a), self.value(to_attribute(v)))
            }
            Condition::AtLeast(a, n) => format!(
                "{} >= {}",
                self.name(a),
                self.value(AttributeValue::N(n.to_string()))
            ),
            Condition::LessThan(a, n) => format!(
                "{} < {}",
                self.name(a),
                self.value(AttributeValue::N(n.to_string()))
            ),
            Condition::And(cs) if cs.is_empty() => self.condition(&Condition::Or(vec![
                Condition::Exists,
                Condition::NotExists,
            ])),
            Condition::Or(cs) if cs.is_empty() => self.condition(&Condition::And(vec![
                Condition::Exists,
                Condition::NotExists,
            ])),
            Condition::And(cs) => cs
                .iter()
                .map(|c| format!("({})", self.condition(c)))
                .collect::<Vec<_>>()
                .join(" AND "),
            Condition::Or(cs) => cs
                .iter()
                .map(|c| format!("({})", self.condition(c)))
                .collect::<Vec<_>>()
                .join(" OR "),
        }
    }

    fn update(&mut self, u: &Update) -> String {
        let mut parts = Vec::new();
        if !u.set.is_empty() {
            let s: Vec<_> = u
                .set
                .iter()
                .map(|(a, v)| format!("{} = {}", self.name(a), self.value(to_attribute(v))))
                .collect();
            parts.push(format!("SET {}", s.join(", ")));
        }
        if !u.add.is_empty() {
            let s: Vec<_> = u
                .add
                .iter()
                .map(|(a, n)| {
                    format!(
                        "{} {}",
                        self.name(a),
                        self.value(AttributeValue::N(n.to_string()))
                    )
                })
                .collect();
            parts.push(format!("ADD {}", s.join(", ")));
        }
        if !u.remove.is_empty() {
            let s: Vec<_> = u.remove.iter().map(|a| self.name(a)).collect();
            parts.push(format!("REMOVE {}", s.join(", ")));
        }
        parts.join(" ")
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// Maps an SDK error, whatever the operation, by its error code.
fn map_error<E, R>(err: SdkError<E, R>) -> TableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().map(str::to_string);
    match code.as_deref() {
        Some("ConditionalCheckFailedException") => TableError::ConditionFailed,
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TransactionInProgressException",
        ) => TableError::Throttled,
        Some("ValidationException" | "ResourceNotFoundException" | "SerializationException") => {
            TableError::Invalid(err.message().unwrap_or("invalid request").to_string())
        }
        Some("TransactionCanceledException") => TableError::TransactionCanceled {
            reasons: Vec::new(),
        },
        _ => TableError::Unavailable(Box::new(err)),
    }
}

/// The table's own checks, made before a request is sent (so the error is the same as the
/// embedded store's, and no request is wasted).
fn check_item(item: &Item) -> Result<(), TableError> {
    validate_item(item).map(|_| ()).map_err(TableError::Invalid)
}

fn check_update(u: &Update) -> Result<(), TableError> {
    u.validate().map_err(TableError::Invalid)
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> TableError {
    TableError::Invalid(e.to_string())
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_error)?;
        self.charge(
            read_units(out.item().map(item_size).unwrap_or(0), true),
            0.0,
        );
        self.see(key, out.item().map(item_size));
        Ok(out.item().map(from_item))
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        check_item(&item)?;
        let mut e = Expr::default();
        let cond = condition.map(|c| e.condition(&c));
        let attributes = to_item(&item);
        let size = item_size(&attributes);
        let key = Key::of(&item);
        // A write whose condition fails is billed too, by the larger of the item it would
        // replace and itself.
        let before = key.as_ref().map_or(0, |k| self.seen(k));
        self.charge(0.0, write_units(size.max(before), false));
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(attributes))
            .set_condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await
            .map_err(map_error)?;
        if let Some(key) = &key {
            self.see(key, Some(size));
        }
        Ok(())
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        check_update(&update)?;
        let mut e = Expr::default();
        let expression = e.update(&update);
        let cond = condition.map(|c| e.condition(&c));
        let out = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_of(key)))
            .update_expression(expression)
            .set_condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|err| {
                self.charge(0.0, write_units(known_size(key, &e.values()), false));
                map_error(err)
            })?;
        // Billed by the larger of the item before and after.
        let after = out.attributes().map(item_size).unwrap_or(0);
        self.charge(0.0, write_units(after.max(self.seen(key)), false));
        self.see(key, Some(after));
        Ok(out.attributes().map(from_item).unwrap_or_default())
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError> {
        let mut e = Expr::default();
        let cond = condition.map(|c| e.condition(&c));
        let counted = self.usage.is_some();
        let out = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key_of(key)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            // The deleted item's size is what a delete is billed by; asked for only to count.
            .set_return_values(counted.then_some(aws_sdk_dynamodb::types::ReturnValue::AllOld))
            .send()
            .await
            .map_err(|err| {
                self.charge(0.0, write_units(0, false));
                map_error(err)
            })?;
        self.charge(
            0.0,
            write_units(out.attributes().map(item_size).unwrap_or(0), false),
        );
        self.see(key, None);
        Ok(())
    }

    async fn scan(
        &self,
        start_after: Option<Key>,
        limit: usize,
    ) -> Result<bazaar_platform::ports::ScanPage, TableError> {
        let out = self
            .client
            .scan()
            .table_name(&self.name)
            .set_limit(Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX)))
            .set_exclusive_start_key(start_after.as_ref().map(key_of))
            .send()
            .await
            .map_err(map_error)?;
        // A scan reads eventually consistent: half a unit per 4 KB.
        self.charge(
            read_units(out.items().iter().map(item_size).sum(), false),
            0.0,
        );
        self.see_items(out.items());
        let last_key = out.last_evaluated_key().and_then(|k| {
            let s = |n: &str| k.get(n).and_then(|v| v.as_s().ok()).cloned();
            Some(Key::new(s(PK)?, s(SK)?))
        });
        Ok(bazaar_platform::ports::ScanPage {
            items: out.items().iter().map(from_item).collect(),
            last_key,
        })
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let mut e = Expr::default();
        let pk = format!(
            "{} = {}",
            e.name(PK),
            e.value(AttributeValue::S(query.pk.clone()))
        );
        let s = |e: &mut Expr, v: &str| e.value(AttributeValue::S(v.to_string()));
        let skn = e.name(SK);
        let sk = match &query.sort_key {
            SortKey::Any => None,
            SortKey::Eq(v) => Some(format!("{skn} = {}", s(&mut e, v))),
            SortKey::BeginsWith(v) => Some(format!("begins_with({skn}, {})", s(&mut e, v))),
            SortKey::Between(a, b) => {
                let a = s(&mut e, a);
                Some(format!("{skn} BETWEEN {a} AND {}", s(&mut e, b)))
            }
            SortKey::Lt(v) => Some(format!("{skn} < {}", s(&mut e, v))),
            SortKey::Le(v) => Some(format!("{skn} <= {}", s(&mut e, v))),
            SortKey::Gt(v) => Some(format!("{skn} > {}", s(&mut e, v))),
            SortKey::Ge(v) => Some(format!("{skn} >= {}", s(&mut e, v))),
        };
        if sk.is_none() {
            e.names.retain(|_, n| n != SK);
        }
        let expression = match sk {
            Some(sk) => format!("{pk} AND {sk}"),
            None => pk,
        };
        let start = query
            .start_after
            .as_ref()
            .map(|sk| key_of(&Key::new(query.pk.clone(), sk.clone())));
        let out = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression(expression)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .consistent_read(true)
            .scan_index_forward(query.forward)
            .set_limit(query.limit.map(|l| l as i32))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(map_error)?;
        self.charge(
            read_units(out.items().iter().map(item_size).sum(), true),
            0.0,
        );
        self.see_items(out.items());
        let last_sk = out
            .last_evaluated_key()
            .and_then(|k| k.get(SK))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(Page {
            items: out.items().iter().map(from_item).collect(),
            last_sk,
        })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        validate_transaction(&writes).map_err(TableError::Invalid)?;
        let mut items = Vec::with_capacity(writes.len());
        let mut units = 0.0;
        // What each item is after a commit, to remember (`None`: deleted).
        let mut after: Vec<(Key, Option<usize>)> = Vec::new();
        for w in &writes {
            let mut e = Expr::default();
            let item = match w {
                Write::Put { item, condition } => {
                    let cond = condition.as_ref().map(|c| e.condition(c));
                    let attributes = to_item(item);
                    let size = item_size(&attributes);
                    let key = Key::of(item);
                    let before = key.as_ref().map_or(0, |k| self.seen(k));
                    units += write_units(size.max(before), true);
                    if let Some(key) = key {
                        after.push((key, Some(size)));
                    }
                    let put = Put::builder()
                        .table_name(&self.name)
                        .set_item(Some(attributes))
                        .set_condition_expression(cond)
                        .set_expression_attribute_names(e.names())
                        .set_expression_attribute_values(e.values())
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().put(put).build()
                }
                Write::Update {
                    key,
                    update,
                    condition,
                } => {
                    let expression = e.update(update);
                    let cond = condition.as_ref().map(|c| e.condition(c));
                    // The size after is not in the answer: the larger of the item before
                    // and what this writes.
                    let size = known_size(key, &e.values()).max(self.seen(key));
                    units += write_units(size, true);
                    after.push((key.clone(), Some(size)));
                    let upd = DynamoUpdate::builder()
                        .table_name(&self.name)
                        .set_key(Some(key_of(key)))
                        .update_expression(expression)
                        .set_condition_expression(cond)
                        .set_expression_attribute_names(e.names())
                        .set_expression_attribute_values(e.values())
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().update(upd).build()
                }
                Write::Delete { key, condition } => {
                    let cond = condition.as_ref().map(|c| e.condition(c));
                    units += write_units(known_size(key, &None).max(self.seen(key)), true);
                    after.push((key.clone(), None));
                    let del = Delete::builder()
                        .table_name(&self.name)
                        .set_key(Some(key_of(key)))
                        .set_condition_expression(cond)
                        .set_expression_attribute_names(e.names())
                        .set_expression_attribute_values(e.values())
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().delete(del).build()
                }
                Write::Check { key, condition } => {
                    let cond = e.condition(condition);
                    units += write_units(known_size(key, &None).max(self.seen(key)), true);
                    let check = ConditionCheck::builder()
                        .table_name(&self.name)
                        .set_key(Some(key_of(key)))
                        .condition_expression(cond)
                        .set_expression_attribute_names(e.names())
                        .set_expression_attribute_values(e.values())
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().condition_check(check).build()
                }
            };
            items.push(item);
        }
        // Every item of a transaction is billed (two units per KB), committed or cancelled.
        self.charge(0.0, units);
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => {
                for (key, size) in &after {
                    self.see(key, *size);
                }
                Ok(())
            }
            Err(err) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
                    let reasons = e
                        .cancellation_reasons()
                        .iter()
                        .map(|r| match r.code() {
                            None | Some("None") => WriteFailure::None,
                            Some("ConditionalCheckFailed") => WriteFailure::ConditionFailed,
                            Some("TransactionConflict") => WriteFailure::Conflict,
                            Some(other) => WriteFailure::Other(other.to_string()),
                        })
                        .collect();
                    return Err(TableError::TransactionCanceled { reasons });
                }
                Err(map_error(err))
            }
        }
    }
}
