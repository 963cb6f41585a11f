//! Poison and malformed input, generated: every SQS-triggered function of the template gets
//! batches of mutated and garbage messages, and every HTTP route gets mutated and garbage
//! requests, through the same entry points Lambda and API Gateway use.
//!
//! What must hold for every input: no panic and no failed invocation; no record reported for
//! retry (a bad message is parked on its first receive, a good one processed, so nothing
//! blocks its batch); every record either processed or parked, and every parked one in the
//! function's DLQ with a `bazaar.reason`; every HTTP answer below 500, and a JSON body (a
//! problem document from the function, `{"message"}` from the gateway) for every 4xx.
//!
//! The inputs come from the sample events in `events/` (each mutated: random bytes, cuts,
//! deep nesting, huge numbers, wrong types, missing and extra fields, unknown types and
//! versions, oversized bodies, another contract's data, headers missing or wrong, boundary
//! numbers: 0, -1, the ends of i32, u32, i64 and u64, ±1e308 and `"NaN"`, in every numeric
//! field, in the signature header's timestamp, the `limit` query and the idempotency key, and
//! in the dates of tokens signed with the local key) and from nothing (garbage). Tests build
//! with overflow checks, so any unchecked arithmetic on such a number panics here. Seeded: `BAZAAR_FUZZ_SEED` replays a run; `BAZAAR_FUZZ_INPUTS` sets the
//! number of inputs (default 100,000, split between messages and requests).

mod common;

use std::collections::BTreeMap;

use bazaar_contracts::Envelope;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_platform::telemetry::Outcome;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const BATCH: usize = 10;

fn seed() -> u64 {
    std::env::var("BAZAAR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201)
}

fn inputs() -> usize {
    std::env::var("BAZAAR_FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// Every sample event in `events/` whose file name starts with `prefix`.
fn samples(prefix: &str) -> Vec<Value> {
    let dir = common::template().parent().unwrap().join("events");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// Makes bad input out of good.
struct Mutator {
    rng: SmallRng,
}

/// Where a node sits in a JSON value.
type Path = Vec<Step>;
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(value: &Value, here: &mut Path, out: &mut Vec<Path>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(Step::Key(k.clone()));
                paths(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                here.push(Step::Index(i));
                paths(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// Placeholder replaced by a number serde_json cannot hold, after serialising.
const HUGE: &str = "\u{1}huge\u{1}";

/// Numbers at the edges, as JSON text: where arithmetic on a value from outside overflows,
/// wraps or loses precision. Each is tried in every numeric field, header and claim.
const BOUNDARIES: [&str; 14] = [
    "0",
    "-1",
    "1",
    "2147483647",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "-9223372036854775807",
    "18446744073709551615",
    "1e308",
    "-1e308",
    "\"NaN\"",
    "\"-Infinity\"",
];

/// A boundary number as header or query text (without JSON's quotes).
fn boundary_text(m: &mut Mutator) -> String {
    m.pick(&BOUNDARIES).trim_matches('"').to_string()
}

/// A token signed with the local key, for `subject` with `role`, whose dates (one or more of
/// `exp`, `nbf`, `iat`) are boundary numbers: it passes the signature check, so the numbers
/// reach the date arithmetic of the authorizer and of every function.
fn boundary_token(m: &mut Mutator) -> String {
    use bazaar_embedded::identity::{LOCAL_AUDIENCE, LOCAL_ISSUER, LOCAL_KID, local_signing_key};
    let mut claims = json!({
        "iss": LOCAL_ISSUER, "sub": "customer-1", "aud": LOCAL_AUDIENCE,
        "roles": [*m.pick(&["customer", "merchant", "operator"])],
        "iat": 0, "nbf": 0, "exp": bazaar_embedded::identity::FAR_FUTURE, "jti": "fuzz",
    });
    for claim in ["exp", "nbf", "iat"] {
        if m.rng.random_bool(0.5) {
            let text: &&str = m.pick(&BOUNDARIES);
            let n: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            claims[claim] = n;
        }
    }
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": LOCAL_KID });
    // `1e308` and friends do not survive a JSON tree as written: sign the text.
    let text = claims.to_string();
    format!(
        "Bearer {}",
        local_signing_key()
            .sign_text(&header.to_string(), &text)
            .unwrap()
    )
}

impl Mutator {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn text(&mut self, max: usize) -> String {
        let len = self.rng.random_range(0..=max);
        (0..len)
            .map(|_| match self.rng.random_range(0..6) {
                0 => char::from_u32(self.rng.random_range(0..0x80)).unwrap_or('?'),
                1 => *self.pick(&['"', '\\', '{', '}', '[', ']', ':', ',', '\0', '\n']),
                2 => char::from_u32(self.rng.random_range(0x80..0x3000)).unwrap_or('é'),
                3 => *self.pick(&['\u{202e}', '\u{feff}', '\u{10ffff}', '😀']),
                _ => char::from(self.rng.random_range(b'a'..=b'z')),
            })
            .collect()
    }

    /// Any JSON value, nested a little.
    fn garbage_value(&mut self, depth: u32) -> Value {
        match self.rng.random_range(0..if depth > 2 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.rng.random_bool(0.5)),
            2 => json!(self.rng.random::<i64>()),
            3 => json!(self.rng.random::<f64>() * 1e300),
            4 => json!(self.text(40)),
            5 => json!(*self.pick(&[-1i64, 0, 1, i64::MAX, i64::MIN, 1_000_000_001])),
            6 => Value::Array(
                (0..self.rng.random_range(0..5))
                    .map(|_| self.garbage_value(depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..self.rng.random_range(0..5))
                    .map(|_| (self.text(8), self.garbage_value(depth + 1)))
                    .collect(),
            ),
        }
    }

    /// Text an HTTP header can carry: no control characters but tab (HTTP servers, API
    /// Gateway's among them, refuse the request before any function sees it).
    fn header_text(&mut self, max: usize) -> String {
        self.text(max)
            .chars()
            .filter(|c| *c == '\t' || !c.is_control())
            .collect()
    }

    fn nested(&mut self) -> String {
        let depth = self.rng.random_range(64..20_000);
        if self.rng.random_bool(0.5) {
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        } else {
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
        }
    }

    /// `good` (a JSON document as text) made bad, or sometimes left good.
    fn mutate(&mut self, good: &str, others: &[String]) -> String {
        let Ok(mut value) = serde_json::from_str::<Value>(good) else {
            return good.to_string();
        };
        let mut all = Vec::new();
        paths(&value, &mut Vec::new(), &mut all);
        let target = self.pick(&all).clone();
        match self.rng.random_range(0..19) {
            0 => {
                let bytes: Vec<u8> = (0..self.rng.random_range(1..300))
                    .map(|_| self.rng.random())
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            1 => {
                // At least one character: SQS carries no empty message.
                let cut = self.rng.random_range(1..good.len().max(2));
                good.char_indices()
                    .take_while(|(i, _)| *i < cut)
                    .map(|(_, c)| c)
                    .collect()
            }
            2 => self.nested(),
            3 => {
                *node(&mut value, &target) = json!(HUGE);
                let huge = *self.pick(&[
                    "1e999",
                    "-1e400",
                    "123456789012345678901234567890",
                    "-0.0000000000000000000000000001e-400",
                    "18446744073709551616",
                ]);
                value.to_string().replace(&format!("\"{HUGE}\""), huge)
            }
            4 | 5 => {
                *node(&mut value, &target) = self.garbage_value(1);
                value.to_string()
            }
            6 => {
                if let Some((Step::Key(k), parent)) = target.split_last()
                    && let Some(map) = node(&mut value, parent).as_object_mut()
                {
                    map.remove(k);
                }
                value.to_string()
            }
            7 => {
                let (key, extra) = (self.text(10), self.garbage_value(1));
                if let Some(map) = node(&mut value, &target).as_object_mut() {
                    map.insert(key, extra);
                } else if let Some(map) = value.as_object_mut() {
                    map.insert(key, extra);
                }
                value.to_string()
            }
            8 => {
                value["type"] = json!(*self.pick(&["order.placed.v9", "", "ORDER.PLACED", "x"]));
                value.to_string()
            }
            9 => {
                value["dataversion"] = json!(*self.pick(&[
                    json!(0),
                    json!(2),
                    json!(99),
                    json!(-1),
                    json!("1"),
                    json!(1.5),
                    Value::Null
                ]));
                value.to_string()
            }
            10 => {
                // Oversized for its contract, but no more than SQS carries (256 KiB with the
                // attributes): parking it must still fit the DLQ.
                *node(&mut value, &target) = json!(HUGE);
                let rest = value.to_string().len();
                let total = self.rng.random_range(200_000..262_000usize);
                let filler = "x".repeat(total.saturating_sub(rest));
                value.to_string().replace(HUGE, &filler)
            }
            11 => {
                // Another contract's data under this type, or this data under another type.
                let other = self.pick(others).clone();
                let other: Value = serde_json::from_str(&other).unwrap_or(Value::Null);
                if self.rng.random_bool(0.5) {
                    value["data"] = other["data"].clone();
                } else {
                    value["type"] = other["type"].clone();
                }
                value.to_string()
            }
            12 => serde_json::to_string(&self.garbage_value(0)).unwrap(),
            16..=18 => {
                // A boundary number in place of a number (or of anything, when the document
                // holds none), written as text so that even those no JSON tree holds arrive.
                let numeric: Vec<&Path> = all
                    .iter()
                    .filter(|p| {
                        let mut v = value.clone();
                        node(&mut v, p).is_number()
                    })
                    .collect();
                let target = if numeric.is_empty() {
                    target
                } else {
                    (*self.pick(&numeric)).clone()
                };
                *node(&mut value, &target) = json!(HUGE);
                let n = *self.pick(&BOUNDARIES);
                value.to_string().replace(&format!("\"{HUGE}\""), n)
            }
            // Not "": SQS and SNS refuse an empty message, so none can arrive.
            13 => self
                .pick(&[" ", "null", "[]", "{}", "\"\"", "0", "{\"data\":{}}"])
                .to_string(),
            _ => {
                // Unchanged but for a fresh id: a good message among the bad.
                if value.get("id").is_some() {
                    let n: u64 = self.rng.random();
                    value["id"] = json!(format!(
                        "{:08x}-{:04x}-4000-8000-{:012x}",
                        n >> 32,
                        n & 0xffff,
                        n & 0xffff_ffff_ffff
                    ));
                }
                value.to_string()
            }
        }
    }
}

/// An SQS-triggered function and what it is fed.
struct Consumer {
    logical_id: String,
    binary: String,
    dlq: String,
    record: Value,
    bodies: Vec<String>,
}

fn consumers(model: &bazaar_localstack::StackModel) -> Vec<Consumer> {
    let mut out = Vec::new();
    for (id, f) in &model.functions {
        if !f.consumes() {
            continue;
        }
        let events: Vec<Value> = samples(&format!("{}.", f.binary))
            .into_iter()
            .filter(|e| e.get("Records").is_some())
            .collect();
        assert!(!events.is_empty(), "no sample SQS event for {}", f.binary);
        let records: Vec<&Value> = events
            .iter()
            .flat_map(|e| e["Records"].as_array().unwrap())
            .collect();
        let dlq_url = &f.environment["DLQ_URL"];
        out.push(Consumer {
            logical_id: id.clone(),
            binary: f.binary.clone(),
            dlq: bazaar_embedded::engine::name_of(dlq_url).to_string(),
            record: records[0].clone(),
            bodies: records
                .iter()
                .map(|r| r["body"].as_str().unwrap().to_string())
                .collect(),
        });
    }
    out
}

/// An order at agora and one at souk for MUG-01, bought by their buyers: their ids.
async fn channel_orders(s: &common::TestStack) -> (String, String) {
    use bazaar_channels::{ChannelId, Purchase, Wanted};
    use bazaar_fake_marketplaces::Call;
    let m = s
        .stack
        .marketplaces()
        .expect("the stack runs the marketplaces");
    let mug = Wanted {
        sku: "MUG-01".into(),
        active: true,
        title: "Blue mug".into(),
        description: String::new(),
        category: "kitchen".into(),
        images: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity: 50,
    };
    let put = m.handle(
        &Call::new("PUT", "/agora/api/items/MUG-01")
            .bearer(&m.accounts().agora_key)
            .json(&mug.to_agora()),
    );
    assert_eq!(put.status, 200);
    let feed = m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(&m.accounts().souk_key)
            .json(&json!({ "items": [mug.to_souk()] })),
    );
    assert!(feed.status < 300);
    s.stack
        .run_for(bazaar_fake_marketplaces::FEED_DELAY + chrono::Duration::seconds(1))
        .await;
    let purchase = Purchase {
        sku: "MUG-01".into(),
        quantity: 1,
    };
    let ids = (
        m.buy(ChannelId::Agora, &purchase).unwrap(),
        m.buy(ChannelId::Souk, &purchase).unwrap(),
    );
    s.stack.run_for(chrono::Duration::minutes(2)).await;
    ids
}

#[tokio::test]
async fn poison_messages_are_parked_with_a_reason_at_once_and_never_block_their_batch() {
    let s = common::stack();
    // Recorded traffic: a catalog update and orders paid with approving, declining and
    // asynchronous cards, run to the end; the archive then holds an envelope of every type
    // that flows, each a seed for every consumer (its own types and the others').
    s.set_stock("MUG-01", 100).await;
    for (i, token) in ["tok_ok", "tok_declined", "tok_async"].iter().enumerate() {
        let items = json!([{"sku": "MUG-01", "quantity": 1}]);
        s.placed_paying("customer-1", &format!("seed-{i}"), items, token)
            .await;
    }
    s.stack.settle().await;
    s.stack.deliver_provider_callbacks().await;
    s.stack.settle().await;
    let archive = s.stack.table_of("EventArchiverFunction").unwrap();
    let mut traffic = Vec::new();
    let mut types = Vec::new();
    for contract in bazaar_contracts::registry::all() {
        let found =
            event_archiver::archived(archive.as_ref(), &[contract.message_type.to_string()])
                .await
                .unwrap();
        if !found.is_empty() {
            types.push(contract.message_type);
        }
        traffic.extend(found.iter().map(Envelope::to_json));
    }
    // The samples speak of order `o-sample`: a real one, so that the good among the
    // generated messages have something to act on.
    let order = s
        .placed(
            "customer-1",
            "fuzz",
            json!([{"sku": "MUG-01", "quantity": 1}]),
        )
        .await;
    // And of channel orders `ag-sample` and `sk-sample`: real ones at the fake channels.
    let (agora_order, souk_order) = channel_orders(&s).await;
    let model = s.stack.model().clone();
    let mut consumers = consumers(&model);
    for c in &mut consumers {
        for b in &mut c.bodies {
            *b = b
                .replace("o-sample", &order)
                .replace("ag-sample", &agora_order)
                .replace("sk-sample", &souk_order);
        }
    }
    assert!(consumers.len() >= 8, "{}", consumers.len());
    let all_bodies: Vec<String> = consumers
        .iter()
        .flat_map(|c| c.bodies.clone())
        .chain(traffic.iter().cloned())
        .collect();
    for body in &all_bodies {
        let t = serde_json::from_str::<Value>(body).unwrap()["type"].clone();
        if let Some(t) = bazaar_contracts::registry::find(t.as_str().unwrap())
            && !types.contains(&t.message_type)
        {
            types.push(t.message_type);
        }
    }
    // Seeds of most contracts (those no flow here makes, `user.authed` among them, are
    // still reached through the type swaps of the mutator).
    assert!(types.len() >= 14, "seeds of only {types:?}");
    let mut m = Mutator {
        rng: SmallRng::seed_from_u64(seed()),
    };
    let per_function = (inputs() / 2).div_ceil(consumers.len() * BATCH);
    let mut totals: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut effects = 0;
    for c in &consumers {
        for batch in 0..per_function {
            let mut records = Vec::with_capacity(BATCH);
            let mut bodies = Vec::with_capacity(BATCH);
            for i in 0..BATCH {
                let good = if m.rng.random_bool(0.5) {
                    m.pick(&c.bodies).clone()
                } else {
                    m.pick(&traffic).clone()
                };
                let body = m.mutate(&good, &all_bodies);
                let mut record = c.record.clone();
                record["messageId"] = json!(format!("fuzz-{batch}-{i}"));
                record["body"] = json!(body);
                // Attributes are set by the sender, so any names and values can arrive (in
                // the shape SQS gives them): none, or the type and id saying something else.
                match m.rng.random_range(0..8) {
                    0 => record["messageAttributes"] = json!({}),
                    1 => {
                        let mut attributes = serde_json::Map::new();
                        for name in ["type", "id", &m.text(8)] {
                            let value = m.header_text(40);
                            attributes.insert(
                                name.to_string(),
                                json!({"stringValue": value, "dataType": "String"}),
                            );
                        }
                        record["messageAttributes"] = Value::Object(attributes);
                    }
                    _ => {}
                }
                bodies.push(body);
                records.push(record);
            }
            let processed = s.metrics.count(&c.binary, Outcome::Processed);
            let parked = s.metrics.count(&c.binary, Outcome::Parked);
            let failed = s.metrics.count(&c.binary, Outcome::Failed);

            let answer = s
                .stack
                .invoke(&c.logical_id, json!({ "Records": records }))
                .await;
            let show = || {
                bodies
                    .iter()
                    .map(|b| b.chars().take(300).collect::<String>())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let answer = answer.unwrap_or_else(|e| {
                panic!("{} failed on batch {batch}: {e:?}\n{}", c.binary, show())
            });
            assert_eq!(
                answer["batchItemFailures"].as_array().map(Vec::len),
                Some(0),
                "{}: {answer}\n{}",
                c.binary,
                show()
            );
            let new_processed = s.metrics.count(&c.binary, Outcome::Processed) - processed;
            let new_parked = s.metrics.count(&c.binary, Outcome::Parked) - parked;
            assert_eq!(s.metrics.count(&c.binary, Outcome::Failed), failed);
            assert_eq!(
                new_processed + new_parked,
                BATCH,
                "{}: every record processed or parked\n{}",
                c.binary,
                show()
            );
            // The DLQ is emptied after every batch (peeking stays cheap): what is there now
            // was parked by this one.
            let dlq = s.stack.engine().peek(&c.dlq).unwrap();
            s.stack.engine().purge(&c.dlq).unwrap();
            assert_eq!(dlq.len(), new_parked, "{}", c.binary);
            for letter in &dlq {
                let reason = letter.attributes.get("bazaar.reason");
                assert!(
                    reason.is_some_and(|r| !r.value.is_empty()),
                    "{}: parked without a reason: {}",
                    c.binary,
                    letter.body.chars().take(300).collect::<String>()
                );
            }
            // What was not parked was processed for real: the consumer recorded it (its inbox
            // record or hop record, or the archived envelope for the idempotent archiver).
            let parked_ids: std::collections::BTreeSet<String> = dlq
                .iter()
                .filter_map(|l| l.attributes.get("id").map(|a| a.value.clone()))
                .collect();
            let table = s.stack.table_of(&c.logical_id).unwrap();
            for body in &bodies {
                let Ok(envelope) = bazaar_contracts::Envelope::from_json(body) else {
                    continue;
                };
                if parked_ids.contains(&envelope.id) {
                    continue;
                }
                let recorded = if c.binary == "event-archiver" {
                    event_archiver::is_archived(table.as_ref(), &envelope)
                        .await
                        .unwrap()
                } else {
                    // An inbox record, or for a self-guarded handler's message the batch's
                    // hop record that lists it.
                    table
                        .get(&bazaar_platform::outbox::inbox_key(&c.binary, &envelope.id))
                        .await
                        .unwrap()
                        .is_some()
                        || bazaar_platform::hops::find(
                            table.as_ref(),
                            &c.binary,
                            &envelope.id,
                            envelope.time,
                        )
                        .await
                        .unwrap()
                        .is_some()
                };
                assert!(
                    recorded,
                    "{}: {} counted processed but left no record",
                    c.binary, envelope.id
                );
                effects += 1;
            }
            let t = totals.entry(c.binary.clone()).or_default();
            t.0 += new_processed;
            t.1 += new_parked;
        }
    }
    // The generator reaches both sides of every consumer.
    for (function, (processed, parked)) in &totals {
        assert!(
            *processed > 0 && *parked > 0,
            "{function}: {processed} processed, {parked} parked"
        );
    }
    assert!(
        effects * 20 > inputs() / 2,
        "{effects} processed messages checked for their record"
    );
    let sum: usize = totals.values().map(|(a, b)| a + b).sum();
    println!(
        "{sum} generated messages from seeds of {} contracts: {totals:?}",
        types.len()
    );
}

/// `text` as it can travel in a request line: bytes outside visible ASCII, and `%`, `#`,
/// percent-encoded (a malformed escape, `%zz`, stays possible: `%` followed by text).
fn wire(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_graphic() && b != b'#' && (b != b'%' || text.len().is_multiple_of(2)) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A value for a path parameter: fine, odd, or hostile.
fn param(m: &mut Mutator) -> String {
    match m.rng.random_range(0..8) {
        0 => "MUG-01".into(),
        1 => "0000ba2a-0000-4000-8000-000000000001".into(),
        2 => "A".repeat(m.rng.random_range(60..300)),
        3 => "%2F..%2F".into(),
        4 => "%00".into(),
        5 => "%F0%9F%98%80".into(),
        _ => m
            .text(20)
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
    }
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_document_on_every_route_never_a_5xx() {
    let s = common::stack();
    for (sku, n) in [("MUG-01", 10)] {
        s.set_stock(sku, n).await;
    }
    let routes = s.stack.routes().to_vec();
    assert!(routes.len() >= 12);
    // Request bodies of the samples, by route.
    let api_samples: Vec<Value> = samples("")
        .into_iter()
        .filter(|e| e.get("routeKey").is_some())
        .collect();
    let bodies: Vec<String> = api_samples
        .iter()
        .filter_map(|e| e["body"].as_str().map(String::from))
        .collect();
    assert!(bodies.len() >= 4, "{}", bodies.len());
    let tokens = [
        common::bearer("customer-1", "customer"),
        common::bearer("merchant-1", "merchant"),
        common::bearer("operator", "operator"),
        "Bearer not.a.token".to_string(),
        format!("Bearer {}", "a".repeat(9000)),
        "Basic dXNlcjpwdw==".to_string(),
        String::new(),
    ];
    let mut m = Mutator {
        rng: SmallRng::seed_from_u64(seed() ^ 0x5eed),
    };
    let total = inputs() - inputs() / 2;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for n in 0..total {
        let route = m.pick(&routes).clone();
        let path = route
            .path
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    param(&mut m)
                } else {
                    part.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let body = match m.rng.random_range(0..4) {
            0 => Vec::new(),
            1 => m.text(200).into_bytes(),
            _ => {
                let good = m.pick(&bodies).clone();
                m.mutate(&good, &bodies).into_bytes()
            }
        };
        let mut request = HttpRequest {
            method: route.method.clone(),
            path,
            query: match m.rng.random_range(0..4) {
                0 => String::new(),
                1 => format!("q={}&limit={}", wire(&m.text(10)), m.rng.random::<i32>()),
                2 if m.rng.random_bool(0.5) => format!("limit={}", boundary_text(&mut m)),
                2 => format!("cursor={}&customer=customer-2", wire(&m.text(30))),
                _ => wire(&m.text(40)),
            },
            headers: Vec::new(),
            body,
            // Many callers: the sign-in throttle (per source) slows some, not all.
            source_ip: Some(format!("198.51.100.{}", n % 250)),
        };
        let token = if m.rng.random_bool(0.1) {
            boundary_token(&mut m)
        } else {
            m.pick(&tokens).clone()
        };
        if !token.is_empty() {
            request.headers.push(("authorization".into(), token));
        }
        if m.rng.random_bool(0.7) {
            let key = match m.rng.random_range(0..4) {
                0 => format!("k-{n}"),
                1 => String::new(),
                2 => boundary_text(&mut m),
                _ => m.header_text(300),
            };
            request.headers.push(("idempotency-key".into(), key));
        }
        if m.rng.random_bool(0.3) {
            let signature = if m.rng.random_bool(0.5) {
                m.header_text(80)
            } else {
                format!("t={},v1=00", boundary_text(&mut m))
            };
            request
                .headers
                .push(("x-payments-signature".into(), signature));
        }
        if m.rng.random_bool(0.3) {
            request
                .headers
                .push(("content-type".into(), m.header_text(20)));
        }
        let shown = format!(
            "{} {}?{} {:?} {:?}",
            request.method,
            request.path,
            request.query,
            request
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.chars().take(60).collect::<String>()))
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&request.body)
                .chars()
                .take(300)
                .collect::<String>()
        );
        let response = s.stack.http(request).await;
        *statuses.entry(response.status).or_default() += 1;
        assert!(response.status < 500, "{} for {shown}", response.status);
        if response.status >= 400 {
            let body: Value = serde_json::from_slice(&response.body)
                .unwrap_or_else(|e| panic!("{e}: a 4xx without a JSON body for {shown}"));
            match response.header("content-type") {
                Some("application/problem+json") => {
                    assert_eq!(body["status"], response.status, "{shown}");
                    assert!(body["detail"].is_string(), "{shown}");
                }
                Some("application/json") => assert!(body["message"].is_string(), "{shown}"),
                other => panic!("{other:?} for {shown}"),
            }
        }
    }
    // Both sides reached: some requests got through, most were refused.
    assert!(
        statuses.range(200..300).count() > 0 && statuses.range(400..500).count() > 2,
        "{statuses:?}"
    );
    println!("{total} generated requests: {statuses:?}");
}
