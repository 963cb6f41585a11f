//! The history checker (`bazaar_localstack::history`) on whole runs of the order saga: with
//! every message delivered one to five times in a random order and consumers crashing at
//! random after their commit or after their publish, the platform loses nothing, duplicates
//! no effect and does nothing unasked; the books balance. And the checker is shown to catch a
//! platform without its inbox (duplicated effects) or without its outbox (lost messages).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_localstack::faults::{RandomFaults, ScriptedFaults};
use bazaar_localstack::history::{Recorder, Report, check};
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::faults::{FaultPoint, Faults, NoFaults};
use bazaar_platform::history::Guarantees;
use bazaar_platform::telemetry::CollectedMetrics;
use common::TestStack;
use serde_json::json;

/// The consumers that carry an order from placed to final.
const SAGA: [&str; 3] = ["orders-saga", "inventory-worker", "payments-worker"];

const SKUS: [&str; 3] = ["MUG-01", "TEE-01", "LAMP-01"];

struct Run {
    s: TestStack,
    recorder: Arc<Recorder>,
}

fn run_with(guarantees: Guarantees, faults: Arc<dyn Faults>, duplicates: u32, seed: u64) -> Run {
    let model = StackModel::load_local(&common::template(), &BTreeMap::new()).unwrap();
    let recorder = Arc::new(Recorder::new());
    let metrics = Arc::new(CollectedMetrics::default());
    let mut options = StackOptions::simulated(faults, metrics.clone());
    options.history = Some(recorder.clone());
    options.guarantees = guarantees;
    let stack = Stack::build(model, options).unwrap();
    stack.engine().record_sends();
    if duplicates > 0 {
        stack.engine().set_chaos_at_most(duplicates, seed);
    }
    Run {
        s: TestStack {
            stack,
            catalogued: Default::default(),
            faults: Arc::new(ScriptedFaults::new()),
            metrics,
        },
        recorder,
    }
}

/// Places `orders` orders (two approving cards in three, one declining), lets the stack come
/// to rest, and returns the checker's report with the order ids and their tokens.
async fn saga(run: &Run, orders: usize) -> (Report, Vec<(String, &'static str)>) {
    for sku in SKUS {
        run.s.set_stock(sku, orders as i64).await;
    }
    let mut placed = Vec::new();
    for i in 0..orders {
        let token = ["tok_ok", "tok_ok", "tok_declined"][i % 3];
        let items = json!([{"sku": SKUS[i % 3], "quantity": 1}]);
        let id = run
            .s
            .placed_paying(
                &format!("customer-{}", i % 5),
                &format!("h-{i}"),
                items,
                token,
            )
            .await;
        placed.push((id, token));
    }
    run.s.stack.settle().await;
    (check(&run.s.stack, &run.recorder), placed)
}

#[tokio::test]
async fn under_duplicates_reordering_and_crashes_nothing_is_lost_duplicated_or_unexpected() {
    let seed = 7;
    let faults = Arc::new(RandomFaults::new(
        seed,
        0.05,
        &[FaultPoint::AfterCommit, FaultPoint::AfterPublish],
        // The functions a message triggers (a crash in an HTTP function is an error to the
        // caller, covered elsewhere).
        common::consumers(),
    ));
    let run = run_with(Guarantees::default(), faults.clone(), 4, seed);
    let orders = 300;
    let (report, placed) = saga(&run, orders).await;
    assert!(report.is_clean(), "{report:#?}");
    assert!(faults.crashes() > 20, "{} crashes", faults.crashes());
    assert!(report.owed > orders * 5, "{report:?}");
    assert!(report.committed >= report.owed, "{report:?}");

    // The business invariants: every order final as its card says; stock conserved; one
    // charge per order.
    for (id, token) in &placed {
        let order = run.s.order(id).await;
        let want = if *token == "tok_declined" {
            "cancelled"
        } else {
            "confirmed"
        };
        assert_eq!(order["status"], want, "{order}");
    }
    for (n, sku) in SKUS.iter().enumerate() {
        let confirmed = placed
            .iter()
            .enumerate()
            .filter(|(i, (_, t))| i % 3 == n && *t != "tok_declined")
            .count() as i64;
        let (available, reserved) = run.s.stock(sku).await;
        assert_eq!(reserved, 0, "{sku}");
        assert_eq!(run.s.committed(sku).await, confirmed, "{sku}");
        assert_eq!(available + confirmed, orders as i64, "{sku}");
    }
    let ledger = run.s.provider().ledger();
    assert_eq!(ledger.len(), orders, "one charge per order");
    println!("{orders} orders, {} crashes: {report:?}", faults.crashes());
}

#[tokio::test]
async fn without_the_inbox_check_the_checker_reports_duplicated_effects() {
    let broken = Guarantees {
        inbox: false,
        ..Guarantees::default()
    };
    let run = run_with(broken, Arc::new(NoFaults), 2, 3);
    let (report, _) = saga(&run, 30).await;
    assert!(!report.duplicated.is_empty(), "{report:#?}");
}

#[tokio::test]
async fn without_the_outbox_a_crash_after_commit_loses_messages_and_the_checker_says_so() {
    let broken = Guarantees {
        outbox: false,
        ..Guarantees::default()
    };
    // Crashes in the saga's own steps (the catalog must reach orders for any to be placed).
    let faults = Arc::new(RandomFaults::new(5, 0.2, &[FaultPoint::AfterCommit], SAGA));
    let run = run_with(broken, faults.clone(), 0, 5);
    let (report, _) = saga(&run, 30).await;
    assert!(faults.crashes() > 0);
    assert!(
        report.lost.iter().any(|l| l.contains("never published")),
        "{report:#?}"
    );
}

#[tokio::test]
async fn the_same_runs_with_every_guarantee_are_clean() {
    // The two broken runs above, with the platform whole: the checker finds nothing.
    let run = run_with(Guarantees::default(), Arc::new(NoFaults), 2, 3);
    let (report, _) = saga(&run, 30).await;
    assert!(report.is_clean(), "{report:#?}");
    let faults = Arc::new(RandomFaults::new(5, 0.2, &[FaultPoint::AfterCommit], SAGA));
    let run = run_with(Guarantees::default(), faults.clone(), 0, 5);
    let (report, _) = saga(&run, 30).await;
    assert!(faults.crashes() > 0);
    assert!(report.is_clean(), "{report:#?}");
}

#[tokio::test]
async fn faults_can_be_aimed_at_one_function_and_one_message_type() {
    let faults = Arc::new(
        RandomFaults::new(
            11,
            0.5,
            &[FaultPoint::BeforeCommit, FaultPoint::AfterCommit],
            ["orders-saga"],
        )
        .only_types(&["payment.captured"]),
    );
    let run = run_with(Guarantees::default(), faults.clone(), 0, 11);
    let (report, _) = saga(&run, 30).await;
    let crashed = faults.crashed();
    assert!(!crashed.is_empty());
    assert!(
        crashed
            .iter()
            .all(|(_, f, t)| f == "orders-saga" && t == "payment.captured"),
        "{crashed:?}"
    );
    assert!(report.is_clean(), "{report:#?}");
}

/// The checker's three other rules, each shown firing: a message sent to a consumer that it
/// neither processed nor parked (its queue purged before delivery); a consumer that committed
/// a message never sent to it (handed to it by hand under the id of another consumer's
/// message); and a publication that no committed unit of work owed.
#[tokio::test]
async fn the_checker_reports_a_lost_delivery_and_work_nobody_asked_for() {
    let run = run_with(Guarantees::default(), Arc::new(NoFaults), 0, 9);
    run.s.set_stock("MUG-01", 5).await;
    let order = run
        .s
        .placed(
            "customer-1",
            "lost",
            json!([{"sku": "MUG-01", "quantity": 1}]),
        )
        .await;
    // order.placed is in the saga's queue: it goes before the saga sees it.
    let saga_queue = run.s.queue("OrdersSagaQueue");
    let placed_id = run
        .s
        .stack
        .engine()
        .peek(&saga_queue)
        .unwrap()
        .iter()
        .find_map(|m| m.attributes.get("id").map(|a| a.value.clone()))
        .expect("order.placed waits for the saga");
    run.s.stack.engine().purge(&saga_queue).unwrap();
    run.s.stack.settle().await;

    let report = check(&run.s.stack, &run.recorder);
    assert_eq!(
        report.lost,
        [format!(
            "orders-saga neither processed nor parked {placed_id}"
        )],
        "{report:#?}"
    );

    // The notifier handles order.confirmed; one arrives under the id of the message the saga
    // was sent, which the notifier never was.
    let confirmed = bazaar_contracts::orders::OrderConfirmed {
        order_id: order.clone(),
        customer: "customer-1".into(),
        items: vec![bazaar_contracts::Line {
            sku: bazaar_contracts::Sku::parse("MUG-01").unwrap(),
            quantity: 1,
        }],
        source: None,
        total: None,
    };
    let mut envelope = bazaar_contracts::Envelope::wrap(
        &confirmed,
        bazaar_contracts::envelope::Origin {
            id: placed_id.clone(),
            source: "bazaar/test".into(),
            time: chrono::Utc::now(),
            correlation_id: "c".into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: bazaar_contracts::Actor::system(),
            flags: Default::default(),
        },
    )
    .unwrap();
    envelope.id = placed_id.clone();
    let record = json!({ "messageId": "m1", "receiptHandle": "r1", "body": envelope.to_json(),
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:local:000000000000:elsewhere", "awsRegion": "local" });
    run.s
        .stack
        .invoke("NotifierFunction", json!({ "Records": [record] }))
        .await
        .unwrap();
    // And an envelope is published that no committed work owed.
    use bazaar_platform::history::History;
    run.recorder
        .record(bazaar_platform::history::Event::Published {
            function: "rogue".into(),
            ids: vec!["published-by-nobody".into()],
        });

    let report = check(&run.s.stack, &run.recorder);
    assert_eq!(
        report.unexpected,
        [
            format!("notifier processed {placed_id}, never sent to it"),
            "published-by-nobody was published but no committed work owed it".to_string(),
        ],
        "{report:#?}"
    );
}
