//! The platform's SQS entry point on embedded ports: one bad record never fails its
//! batch-mates, a panic is contained to its record, transient failures are reported for
//! retry, and a FIFO batch stops at its first failure.

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::envelope::Origin;
use bazaar_contracts::inventory::ReserveStock;
use bazaar_contracts::{Actor, Envelope, Flags, Line, Sku};
use bazaar_embedded::engine::Received;
use bazaar_embedded::testing::Fixture;
use bazaar_platform::item::{Key, item};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::telemetry::Outcome;
use bazaar_platform::{HandlerError, Work};
use serde_json::json;

/// Records the order id in the table, except for ids that ask it to misbehave.
struct Picky;

#[async_trait]
impl Handle<ReserveStock> for Picky {
    async fn handle(&self, task: ReserveStock, work: &mut Work<'_>) -> Result<(), HandlerError> {
        match task.order_id.as_str() {
            "panic" => panic!("a bug in one record"),
            "busy" => Err(HandlerError::Transient("the dependency is down".into())),
            id => {
                work.put(item(&Key::new(format!("DONE#{id}"), "x"), json!({})), None);
                Ok(())
            }
        }
    }
}

fn envelope(order_id: &str) -> String {
    let origin = Origin {
        id: format!("env-{order_id}"),
        source: "bazaar/test".into(),
        time: chrono::Utc::now(),
        correlation_id: "c".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: Actor::system(),
        flags: Flags::default(),
    };
    Envelope::wrap(
        &ReserveStock {
            order_id: order_id.into(),
            items: vec![Line {
                sku: Sku::parse("A").unwrap(),
                quantity: 1,
            }],
        },
        origin,
    )
    .unwrap()
    .to_json()
}

fn batch(queue_arn: &str, bodies: &[String]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{i}"), "receiptHandle": format!("r{i}"), "body": b, "attributes": {"MessageGroupId": "g"}, "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "local"}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn failed(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn done(deps: &bazaar_platform::Deps, id: &str) -> bool {
    deps.table()
        .unwrap()
        .get(&Key::new(format!("DONE#{id}"), "x"))
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_panic_and_a_transient_failure_are_reported_for_their_records_only() {
    let world = Fixture::new();
    let deps = world.deps("worker", Some("t"), &[]);
    let consumer = Consumer::new(deps.clone()).on::<ReserveStock, _>(Arc::new(Picky));
    let mut future = serde_json::from_str::<serde_json::Value>(&envelope("v9")).unwrap();
    future["dataversion"] = json!(9);
    let bodies = [
        envelope("a"),
        envelope("panic"),
        envelope("b"),
        envelope("busy"),
        "{not json".to_string(),
        envelope("c"),
        future.to_string(),
    ];

    let response = consumer
        .handle_batch(batch("arn:aws:sqs:local:000000000000:q", &bodies))
        .await;

    assert_eq!(
        failed(&response),
        ["m1", "m3"],
        "the panic and the transient failure are retried; the rest are not"
    );
    for id in ["a", "b", "c"] {
        assert!(
            done(&deps, id).await,
            "{id} processed despite its batch-mates"
        );
    }
    let parked: Vec<Received> = world.parked("worker");
    let reasons: Vec<_> = parked
        .iter()
        .map(|m| m.attributes["bazaar.reason"].value.as_str())
        .collect();
    assert_eq!(
        reasons,
        ["malformed", "unknown-version"],
        "bad records are parked, not retried"
    );
    assert_eq!(
        world.metrics.count("worker", Outcome::Failed),
        1,
        "the transient failure is measured (a panic is logged)"
    );
}

#[tokio::test]
async fn a_fifo_batch_stops_at_its_first_failure() {
    let world = Fixture::new();
    let deps = world.deps("worker", Some("t"), &[]);
    let consumer = Consumer::new(deps.clone()).on::<ReserveStock, _>(Arc::new(Picky));
    let bodies = [
        envelope("a"),
        envelope("busy"),
        envelope("b"),
        envelope("c"),
    ];

    let response = consumer
        .handle_batch(batch("arn:aws:sqs:local:000000000000:q.fifo", &bodies))
        .await;

    assert_eq!(
        failed(&response),
        ["m1", "m2", "m3"],
        "the failure and everything after it are retried, in order"
    );
    assert!(done(&deps, "a").await);
    assert!(!done(&deps, "b").await, "nothing after the failure ran");
}

#[tokio::test]
async fn an_envelope_from_a_wrapped_sns_notification_is_read() {
    let world = Fixture::new();
    let deps = world.deps("worker", Some("t"), &[]);
    let consumer = Consumer::new(deps.clone()).on::<ReserveStock, _>(Arc::new(Picky));
    let wrapped = json!({"Type": "Notification", "MessageId": "x", "TopicArn": "arn:aws:sns:local:000000000000:tasks", "Message": envelope("w")}).to_string();

    let response = consumer
        .handle_batch(batch("arn:aws:sqs:local:000000000000:q", &[wrapped]))
        .await;

    assert!(failed(&response).is_empty());
    assert!(done(&deps, "w").await);
}

/// `envelope(order_id)` under another envelope id.
fn envelope_with_id(id: &str, order_id: &str) -> String {
    let mut e: serde_json::Value = serde_json::from_str(&envelope(order_id)).unwrap();
    e["id"] = json!(id);
    e.to_string()
}

#[tokio::test]
async fn an_id_processed_before_with_another_payload_is_parked_not_taken_for_a_duplicate() {
    let world = Fixture::new();
    let deps = world.deps("worker", Some("t"), &[]);
    let consumer = Consumer::new(deps.clone()).on::<ReserveStock, _>(Arc::new(Picky));
    let arn = "arn:aws:sqs:local:000000000000:q";
    let first = envelope_with_id("evt-1", "first");
    consumer
        .handle_batch(batch(arn, std::slice::from_ref(&first)))
        .await;

    // A true duplicate is acknowledged without a second effect; the same id over another
    // payload (a producer that numbered its messages from 1 again) is parked.
    let duplicate = consumer.handle_batch(batch(arn, &[first])).await;
    let reused = consumer
        .handle_batch(batch(arn, &[envelope_with_id("evt-1", "second")]))
        .await;

    assert!(failed(&duplicate).is_empty() && failed(&reused).is_empty());
    assert!(done(&deps, "first").await);
    assert!(
        !done(&deps, "second").await,
        "the reused id changed nothing"
    );
    let parked = world.parked("worker");
    assert_eq!(parked.len(), 1, "only the reuse is parked");
    assert_eq!(parked[0].attributes["bazaar.reason"].value, "id-reuse");
    assert!(
        parked[0].body.contains("second"),
        "the original body is kept"
    );
}

/// Writes the order id twice over (a put per record, keyed by the message), and breaks the
/// idempotent consumer's rules for ids that ask it to.
struct Copier;

#[async_trait]
impl Handle<ReserveStock> for Copier {
    async fn handle(&self, task: ReserveStock, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let id = task.order_id.as_str();
        work.put(item(&Key::new(format!("DONE#{id}"), "x"), json!({})), None);
        match id {
            "sends" => work.send(&task)?,
            "conditional" => work.put(
                item(&Key::new(format!("COPY#{id}"), "x"), json!({})),
                Some(bazaar_platform::item::Condition::NotExists),
            ),
            _ => work.put(item(&Key::new(format!("COPY#{id}"), "x"), json!({})), None),
        }
        Ok(())
    }
}

#[tokio::test]
async fn an_idempotent_consumer_keeps_no_inbox_and_refuses_what_would_not_repeat_safely() {
    let world = Fixture::new();
    let deps = world.deps("copier", Some("t"), &[]);
    let consumer = Consumer::new(deps.clone())
        .on::<ReserveStock, _>(Arc::new(Copier))
        .idempotent();
    let arn = "arn:aws:sqs:local:000000000000:q";

    // Delivered twice: the same two items, no inbox record.
    for _ in 0..2 {
        let response = consumer.handle_batch(batch(arn, &[envelope("a")])).await;
        assert!(failed(&response).is_empty());
    }
    let table = deps.table().unwrap();
    assert!(done(&deps, "a").await);
    assert!(table.get(&Key::new("COPY#a", "x")).await.unwrap().is_some());
    assert!(
        table
            .get(&bazaar_platform::outbox::inbox_key("copier", "env-a"))
            .await
            .unwrap()
            .is_none(),
        "no inbox record"
    );

    // Sending or writing conditionally could not be repeated safely: the record fails (and
    // goes to the DLQ after its retries), and nothing of it is written.
    let response = consumer
        .handle_batch(batch(arn, &[envelope("sends"), envelope("conditional")]))
        .await;
    assert_eq!(failed(&response), ["m0", "m1"]);
    for id in ["sends", "conditional"] {
        assert!(!done(&deps, id).await, "{id}: nothing written");
    }
}

#[tokio::test]
async fn an_event_given_as_text_is_judged_as_the_parsed_one_is() {
    use bazaar_platform::Function;
    use bazaar_platform::function::LambdaFunction;

    let world = Fixture::new();
    let deps = world.deps("worker", Some("t"), &[]);
    let function = Function::new(deps.clone())
        .sqs(Consumer::new(deps.clone()).on::<ReserveStock, _>(Arc::new(Picky)));
    let event = serde_json::to_value(batch(
        "arn:aws:sqs:local:000000000000:q",
        &[envelope("a"), envelope("busy")],
    ))
    .unwrap();

    let response = function.invoke_text(&event.to_string()).await.unwrap();
    assert_eq!(
        response,
        json!({ "batchItemFailures": [{ "itemIdentifier": "m1" }] })
    );
    assert!(done(&deps, "a").await, "the batch was processed");

    let mut malformed = event.clone();
    malformed["Records"][0]["body"] = json!(5);
    let mut foreign = event.clone();
    foreign["Records"][1]["eventSource"] = json!("aws:kinesis");
    for (case, expected) in [
        (malformed, "MalformedEvent"),
        (foreign, "UnsupportedEvent"),
        (json!({ "unexpected": "shape" }), "UnsupportedEvent"),
    ] {
        let from_text = function.invoke_text(&case.to_string()).await.unwrap_err();
        let from_value = function.invoke(case.clone()).await.unwrap_err();
        assert_eq!(from_text.error_type, expected, "{case}");
        assert_eq!(
            (from_text.error_type, from_text.message),
            (from_value.error_type, from_value.message),
            "{case}"
        );
    }
    let not_json = function.invoke_text("{not json").await.unwrap_err();
    assert_eq!(not_json.error_type, "MalformedEvent");
}

/// Changes nothing of its own and passes the task on, so that its unit of work is its inbox
/// record alone (carrying the task); on its first run another delivery of the same message
/// is handled to the end before this one commits.
struct Racer {
    consumer: std::sync::OnceLock<Consumer>,
    raced: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Handle<ReserveStock> for Racer {
    async fn handle(&self, task: ReserveStock, work: &mut Work<'_>) -> Result<(), HandlerError> {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let other = self.consumer.get().expect("set").clone();
            let response = other
                .handle_batch(batch("arn:aws:sqs:local:000000000000:q", &[envelope("a")]))
                .await;
            assert!(failed(&response).is_empty(), "the other delivery commits");
        }
        work.send(&task)
    }
}

#[tokio::test]
async fn a_unit_of_one_write_loses_the_race_to_a_duplicate_as_a_duplicate_not_a_conflict() {
    let world = Fixture::new();
    let deps = world.deps("racer", Some("t"), &["tasks"]);
    let racer = Arc::new(Racer {
        consumer: std::sync::OnceLock::new(),
        raced: std::sync::atomic::AtomicBool::new(false),
    });
    let consumer = Consumer::new(deps.clone()).on::<ReserveStock, _>(racer.clone());
    assert!(racer.consumer.set(consumer.clone()).is_ok());

    let response = consumer
        .handle_batch(batch("arn:aws:sqs:local:000000000000:q", &[envelope("a")]))
        .await;

    // The later commit finds the inbox record the other wrote: acknowledged at once as a
    // duplicate (not re-run as a conflict until its attempts run out), and the task went out
    // once.
    assert!(failed(&response).is_empty());
    assert_eq!(world.sent("tasks").len(), 1);
    assert!(world.parked("racer").is_empty());
    let record = deps
        .table()
        .unwrap()
        .get(&bazaar_platform::outbox::inbox_key("racer", "env-a"))
        .await
        .unwrap()
        .expect("processed");
    assert!(record.get("outbox").is_none(), "what it carried was sent");
}

/// Notes an order once: reads its record, and writes it only if absent. Sends the task on
/// for an id that asks it to (which a self-guarded handler may not); for `raced`, another
/// delivery of the same message is handled to the end between its read and its write.
struct Noter {
    consumer: std::sync::OnceLock<Consumer>,
    raced: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Handle<ReserveStock> for Noter {
    async fn handle(&self, task: ReserveStock, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let id = task.order_id.as_str();
        let key = Key::new(format!("DONE#{id}"), "x");
        if work.table()?.get(&key).await?.is_some() {
            return Ok(());
        }
        if id == "sends" || id == "refused" {
            work.send(&task)?;
        }
        if id == "raced" && !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let other = self.consumer.get().expect("set").clone();
            let response = other
                .handle_batch(batch("arn:aws:sqs:local:000000000000:q", &[envelope(id)]))
                .await;
            assert!(failed(&response).is_empty(), "the other delivery commits");
        }
        work.put(
            item(&key, json!({})),
            Some(bazaar_platform::item::Condition::NotExists),
        );
        Ok(())
    }
}

#[tokio::test]
async fn a_self_guarded_handler_is_its_own_guard_and_a_hop_record_tells_trace() {
    let world = Fixture::new();
    let deps = world.deps("noter", Some("t"), &["tasks"]);
    let noter = Arc::new(Noter {
        consumer: std::sync::OnceLock::new(),
        raced: std::sync::atomic::AtomicBool::new(false),
    });
    let consumer = Consumer::new(deps.clone()).on_self_guarded::<ReserveStock, _>(noter.clone());
    assert!(noter.consumer.set(consumer.clone()).is_ok());
    let arn = "arn:aws:sqs:local:000000000000:q";
    let table = deps.table().unwrap();
    let inbox = |id: &str| bazaar_platform::outbox::inbox_key("noter", &format!("env-{id}"));
    let hop = |body: &str| {
        let e = Envelope::from_json(body).unwrap();
        async move {
            bazaar_platform::hops::find(table, "noter", &e.id, e.time)
                .await
                .unwrap()
        }
    };

    // Delivered twice (with another, in one batch): noted once, no inbox record, and the
    // batch's hop record lists it with its times.
    let a = envelope("a");
    for _ in 0..2 {
        let response = consumer
            .handle_batch(batch(arn, &[a.clone(), envelope("a2")]))
            .await;
        assert!(failed(&response).is_empty());
    }
    assert!(done(&deps, "a").await && done(&deps, "a2").await);
    assert!(table.get(&inbox("a")).await.unwrap().is_none(), "no inbox");
    let (started, processed) = hop(&a).await.expect("listed for trace");
    assert!(started <= processed);

    // An inbox record is not its guard: a message it lists still runs the handler, which
    // decides by its own record.
    table
        .put(
            bazaar_platform::item::item(&inbox("b"), json!({ "type": "inventory.reserve" })),
            None,
        )
        .await
        .unwrap();
    let response = consumer.handle_batch(batch(arn, &[envelope("b")])).await;
    assert!(failed(&response).is_empty());
    assert!(
        done(&deps, "b").await,
        "run, though an inbox record was there"
    );

    // A copy that commits between this delivery's read and its write: the write's condition
    // fails, the handler runs again on fresh reads and writes nothing. Acknowledged, not
    // parked, noted once (by the copy that won).
    let response = consumer
        .handle_batch(batch(arn, &[envelope("raced")]))
        .await;
    assert!(failed(&response).is_empty());
    assert!(world.parked("noter").is_empty());
    assert!(done(&deps, "raced").await);

    // A unit that sends is guarded by its inbox record, which carries what it sends until
    // published; a copy changes nothing and sends nothing again.
    let sends = envelope("sends");
    for _ in 0..2 {
        let response = consumer
            .handle_batch(batch(arn, std::slice::from_ref(&sends)))
            .await;
        assert!(failed(&response).is_empty());
    }
    assert!(done(&deps, "sends").await);
    assert_eq!(world.sent("tasks").len(), 1, "sent once");
    let record = table.get(&inbox("sends")).await.unwrap().expect("guarded");
    assert!(record.get("outbox").is_none(), "cleared once published");
}

/// Records the order and passes the task on.
struct Passer;

#[async_trait]
impl Handle<ReserveStock> for Passer {
    async fn handle(&self, task: ReserveStock, work: &mut Work<'_>) -> Result<(), HandlerError> {
        work.put(
            item(&Key::new(format!("DONE#{}", task.order_id), "x"), json!({})),
            None,
        );
        work.send(&task)
    }
}

/// Counts publish calls, and refuses any that holds the task of order `refused`.
struct Counting {
    inner: Arc<dyn bazaar_platform::ports::Publisher>,
    calls: std::sync::Mutex<Vec<usize>>,
    refuse: std::sync::atomic::AtomicBool,
}

/// `deps` with its publisher wrapped in a [`Counting`] one.
fn counting(deps: Arc<bazaar_platform::Deps>) -> (Arc<bazaar_platform::Deps>, Arc<Counting>) {
    let mut own = Arc::try_unwrap(deps).ok().expect("the only reference");
    let counting = Arc::new(Counting {
        inner: own.publisher.clone(),
        calls: std::sync::Mutex::new(Vec::new()),
        refuse: std::sync::atomic::AtomicBool::new(true),
    });
    own.publisher = counting.clone();
    (Arc::new(own), counting)
}

#[async_trait]
impl bazaar_platform::ports::Publisher for Counting {
    async fn publish_encoded(
        &self,
        messages: &bazaar_platform::ports::Encoded<'_>,
    ) -> Result<(), bazaar_platform::ports::PublishError> {
        self.calls.lock().unwrap().push(messages.len());
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst)
            && messages
                .envelopes()
                .iter()
                .any(|e| e.data.json().contains("\"refused\""))
        {
            return Err(bazaar_platform::ports::PublishError::Unavailable(
                "refused".into(),
            ));
        }
        self.inner.publish_encoded(messages).await
    }
}

#[tokio::test]
async fn a_batch_publishes_what_its_records_send_together_and_one_record_fails_alone() {
    let world = Fixture::new();
    let (deps, counting) = counting(world.deps("passer", Some("t"), &["tasks"]));
    let consumer = Consumer::new(deps.clone()).on::<ReserveStock, _>(Arc::new(Passer));
    let arn = "arn:aws:sqs:local:000000000000:q";
    let table = deps.table().unwrap();
    let carried = |id: &str| {
        let key = bazaar_platform::outbox::inbox_key("passer", &format!("env-{id}"));
        async move {
            table
                .get(&key)
                .await
                .unwrap()
                .expect("processed")
                .contains_key("outbox")
        }
    };

    // Five records, one task each: one publish of five.
    let bodies: Vec<String> = (0..5).map(|i| envelope(&format!("o{i}"))).collect();
    let response = consumer.handle_batch(batch(arn, &bodies)).await;
    assert!(failed(&response).is_empty());
    assert_eq!(*counting.calls.lock().unwrap(), [5]);
    assert_eq!(world.sent("tasks").len(), 5);
    for i in 0..5 {
        assert!(
            !carried(&format!("o{i}")).await,
            "o{i}: cleared once published"
        );
    }

    // One task cannot be published: the batch's publish fails, each record then publishes
    // alone; only that record fails, and its inbox record keeps the task for its redelivery.
    counting.calls.lock().unwrap().clear();
    let bodies = [envelope("p0"), envelope("refused"), envelope("p2")];
    let response = consumer.handle_batch(batch(arn, &bodies)).await;
    assert_eq!(failed(&response), ["m1"]);
    assert_eq!(*counting.calls.lock().unwrap(), [3, 1, 1, 1]);
    assert_eq!(world.sent("tasks").len(), 7);
    assert!(!carried("p0").await && !carried("p2").await);
    assert!(carried("refused").await, "kept for the redelivery to send");
}

#[tokio::test]
async fn a_self_guarded_unit_that_sent_but_did_not_publish_sends_at_its_redelivery() {
    let world = Fixture::new();
    let (deps, counting) = counting(world.deps("noter", Some("t"), &["tasks"]));
    let noter = Arc::new(Noter {
        consumer: std::sync::OnceLock::new(),
        raced: std::sync::atomic::AtomicBool::new(false),
    });
    let consumer = Consumer::new(deps.clone()).on_self_guarded::<ReserveStock, _>(noter);
    let arn = "arn:aws:sqs:local:000000000000:q";
    let body = envelope("refused");

    // Committed, not published: retried, its inbox record carrying the task.
    let response = consumer
        .handle_batch(batch(arn, std::slice::from_ref(&body)))
        .await;
    assert_eq!(failed(&response), ["m0"]);
    assert!(done(&deps, "refused").await);
    assert!(world.sent("tasks").is_empty());

    // The redelivery: the handler finds its record and changes nothing; the task it owed is
    // sent from the inbox record, once.
    counting
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        let response = consumer
            .handle_batch(batch(arn, std::slice::from_ref(&body)))
            .await;
        assert!(failed(&response).is_empty());
    }
    assert_eq!(world.sent("tasks").len(), 1);
}

/// Moves an order on once and passes the task on; refuses (permanently) an order it moved
/// already, as a saga refuses an input its state has left behind. Counts its runs.
struct Mover(std::sync::atomic::AtomicUsize);

#[async_trait]
impl Handle<ReserveStock> for Mover {
    async fn handle(&self, task: ReserveStock, work: &mut Work<'_>) -> Result<(), HandlerError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = Key::new(format!("DONE#{}", task.order_id), "x");
        if work.table()?.get(&key).await?.is_some() {
            return Err(HandlerError::permanent("moved-on", "the order moved on"));
        }
        work.put(item(&key, json!({})), None);
        work.send(&task)
    }
}

#[tokio::test]
async fn without_the_inbox_read_a_copy_is_found_at_its_commit_or_its_failure() {
    let world = Fixture::new();
    let deps = world.deps("mover", Some("t"), &["tasks"]);
    let mover = Arc::new(Mover(Default::default()));
    let consumer = Consumer::new(deps.clone())
        .on::<ReserveStock, _>(mover.clone())
        .without_inbox_read();
    let arn = "arn:aws:sqs:local:000000000000:q";
    let body = envelope("a");

    // Three deliveries: the handler runs each time (no read before it); the copies fail on
    // the state the first moved on, and are taken for what they are, copies: acknowledged,
    // not parked, nothing sent again.
    for _ in 0..3 {
        let response = consumer
            .handle_batch(batch(arn, std::slice::from_ref(&body)))
            .await;
        assert!(failed(&response).is_empty());
    }
    assert_eq!(mover.0.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(world.parked("mover").is_empty());
    assert_eq!(world.sent("tasks").len(), 1);

    // The same handler with the read: a copy does not run it.
    let read = Arc::new(Mover(Default::default()));
    let consumer = Consumer::new(deps.clone()).on::<ReserveStock, _>(read.clone());
    let response = consumer.handle_batch(batch(arn, &[body])).await;
    assert!(failed(&response).is_empty());
    assert_eq!(read.0.load(std::sync::atomic::Ordering::SeqCst), 0);
}
