//! SQS and SNS semantics of the embedded engine, on a simulated clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_embedded::filter::{Attribute, Scope};
use bazaar_embedded::{Engine, QueueConfig, Redrive, Subscription};
use bazaar_platform::clock::ManualClock;
use chrono::Duration;
use serde_json::json;

fn engine() -> (Arc<Engine>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_epoch());
    (Engine::in_memory(clock.clone()).unwrap(), clock)
}

fn queue_with_dlq(engine: &Engine, name: &str, max_receive: u32) {
    engine
        .create_queue(QueueConfig::new(format!("{name}-dlq")))
        .unwrap();
    let mut q = QueueConfig::new(name);
    q.visibility_timeout = 30;
    q.redrive = Some(Redrive {
        dead_letter_queue: format!("{name}-dlq"),
        max_receive_count: max_receive,
    });
    engine.create_queue(q).unwrap();
}

fn no_attrs() -> BTreeMap<String, Attribute> {
    BTreeMap::new()
}

#[test]
fn a_received_message_is_invisible_until_its_visibility_timeout_passes() {
    let (engine, clock) = engine();
    queue_with_dlq(&engine, "q", 5);
    engine.send("q", "hello", no_attrs(), None, None).unwrap();

    let first = engine.receive("q", 10, None).unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        engine.receive("q", 10, None).unwrap().is_empty(),
        "in flight: not visible"
    );
    assert_eq!(engine.stats("q").unwrap().in_flight, 1);

    clock.advance(Duration::seconds(29));
    assert!(
        engine.receive("q", 10, None).unwrap().is_empty(),
        "29 s later: still invisible"
    );
    clock.advance(Duration::seconds(1));
    let again = engine.receive("q", 10, None).unwrap();
    assert_eq!(again.len(), 1, "visible again after 30 s");
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[0].message_id, first[0].message_id);
}

#[test]
fn only_the_latest_receipt_handle_deletes() {
    let (engine, clock) = engine();
    queue_with_dlq(&engine, "q", 5);
    engine.send("q", "m", no_attrs(), None, None).unwrap();
    let first = engine.receive("q", 1, None).unwrap().remove(0);
    clock.advance(Duration::seconds(30));
    let second = engine.receive("q", 1, None).unwrap().remove(0);

    assert!(
        !engine.delete("q", &first.receipt_handle).unwrap(),
        "a stale handle deletes nothing"
    );
    assert!(engine.delete("q", &second.receipt_handle).unwrap());
    assert_eq!(engine.stats("q").unwrap(), Default::default());
}

#[test]
fn a_message_moves_to_the_dlq_when_a_receive_would_exceed_max_receive_count() {
    let (engine, clock) = engine();
    queue_with_dlq(&engine, "q", 3);
    let id = engine.send("q", "poison", no_attrs(), None, None).unwrap();

    for n in 1..=3 {
        let got = engine.receive("q", 10, None).unwrap();
        assert_eq!(got.len(), 1, "receive {n} delivers");
        assert_eq!(got[0].receive_count, n);
        clock.advance(Duration::seconds(30));
    }
    assert!(
        engine.receive("q", 10, None).unwrap().is_empty(),
        "the fourth receive moves it instead"
    );

    let dead = engine.peek("q-dlq").unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].message_id, id,
        "a redriven message keeps its SQS id"
    );
    assert_eq!(dead[0].body, "poison");
    assert_eq!(
        engine.stats("q").unwrap().visible + engine.stats("q").unwrap().in_flight,
        0
    );
}

#[test]
fn change_visibility_to_zero_makes_a_message_visible_at_once() {
    let (engine, _clock) = engine();
    queue_with_dlq(&engine, "q", 5);
    engine.send("q", "m", no_attrs(), None, None).unwrap();
    let m = engine.receive("q", 1, None).unwrap().remove(0);
    assert!(engine.change_visibility("q", &m.receipt_handle, 0).unwrap());
    assert_eq!(engine.receive("q", 1, None).unwrap().len(), 1);
}

#[test]
fn a_delayed_queue_holds_messages_back() {
    let (engine, clock) = engine();
    let mut q = QueueConfig::new("slow");
    q.delay = 10;
    engine.create_queue(q).unwrap();
    engine.send("slow", "m", no_attrs(), None, None).unwrap();
    assert!(engine.receive("slow", 1, None).unwrap().is_empty());
    assert_eq!(engine.stats("slow").unwrap().delayed, 1);
    clock.advance(Duration::seconds(10));
    assert_eq!(engine.receive("slow", 1, None).unwrap().len(), 1);
}

#[test]
fn receive_takes_at_most_ten_and_in_send_order() {
    let (engine, _) = engine();
    engine.create_queue(QueueConfig::new("q")).unwrap();
    for i in 0..15 {
        engine
            .send("q", &format!("m{i}"), no_attrs(), None, None)
            .unwrap();
    }
    assert!(engine.receive("q", 11, None).is_err());
    let got: Vec<_> = engine
        .receive("q", 10, None)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(got, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[test]
fn fifo_groups_are_served_in_order_and_one_in_flight_blocks_its_group() {
    let (engine, _) = engine();
    let mut q = QueueConfig::new("q.fifo");
    q.content_based_deduplication = true;
    engine.create_queue(q).unwrap();
    for (g, m) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2")] {
        engine.send("q.fifo", m, no_attrs(), Some(g), None).unwrap();
    }
    assert!(
        engine.send("q.fifo", "x", no_attrs(), None, None).is_err(),
        "FIFO needs a group id"
    );

    let first: Vec<_> = engine
        .receive("q.fifo", 1, None)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(first, ["a1"]);
    let next: Vec<_> = engine
        .receive("q.fifo", 10, None)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        next,
        ["b1", "b2"],
        "group a is blocked while a1 is in flight"
    );
}

#[test]
fn fifo_drops_a_duplicate_within_five_minutes() {
    let (engine, clock) = engine();
    engine.create_queue(QueueConfig::new("q.fifo")).unwrap();
    engine
        .send("q.fifo", "m", no_attrs(), Some("g"), Some("d1"))
        .unwrap();
    engine
        .send("q.fifo", "m", no_attrs(), Some("g"), Some("d1"))
        .unwrap();
    assert_eq!(engine.peek("q.fifo").unwrap().len(), 1);
    clock.advance(Duration::minutes(5));
    engine
        .send("q.fifo", "m", no_attrs(), Some("g"), Some("d1"))
        .unwrap();
    assert_eq!(engine.peek("q.fifo").unwrap().len(), 2);
}

#[test]
fn sns_fans_out_through_filter_policies_with_raw_and_wrapped_delivery() {
    let (engine, _) = engine();
    engine.create_topic("order");
    for q in ["saga", "archive", "notifier"] {
        engine.create_queue(QueueConfig::new(q)).unwrap();
    }
    let policy = |p: serde_json::Value| Some(p);
    engine
        .subscribe(
            "order",
            Subscription {
                queue: "saga".into(),
                filter_policy: policy(json!({"type": ["order.placed"]})),
                scope: Scope::MessageAttributes,
                raw: true,
            },
        )
        .unwrap();
    engine
        .subscribe(
            "order",
            Subscription {
                queue: "archive".into(),
                filter_policy: None,
                scope: Scope::MessageAttributes,
                raw: false,
            },
        )
        .unwrap();
    engine
        .subscribe(
            "order",
            Subscription {
                queue: "notifier".into(),
                filter_policy: policy(json!({"type": [{"anything-but": ["order.placed"]}]})),
                scope: Scope::MessageAttributes,
                raw: true,
            },
        )
        .unwrap();

    let attrs = |t: &str| BTreeMap::from([("type".to_string(), Attribute::string(t))]);
    engine
        .publish(
            "arn:aws:sns:local:000000000000:order",
            r#"{"n":1}"#,
            &attrs("order.placed"),
        )
        .unwrap();
    engine
        .publish("order", r#"{"n":2}"#, &attrs("order.confirmed"))
        .unwrap();

    let saga = engine.peek("saga").unwrap();
    assert_eq!(saga.len(), 1);
    assert_eq!(
        saga[0].body, r#"{"n":1}"#,
        "raw delivery: the body is the message"
    );
    assert_eq!(
        saga[0].attributes["type"].value, "order.placed",
        "raw delivery: attributes carried over"
    );
    let notifier: Vec<_> = engine
        .peek("notifier")
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(notifier, [r#"{"n":2}"#]);
    let archive = engine.peek("archive").unwrap();
    assert_eq!(archive.len(), 2);
    let wrapped: serde_json::Value = serde_json::from_str(&archive[0].body).unwrap();
    assert_eq!(wrapped["Type"], "Notification");
    assert_eq!(wrapped["Message"], r#"{"n":1}"#);
    assert_eq!(
        wrapped["MessageAttributes"]["type"]["Value"],
        "order.placed"
    );
}

#[test]
fn an_invalid_filter_policy_is_refused_at_subscription() {
    let (engine, _) = engine();
    engine.create_topic("t");
    engine.create_queue(QueueConfig::new("q")).unwrap();
    let bad = Subscription {
        queue: "q".into(),
        filter_policy: Some(json!({"type": "not-a-list"})),
        scope: Scope::MessageAttributes,
        raw: true,
    };
    assert!(engine.subscribe("t", bad).is_err());
}

#[test]
fn a_message_over_256_kib_is_refused() {
    let (engine, _) = engine();
    engine.create_queue(QueueConfig::new("q")).unwrap();
    assert!(
        engine
            .send("q", &"x".repeat(256 * 1024 + 1), no_attrs(), None, None)
            .is_err()
    );
}

#[test]
fn data_survives_reopening_the_file() {
    let path = std::env::temp_dir().join(format!("bazaar-reopen-{}/s.sqlite", std::process::id()));
    let clock = Arc::new(ManualClock::at_epoch());
    {
        let e = Engine::open(&path, clock.clone()).unwrap();
        e.create_queue(QueueConfig::new("q")).unwrap();
        e.send("q", "kept", no_attrs(), None, None).unwrap();
    }
    let e = Engine::open(&path, clock).unwrap();
    e.create_queue(QueueConfig::new("q")).unwrap();
    assert_eq!(e.receive("q", 1, None).unwrap()[0].body, "kept");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_handle_the_engine_did_not_give_out_deletes_nothing() {
    let (engine, _) = engine();
    queue_with_dlq(&engine, "q", 5);
    queue_with_dlq(&engine, "other", 5);
    engine.send("q", "m", no_attrs(), None, None).unwrap();
    let received = engine.receive("q", 1, None).unwrap().remove(0);
    for handle in ["", "nonsense", "1.x", "-1.x", "99999999999999999999.x"] {
        assert!(!engine.delete("q", handle).unwrap(), "{handle:?}");
        assert!(
            !engine.change_visibility("q", handle, 0).unwrap(),
            "{handle:?}"
        );
    }
    assert!(
        !engine.delete("other", &received.receipt_handle).unwrap(),
        "a handle of another queue"
    );
    assert!(engine.delete("q", &received.receipt_handle).unwrap());
}

#[test]
fn a_batch_delete_removes_what_its_current_handles_name_and_nothing_else() {
    let (engine, _) = engine();
    queue_with_dlq(&engine, "q", 5);
    queue_with_dlq(&engine, "other", 5);
    for body in ["a", "b", "c", "d"] {
        engine.send("q", body, no_attrs(), None, None).unwrap();
    }
    engine.send("other", "x", no_attrs(), None, None).unwrap();
    let first = engine.receive("q", 4, None).unwrap();
    let foreign = engine.receive("other", 1, None).unwrap().remove(0);
    assert_eq!(first.len(), 4);
    // "d" is received again once visible: its first handle is stale from then on.
    engine
        .change_visibility("q", &first[3].receipt_handle, 0)
        .unwrap();
    let again = engine.receive("q", 1, None).unwrap().remove(0);
    assert_eq!(again.body, "d");
    let deleted = engine
        .delete_all(
            "q",
            [
                first[0].receipt_handle.as_str(),
                first[1].receipt_handle.as_str(),
                first[3].receipt_handle.as_str(),
                foreign.receipt_handle.as_str(),
                "nonsense",
            ],
        )
        .unwrap();
    assert_eq!(
        deleted, 2,
        "a, b; not the stale d, the other queue's, nor nonsense"
    );
    let left: Vec<String> = engine
        .peek("q")
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(left, ["c", "d"]);
    assert_eq!(engine.peek("other").unwrap().len(), 1);
    assert_eq!(engine.delete_all("q", []).unwrap(), 0);
}

#[test]
fn a_publish_one_subscriber_would_refuse_is_delivered_nowhere() {
    // SNS checks a message against every subscription before delivering any copy; the
    // engine stores a publish's copies together, after every check.
    let (engine, _) = engine();
    engine.create_queue(QueueConfig::new("plain")).unwrap();
    engine
        .create_queue(QueueConfig::new("ordered.fifo"))
        .unwrap();
    engine.create_topic("t");
    for queue in ["plain", "ordered.fifo"] {
        engine
            .subscribe(
                "t",
                Subscription {
                    queue: queue.into(),
                    filter_policy: None,
                    scope: Scope::MessageAttributes,
                    raw: true,
                },
            )
            .unwrap();
    }
    assert!(engine.publish("t", "m", &no_attrs()).is_err());
    assert!(engine.peek("plain").unwrap().is_empty());
    assert!(engine.peek("ordered.fifo").unwrap().is_empty());
}
