//! The conformance suites every adapter passes: the embedded store's and the AWS SDK's (run
//! against `moto_server`). One suite, so that the local stack cannot drift from AWS.
//!
//! Each suite panics with a message naming the broken rule. Keys are prefixed with `ns` so
//! that runs can share a table.

use std::collections::BTreeSet;

use async_trait::async_trait;
use bazaar_contracts::envelope::Origin;
use bazaar_contracts::inventory::{InventoryReserved, ReserveStock};
use bazaar_contracts::{Actor, Envelope, Flags, Line, Sku};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use crate::item::{Condition, Key, Query, SortKey, Update, Write, item};
use crate::ports::{PublishError, Publisher, Table, TableError, WriteFailure};

/// Runs every table check.
pub async fn table_suite(table: &dyn Table, ns: &str) {
    put_get_round_trips_every_type(table, ns).await;
    conditional_put_refuses_a_second_create(table, ns).await;
    update_adds_sets_removes_and_guards(table, ns).await;
    delete_honours_its_condition(table, ns).await;
    query_selects_by_sort_key_and_pages(table, ns).await;
    transactions_are_all_or_nothing(table, ns).await;
    invalid_requests_are_refused(table, ns).await;
    scan_reads_every_item_once_in_pages(table, ns).await;
}

async fn scan_reads_every_item_once_in_pages(t: &dyn Table, ns: &str) {
    let prefix = format!("{ns}#scan");
    for i in 0..7 {
        t.put(
            item(
                &k(ns, &format!("scan{}", i % 3), &i.to_string()),
                json!({"i": i}),
            ),
            None,
        )
        .await
        .expect("put");
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = t.scan(after, 3).await.expect("scan");
        assert!(page.items.len() <= 3, "a page holds at most its limit");
        pages += 1;
        seen.extend(
            page.items
                .iter()
                .filter_map(Key::of)
                .filter(|key| key.pk.starts_with(&prefix)),
        );
        match page.last_key {
            Some(k) => after = Some(k),
            None => break,
        }
        assert!(pages < 1000, "the scan ends");
    }
    let mut unique = seen.clone();
    unique.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
    unique.dedup();
    assert_eq!(seen.len(), 7, "every item once: {seen:?}");
    assert_eq!(unique.len(), 7, "no item twice: {seen:?}");
}

fn k(ns: &str, pk: &str, sk: &str) -> Key {
    Key::new(format!("{ns}#{pk}"), sk)
}

async fn put_get_round_trips_every_type(t: &dyn Table, ns: &str) {
    let key = k(ns, "types", "1");
    let attrs = json!({"s": "text", "n": 42, "neg": -7, "f": 1.5, "b": true, "null": null, "l": [1, "two", false], "m": {"a": {"b": "c"}}, "empty": ""});
    t.put(item(&key, attrs.clone()), None).await.expect("put");
    let got = t.get(&key).await.expect("get").expect("the item just put");
    for (name, want) in attrs.as_object().unwrap() {
        let have = got
            .get(name)
            .unwrap_or_else(|| panic!("attribute {name} lost"));
        assert!(
            crate::item::values_equal(have, want) || have == want,
            "attribute {name}: want {want}, got {have}"
        );
    }
    assert_eq!(got.get("pk"), Some(&json!(key.pk)));
    assert!(
        t.get(&k(ns, "types", "absent"))
            .await
            .expect("get absent")
            .is_none(),
        "a missing item reads as None"
    );
}

async fn conditional_put_refuses_a_second_create(t: &dyn Table, ns: &str) {
    let key = k(ns, "create", "1");
    t.put(item(&key, json!({"v": 1})), Some(Condition::NotExists))
        .await
        .expect("first create");
    let second = t
        .put(item(&key, json!({"v": 2})), Some(Condition::NotExists))
        .await;
    assert!(
        matches!(second, Err(TableError::ConditionFailed)),
        "second create must fail its condition, got {second:?}"
    );
    let got = t.get(&key).await.unwrap().unwrap();
    assert_eq!(got["v"], json!(1), "a failed put changes nothing");
    t.put(
        item(&key, json!({"v": 3})),
        Some(Condition::Equals("v".into(), json!(1))),
    )
    .await
    .expect("put guarded by equality");
    let wrong = t
        .put(
            item(&key, json!({"v": 4})),
            Some(Condition::Equals("v".into(), json!(1))),
        )
        .await;
    assert!(
        matches!(wrong, Err(TableError::ConditionFailed)),
        "stale equality must fail, got {wrong:?}"
    );
}

async fn update_adds_sets_removes_and_guards(t: &dyn Table, ns: &str) {
    let key = k(ns, "stock", "1");
    let created = t
        .update(
            &key,
            Update::new().add("available", 5).set("owner", "merchant-1"),
            None,
        )
        .await
        .expect("update creates");
    assert_eq!(created["available"], json!(5));
    assert_eq!(created["owner"], json!("merchant-1"));
    let after = t
        .update(
            &key,
            Update::new().add("available", -3),
            Some(Condition::AtLeast("available".into(), 3)),
        )
        .await
        .expect("guarded decrement");
    assert_eq!(after["available"], json!(2), "update returns the new item");
    let oversell = t
        .update(
            &key,
            Update::new().add("available", -3),
            Some(Condition::AtLeast("available".into(), 3)),
        )
        .await;
    assert!(
        matches!(oversell, Err(TableError::ConditionFailed)),
        "decrement below zero must fail, got {oversell:?}"
    );
    let removed = t
        .update(&key, Update::new().remove("owner"), Some(Condition::Exists))
        .await
        .expect("remove");
    assert!(!removed.contains_key("owner"));
    let missing = t
        .update(
            &k(ns, "stock", "none"),
            Update::new().set("x", 1),
            Some(Condition::Exists),
        )
        .await;
    assert!(
        matches!(missing, Err(TableError::ConditionFailed)),
        "update guarded by Exists must fail on a missing item, got {missing:?}"
    );
    let ok = t
        .update(
            &key,
            Update::new().set("x", 1),
            Some(Condition::And(vec![
                Condition::AttributeExists("available".into()),
                Condition::AttributeNotExists("owner".into()),
            ])),
        )
        .await;
    assert!(ok.is_ok(), "and of attribute conditions: {ok:?}");
    let or = t
        .update(
            &key,
            Update::new().set("x", 2),
            Some(Condition::Or(vec![
                Condition::Equals("x".into(), json!(9)),
                Condition::LessThan("available".into(), 3),
            ])),
        )
        .await;
    assert!(or.is_ok(), "or of conditions: {or:?}");
}

async fn delete_honours_its_condition(t: &dyn Table, ns: &str) {
    let key = k(ns, "del", "1");
    t.put(item(&key, json!({"state": "open"})), None)
        .await
        .unwrap();
    let refused = t
        .delete(
            &key,
            Some(Condition::Equals("state".into(), json!("closed"))),
        )
        .await;
    assert!(
        matches!(refused, Err(TableError::ConditionFailed)),
        "{refused:?}"
    );
    t.delete(&key, Some(Condition::Equals("state".into(), json!("open"))))
        .await
        .expect("guarded delete");
    assert!(t.get(&key).await.unwrap().is_none());
    t.delete(&key, None)
        .await
        .expect("deleting a missing item is fine");
}

async fn query_selects_by_sort_key_and_pages(t: &dyn Table, ns: &str) {
    let pk = format!("{ns}#q");
    for sk in ["a#1", "a#2", "a#3", "b#1", "b#2", "c"] {
        t.put(item(&Key::new(pk.clone(), sk), json!({"v": sk})), None)
            .await
            .unwrap();
    }
    t.put(
        item(&Key::new(format!("{ns}#other"), "a#1"), json!({})),
        None,
    )
    .await
    .unwrap();
    let sks = |items: &[crate::item::Item]| {
        items
            .iter()
            .map(|i| i["sk"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let q = |sk: SortKey| Query::partition(pk.clone()).sort_key(sk);
    let cases: Vec<(SortKey, Vec<&str>)> = vec![
        (SortKey::Any, vec!["a#1", "a#2", "a#3", "b#1", "b#2", "c"]),
        (SortKey::Eq("b#1".into()), vec!["b#1"]),
        (SortKey::BeginsWith("a#".into()), vec!["a#1", "a#2", "a#3"]),
        (
            SortKey::Between("a#2".into(), "b#1".into()),
            vec!["a#2", "a#3", "b#1"],
        ),
        (SortKey::Lt("a#3".into()), vec!["a#1", "a#2"]),
        (SortKey::Le("a#3".into()), vec!["a#1", "a#2", "a#3"]),
        (SortKey::Gt("b#1".into()), vec!["b#2", "c"]),
        (SortKey::Ge("b#1".into()), vec!["b#1", "b#2", "c"]),
    ];
    for (cond, want) in cases {
        let page = t.query(q(cond.clone())).await.unwrap();
        assert_eq!(sks(&page.items), want, "query {cond:?}");
    }
    let mut backwards = q(SortKey::BeginsWith("a#".into()));
    backwards.forward = false;
    assert_eq!(
        sks(&t.query(backwards).await.unwrap().items),
        ["a#3", "a#2", "a#1"],
        "descending order"
    );

    let mut seen = Vec::new();
    let mut start = None;
    let mut pages = 0;
    loop {
        let page = t
            .query(q(SortKey::Any).limit(4).start_after(start))
            .await
            .unwrap();
        assert!(page.items.len() <= 4, "a page holds at most the limit");
        seen.extend(sks(&page.items));
        pages += 1;
        match page.last_sk {
            Some(sk) => start = Some(sk),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(
        seen,
        ["a#1", "a#2", "a#3", "b#1", "b#2", "c"],
        "paging returns every item once, in order"
    );
}

async fn transactions_are_all_or_nothing(t: &dyn Table, ns: &str) {
    let a = k(ns, "tx", "a");
    let b = k(ns, "tx", "b");
    t.put(item(&a, json!({"n": 1})), None).await.unwrap();
    let failing = vec![
        Write::Update {
            key: a.clone(),
            update: Update::new().add("n", 1),
            condition: None,
        },
        Write::Put {
            item: item(&b, json!({"n": 1})),
            condition: None,
        },
        Write::Check {
            key: a.clone(),
            condition: Condition::Equals("n".into(), json!(99)),
        },
    ];
    // The same key twice is refused; use a distinct key for the check.
    let failing: Vec<Write> = failing
        .into_iter()
        .take(2)
        .chain([Write::Check {
            key: k(ns, "tx", "c"),
            condition: Condition::Exists,
        }])
        .collect();
    let err = t
        .transact(failing)
        .await
        .expect_err("a failing check cancels the transaction");
    match &err {
        TableError::TransactionCanceled { reasons } => {
            assert_eq!(reasons.len(), 3, "one reason per write: {reasons:?}");
            assert_eq!(reasons[2], WriteFailure::ConditionFailed, "{reasons:?}");
            assert!(err.condition_failed_at(2) && !err.condition_failed_at(0));
        }
        other => panic!("expected TransactionCanceled, got {other:?}"),
    }
    assert_eq!(
        t.get(&a).await.unwrap().unwrap()["n"],
        json!(1),
        "nothing of a cancelled transaction is applied"
    );
    assert!(
        t.get(&b).await.unwrap().is_none(),
        "nothing of a cancelled transaction is applied"
    );

    t.transact(vec![
        Write::Update {
            key: a.clone(),
            update: Update::new().add("n", 1),
            condition: Some(Condition::Equals("n".into(), json!(1))),
        },
        Write::Put {
            item: item(&b, json!({"n": 1})),
            condition: Some(Condition::NotExists),
        },
        Write::Delete {
            key: k(ns, "tx", "gone"),
            condition: None,
        },
    ])
    .await
    .expect("a transaction whose conditions hold");
    assert_eq!(t.get(&a).await.unwrap().unwrap()["n"], json!(2));
    assert!(t.get(&b).await.unwrap().is_some());
}

async fn invalid_requests_are_refused(t: &dyn Table, ns: &str) {
    let too_many: Vec<Write> = (0..101)
        .map(|i| Write::Put {
            item: item(&k(ns, "many", &i.to_string()), json!({})),
            condition: None,
        })
        .collect();
    assert!(
        matches!(t.transact(too_many).await, Err(TableError::Invalid(_))),
        "more than 100 writes is invalid"
    );
    let a = k(ns, "dup", "a");
    let twice = vec![
        Write::Put {
            item: item(&a, json!({})),
            condition: None,
        },
        Write::Delete {
            key: a.clone(),
            condition: None,
        },
    ];
    assert!(
        matches!(t.transact(twice).await, Err(TableError::Invalid(_))),
        "two writes to one key is invalid"
    );
    let key_change = t.update(&a, Update::new().set("sk", "x"), None).await;
    assert!(
        matches!(key_change, Err(TableError::Invalid(_))),
        "updating the key is invalid: {key_change:?}"
    );
    let big = "x".repeat(401 * 1024);
    let too_big = t
        .put(item(&k(ns, "big", "1"), json!({ "data": big })), None)
        .await;
    assert!(
        matches!(too_big, Err(TableError::Invalid(_))),
        "an item over 400 KB is invalid: {too_big:?}"
    );
}

/// Reads what a topic delivered, so that the publish suite can check routing. Each adapter's
/// test provides one: a queue subscribed to every topic with raw delivery.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Every envelope delivered so far for `topic` (a logical topic name: `order`, `tasks`).
    async fn delivered(
        &self,
        topic: &str,
    ) -> Vec<(Envelope, std::collections::BTreeMap<String, String>)>;
}

fn origin(id: String) -> Origin {
    Origin {
        id,
        source: "bazaar/conformance".into(),
        time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        correlation_id: "conformance".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: Actor::system(),
        flags: Flags::default(),
    }
}

/// Runs every publish check. `publisher` must know the topics `inventory` and `tasks`, and
/// must not know `nosuchentity`.
pub async fn publish_suite(publisher: &dyn Publisher, probe: &dyn Probe, ns: &str) {
    let line = Line {
        sku: Sku::parse("SKU-1").unwrap(),
        quantity: 1,
    };
    let mut batch = Vec::new();
    for i in 0..23 {
        let order_id = format!("{ns}-{i}");
        batch.push(
            Envelope::wrap(
                &InventoryReserved {
                    order_id: order_id.clone(),
                    items: vec![line.clone()],
                },
                origin(format!("{ns}-e-{i}")),
            )
            .unwrap(),
        );
        if i % 2 == 0 {
            batch.push(
                Envelope::wrap(
                    &ReserveStock {
                        order_id,
                        items: vec![line.clone()],
                    },
                    origin(format!("{ns}-t-{i}")),
                )
                .unwrap(),
            );
        }
    }
    publisher
        .publish(&batch)
        .await
        .expect("publish more than one batch across two topics");

    let events: Vec<_> = probe
        .delivered("inventory")
        .await
        .into_iter()
        .filter(|(e, _)| e.id.starts_with(ns))
        .collect();
    let tasks: Vec<_> = probe
        .delivered("tasks")
        .await
        .into_iter()
        .filter(|(e, _)| e.id.starts_with(ns))
        .collect();
    let ids = |v: &[(Envelope, std::collections::BTreeMap<String, String>)]| {
        v.iter().map(|(e, _)| e.id.clone()).collect::<BTreeSet<_>>()
    };
    let want_events: BTreeSet<_> = (0..23).map(|i| format!("{ns}-e-{i}")).collect();
    let want_tasks: BTreeSet<_> = (0..23).step_by(2).map(|i| format!("{ns}-t-{i}")).collect();
    assert_eq!(
        ids(&events),
        want_events,
        "every event reaches the entity topic, once"
    );
    assert_eq!(events.len(), 23, "no event is delivered twice");
    assert_eq!(
        ids(&tasks),
        want_tasks,
        "every task reaches the tasks topic"
    );
    let (sample, attributes) = &tasks[0];
    assert_eq!(
        sample,
        batch.iter().find(|e| e.id == sample.id).unwrap(),
        "the envelope arrives unchanged"
    );
    assert_eq!(
        attributes.get("type").map(String::as_str),
        Some("inventory.stock.reserve"),
        "message attributes carry the type"
    );
    assert_eq!(
        attributes.get("target").map(String::as_str),
        Some("inventory"),
        "task attributes carry the target service"
    );
    assert_eq!(
        attributes.get("id"),
        Some(&sample.id),
        "message attributes carry the envelope id"
    );

    let mut huge = Envelope::wrap(
        &ReserveStock {
            order_id: format!("{ns}-big"),
            items: vec![line.clone()],
        },
        origin(format!("{ns}-big")),
    )
    .unwrap();
    let mut data = huge.data.value();
    data["padding"] = Value::String("x".repeat(260 * 1024));
    huge.data = data.into();
    let err = publisher
        .publish(&[huge])
        .await
        .expect_err("a message over 256 KiB is refused");
    assert!(matches!(err, PublishError::TooLarge { .. }), "{err:?}");

    let mut stray = Envelope::wrap(
        &InventoryReserved {
            order_id: format!("{ns}-x"),
            items: vec![line],
        },
        origin(format!("{ns}-x")),
    )
    .unwrap();
    stray.message_type = "nosuchentity.happened".into();
    let err = publisher
        .publish(&[stray])
        .await
        .expect_err("an unknown topic is refused");
    assert!(matches!(err, PublishError::UnknownTopic(_)), "{err:?}");
}

/// A message as a queue hands it out, for the messaging suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The body.
    pub body: String,
    /// The receipt handle.
    pub receipt: String,
    /// How many times it was received.
    pub receive_count: u32,
    /// String message attributes.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// The SQS and SNS operations the messaging suite needs, over the embedded engine or the
/// AWS SDK. Names are plain names; implementations map them to URLs and ARNs.
#[async_trait]
pub trait Messaging: Send + Sync {
    /// Creates a standard queue with a visibility timeout and, optionally, a redrive policy to
    /// `dlq` after `max_receive` receives.
    async fn create_queue(&self, name: &str, visibility_timeout: u32, redrive: Option<(&str, u32)>);
    /// Creates a topic.
    async fn create_topic(&self, name: &str);
    /// Subscribes a queue to a topic.
    async fn subscribe(&self, topic: &str, queue: &str, filter_policy: Option<Value>, raw: bool);
    /// Publishes with string attributes and number attributes.
    async fn publish(
        &self,
        topic: &str,
        body: &str,
        strings: &[(&str, &str)],
        numbers: &[(&str, &str)],
    );
    /// Sends straight to a queue.
    async fn send(&self, queue: &str, body: &str);
    /// Receives up to `max` messages (no long polling).
    async fn receive(&self, queue: &str, max: u32) -> Vec<Delivered>;
    /// Deletes by receipt handle.
    async fn delete(&self, queue: &str, receipt: &str);
    /// Changes a received message's visibility timeout.
    async fn change_visibility(&self, queue: &str, receipt: &str, seconds: u32);
}

/// Runs every messaging check: visibility timeout, receive counts and redrive, deletion,
/// filter policies and raw versus wrapped delivery. No check waits for time to pass: a
/// visibility timeout is ended with `ChangeMessageVisibility(0)`, as a consumer would.
pub async fn messaging_suite(m: &dyn Messaging, ns: &str) {
    visibility_and_receive_counts(m, ns).await;
    redrive_after_max_receive_count(m, ns).await;
    filter_policies_select_subscribers(m, ns).await;
}

async fn visibility_and_receive_counts(m: &dyn Messaging, ns: &str) {
    let q = format!("{ns}-vis");
    m.create_queue(&q, 30, None).await;
    m.send(&q, "hello").await;
    let first = m.receive(&q, 10).await;
    assert_eq!(first.len(), 1, "a sent message is received");
    assert_eq!(first[0].receive_count, 1);
    assert!(
        m.receive(&q, 10).await.is_empty(),
        "a received message is invisible for its visibility timeout"
    );
    m.change_visibility(&q, &first[0].receipt, 0).await;
    let second = m.receive(&q, 10).await;
    assert_eq!(second.len(), 1, "visible again once its visibility ends");
    assert_eq!(second[0].receive_count, 2, "each receive counts");
    m.delete(&q, &second[0].receipt).await;
    assert!(
        m.receive(&q, 10).await.is_empty(),
        "a deleted message is gone"
    );
}

async fn redrive_after_max_receive_count(m: &dyn Messaging, ns: &str) {
    let dlq = format!("{ns}-dlq");
    let q = format!("{ns}-src");
    m.create_queue(&dlq, 30, None).await;
    m.create_queue(&q, 30, Some((&dlq, 2))).await;
    m.send(&q, "poison").await;
    for n in 1..=2 {
        let got = m.receive(&q, 10).await;
        assert_eq!(got.len(), 1, "receive {n} of maxReceiveCount 2 delivers");
        m.change_visibility(&q, &got[0].receipt, 0).await;
    }
    assert!(
        m.receive(&q, 10).await.is_empty(),
        "the third receive moves it to the DLQ instead"
    );
    let dead = m.receive(&dlq, 10).await;
    assert_eq!(dead.len(), 1, "the message is in the DLQ");
    assert_eq!(dead[0].body, "poison");
}

async fn filter_policies_select_subscribers(m: &dyn Messaging, ns: &str) {
    let topic = format!("{ns}-topic");
    m.create_topic(&topic).await;
    let subs: Vec<(&str, Option<Value>, bool)> = vec![
        (
            "exact",
            Some(serde_json::json!({"type": ["order.placed", "order.cancelled"]})),
            true,
        ),
        (
            "prefix",
            Some(serde_json::json!({"type": [{"prefix": "inventory."}]})),
            true,
        ),
        (
            "butnot",
            Some(serde_json::json!({"type": [{"anything-but": ["order.placed"]}]})),
            true,
        ),
        (
            "exists",
            Some(serde_json::json!({"flag": [{"exists": true}]})),
            true,
        ),
        (
            "numeric",
            Some(serde_json::json!({"amount": [{"numeric": [">", 100, "<=", 200]}]})),
            true,
        ),
        ("all", None, false),
    ];
    for (name, policy, raw) in &subs {
        let q = format!("{ns}-{name}");
        m.create_queue(&q, 30, None).await;
        m.subscribe(&topic, &q, policy.clone(), *raw).await;
    }
    m.publish(&topic, "m1", &[("type", "order.placed")], &[])
        .await;
    m.publish(
        &topic,
        "m2",
        &[("type", "inventory.reserved"), ("flag", "x")],
        &[],
    )
    .await;
    m.publish(
        &topic,
        "m3",
        &[("type", "order.cancelled")],
        &[("amount", "150")],
    )
    .await;
    m.publish(
        &topic,
        "m4",
        &[("type", "payment.captured")],
        &[("amount", "250")],
    )
    .await;

    let want: [(&str, &[&str]); 5] = [
        ("exact", &["m1", "m3"]),
        ("prefix", &["m2"]),
        ("butnot", &["m2", "m3", "m4"]),
        ("exists", &["m2"]),
        ("numeric", &["m3"]),
    ];
    for (name, bodies) in want {
        let mut got: Vec<String> = drain(m, &format!("{ns}-{name}"))
            .await
            .into_iter()
            .map(|d| d.body)
            .collect();
        got.sort();
        assert_eq!(got, bodies, "subscription {name}");
    }
    let all = drain(m, &format!("{ns}-all")).await;
    assert_eq!(all.len(), 4, "no policy: every message");
    let wrapped: Value = serde_json::from_str(&all[0].body)
        .expect("a non-raw delivery is the SNS notification JSON");
    assert_eq!(wrapped["Type"], "Notification");
    assert!(
        wrapped["Message"]
            .as_str()
            .is_some_and(|b| b.starts_with('m')),
        "the notification carries the message"
    );
    assert!(
        wrapped["MessageAttributes"]["type"]["Value"].is_string(),
        "and its attributes"
    );
}

async fn drain(m: &dyn Messaging, queue: &str) -> Vec<Delivered> {
    let mut out = Vec::new();
    loop {
        let got = m.receive(queue, 10).await;
        if got.is_empty() {
            return out;
        }
        for d in got {
            m.delete(queue, &d.receipt).await;
            out.push(d);
        }
    }
}

/// Runs every secret-store check: `admin` creates and rotates, `store` reads, as a deploy
/// and a function do.
pub async fn secret_suite(
    store: &dyn crate::secrets::SecretStore,
    admin: &dyn crate::secrets::SecretAdmin,
    ns: &str,
) {
    use crate::secrets::SecretError;
    let name = format!("{ns}-webhook-secret");
    let arn = admin
        .ensure(&name, "first-value-0001")
        .await
        .expect("create");
    let read = store.versions(&arn).await.expect("read by ARN");
    assert_eq!(read.current.expose(), "first-value-0001");
    assert_eq!(read.previous, None, "a new secret has no previous value");
    assert_eq!(
        store.versions(&name).await.expect("read by name"),
        read,
        "a name reads as its ARN"
    );
    assert_eq!(
        admin
            .ensure(&name, "other-value-0002")
            .await
            .expect("again"),
        arn,
        "creating again is the same secret"
    );
    assert_eq!(
        store.versions(&arn).await.unwrap().current.expose(),
        "first-value-0001",
        "creating again keeps the value"
    );

    admin.put(&arn, "second-value-0002").await.expect("rotate");
    let rotated = store.versions(&arn).await.expect("read rotated");
    assert_eq!(rotated.current.expose(), "second-value-0002");
    assert_eq!(
        rotated.previous.as_ref().map(|p| p.expose()),
        Some("first-value-0001"),
        "the value before the rotation stays readable as the previous"
    );
    admin.put(&name, "third-value-0003").await.expect("by name");
    let again = store.versions(&arn).await.unwrap();
    assert_eq!(
        (
            again.current.expose(),
            again.previous.as_ref().map(|p| p.expose())
        ),
        ("third-value-0003", Some("second-value-0002"))
    );

    let listed = admin.list(ns).await.expect("list");
    assert!(
        listed.iter().any(|(a, n)| a == &arn && n == &name),
        "listed by prefix: {listed:?}"
    );
    let absent = format!("{ns}-absent");
    assert!(
        matches!(store.versions(&absent).await, Err(SecretError::NotFound(_))),
        "an unknown secret is NotFound"
    );
    assert!(
        matches!(
            admin.put(&absent, "value-value-0004").await,
            Err(SecretError::NotFound(_))
        ),
        "rotating an unknown secret is NotFound, not a creation"
    );
}
