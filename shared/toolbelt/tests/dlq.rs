//! Dead letters end to end, the same scenario on the local stack and on an AWS API (moto,
//! started by `scripts/test`): poison messages of three kinds are parked by the notifier, the
//! toolbelt lists them in three groups, the notifier is fixed, one group is moved back and
//! processed exactly once, the other groups stay, and every move leaves one audit record.
//!
//! The notifier is replaced by a consumer with a "bug": it refuses customers whose name starts
//! with `vip` until `fixed` is set, as a deployment would fix it. Everything else is the real
//! platform (inbox, parking with reasons) on the real adapters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bazaar_contracts::envelope::Origin;
use bazaar_contracts::orders::OrderConfirmed;
use bazaar_contracts::{Actor, Envelope, Flags};
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::clock::ManualClock;
use bazaar_platform::item::{Key, Query, item};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::telemetry::CollectedMetrics;
use bazaar_platform::{Deps, Function, HandlerError, Work};
use bazaar_toolbelt::backend::Outgoing;
use bazaar_toolbelt::dlq::{self, Observer, Quiet, Selection};
use bazaar_toolbelt::target::QueueRef;
use bazaar_toolbelt::{LocalBackend, Target};
use serde_json::json;

/// Orders confirmed, by order id: how many times the handler ran to completion.
type Runs = Arc<Mutex<HashMap<String, usize>>>;

struct Note {
    fixed: Arc<AtomicBool>,
    runs: Runs,
}

#[async_trait]
impl Handle<OrderConfirmed> for Note {
    async fn handle(&self, m: OrderConfirmed, work: &mut Work<'_>) -> Result<(), HandlerError> {
        if !self.fixed.load(Ordering::SeqCst) && m.customer.starts_with("vip") {
            return Err(HandlerError::permanent(
                "no-template",
                format!("no notification template for customer {}", m.customer),
            ));
        }
        let key = Key::new(format!("NOTE#{}", m.order_id), work.new_id());
        work.put(item(&key, json!({ "order_id": m.order_id })), None);
        *self.runs.lock().unwrap().entry(m.order_id).or_default() += 1;
        Ok(())
    }
}

fn notifier_under_test(deps: Arc<Deps>, fixed: Arc<AtomicBool>, runs: Runs) -> Function {
    Function::new(deps.clone())
        .sqs(Consumer::new(deps).on::<OrderConfirmed, _>(Arc::new(Note { fixed, runs })))
}

fn template() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

enum Runner {
    Local(Arc<Stack>),
    Aws(bazaar_localstack::aws::SqsPoller),
}

struct World {
    target: Target,
    runner: Runner,
    fixed: Arc<AtomicBool>,
    runs: Runs,
    clock: Option<Arc<ManualClock>>,
    stage: Option<String>,
}

impl World {
    fn local() -> World {
        let fixed = Arc::new(AtomicBool::new(false));
        let runs: Runs = Default::default();
        let model = StackModel::load_local(&template(), &BTreeMap::new()).unwrap();
        let mut options = StackOptions::simulated(
            Arc::new(ScriptedFaults::new()),
            Arc::new(CollectedMetrics::default()),
        );
        let clock = options.manual_clock.clone();
        let (f, r) = (fixed.clone(), runs.clone());
        options.constructors.insert(
            "notifier",
            Arc::new(move |deps| Ok(notifier_under_test(deps, f.clone(), r.clone()))),
        );
        let stack = Stack::build(model.clone(), options).unwrap();
        let backend = Arc::new(LocalBackend::new(stack.engine().clone(), "test"));
        World {
            target: Target::new(model, backend),
            runner: Runner::Local(stack),
            fixed,
            runs,
            clock,
            stage: None,
        }
    }

    async fn aws(endpoint: &str) -> World {
        let fixed = Arc::new(AtomicBool::new(false));
        let runs: Runs = Default::default();
        let config = bazaar_aws::testing::config(endpoint);
        let stage = bazaar_aws::testing::unique("dlq");
        let model = StackModel::load_local(
            &template(),
            &BTreeMap::from([("Stage".to_string(), stage.clone())]),
        )
        .unwrap();
        let provisioned = bazaar_localstack::aws::provision(&model, &config)
            .await
            .unwrap();
        let def = &model.functions["NotifierFunction"];
        let mut deps =
            bazaar_aws::aws_deps(&config, "notifier", provisioned.rebind(&def.environment));
        deps.metrics = Arc::new(CollectedMetrics::default());
        let queue = &model.queues["NotifierQueue"].name;
        let poller = bazaar_localstack::aws::SqsPoller::new(
            &config,
            &provisioned.queue_urls[queue],
            &provisioned.queue_arns[queue],
            10,
            Arc::new(notifier_under_test(
                Arc::new(deps),
                fixed.clone(),
                runs.clone(),
            )),
        );
        let backend = Arc::new(bazaar_toolbelt::aws::AwsBackend::new(&config));
        World {
            target: Target::new(model, backend),
            runner: Runner::Aws(poller),
            fixed,
            runs,
            clock: None,
            stage: Some(stage),
        }
    }

    async fn deliver(&self) {
        match &self.runner {
            Runner::Local(stack) => stack.settle().await,
            Runner::Aws(poller) => {
                poller.drain().await.unwrap();
            }
        }
    }

    fn queue(&self) -> QueueRef {
        self.target.queue("notifier").unwrap()
    }

    fn dlq(&self) -> QueueRef {
        self.target.dead_letter_queue("notifier").unwrap()
    }

    /// Sends to the notifier's queue what SNS's raw delivery would.
    async fn send(&self, body: String, attributes: BTreeMap<String, String>) {
        self.target
            .backend
            .send(
                &self.queue().name,
                &Outgoing {
                    body,
                    attributes,
                    group_id: None,
                    dedup_id: None,
                },
            )
            .await
            .unwrap();
    }

    async fn confirm(&self, order_id: &str, customer: &str) -> Envelope {
        let message: OrderConfirmed = serde_json::from_value(json!({
            "order_id": order_id, "customer": customer,
            "items": [{ "sku": "MUG-01", "quantity": 1 }],
        }))
        .unwrap();
        let envelope = Envelope::wrap(
            &message,
            Origin {
                id: format!("env-{order_id}"),
                source: "bazaar/orders-saga".into(),
                time: self.target.backend.now(),
                correlation_id: order_id.to_string(),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                actor: Actor::system(),
                flags: Flags::default(),
            },
        )
        .unwrap();
        let (body, attributes) = bazaar_platform::ports::encode_for_publish(&envelope).unwrap();
        self.send(body, attributes).await;
        envelope
    }

    async fn notes(&self, order_id: &str) -> usize {
        let table = self
            .target
            .backend
            .table(&self.target.model.tables["NotificationsTable"]);
        table
            .query_all(Query::partition(format!("NOTE#{order_id}")))
            .await
            .unwrap()
            .len()
    }

    async fn dlq_depth(&self) -> (u64, u64) {
        let c = self.target.backend.counts(&self.dlq().name).await.unwrap();
        (c.visible, c.in_flight)
    }
}

/// Sends, interleaved: 40 confirmations the buggy notifier refuses (`vip` customers), 35
/// bodies that are not JSON, 25 confirmations whose order id breaks the contract, and 20
/// good ones. Returns the `vip` order ids.
async fn poison(world: &World) -> Vec<String> {
    let mut vip = Vec::new();
    for k in 0..40 {
        let id = format!("ord-vip-{k:03}");
        world.confirm(&id, &format!("vip-{k}")).await;
        vip.push(id);
        if k < 35 {
            world.send(format!("{{not json {k}"), BTreeMap::new()).await;
        }
        if k < 25 {
            let envelope = Envelope {
                id: format!("env-bad-{k}"),
                source: "bazaar/orders-saga".into(),
                message_type: "order.confirmed".into(),
                data_version: 1,
                time: world.target.backend.now(),
                correlation_id: format!("bad-{k}"),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                actor: Actor::system(),
                flags: Flags::default(),
                data: json!({"order_id": format!("bad id {k}"), "customer": "c", "items": [{"sku": "MUG-01", "quantity": 1}]}).into(),
            };
            let (body, attributes) = bazaar_platform::ports::encode_for_publish(&envelope).unwrap();
            world.send(body, attributes).await;
        }
        if k < 20 {
            world.confirm(&format!("ord-ok-{k:03}"), "c").await;
        }
    }
    vip
}

fn by_group(groups: &[dlq::Group]) -> BTreeMap<(String, String), usize> {
    groups
        .iter()
        .map(|g| ((g.reason.clone(), g.message_type.clone()), g.count))
        .collect()
}

async fn three_groups_one_replayed(world: &World) {
    let vip = poison(world).await;
    world.deliver().await;
    let rows = bazaar_toolbelt::queues(&world.target).await.unwrap();
    for r in &rows {
        let expected = if r.logical_id == "NotifierQueue" {
            100
        } else {
            0
        };
        assert_eq!(r.dlq_depth, expected, "{}", r.logical_id);
    }
    // `bazaar top` reads the same queues, on either backend.
    let screen = bazaar_toolbelt::top::snapshot(&world.target, None, chrono::Duration::minutes(5))
        .await
        .unwrap();
    let notifier = screen
        .rows
        .iter()
        .find(|r| r.function == "notifier")
        .unwrap();
    assert_eq!(notifier.queue.as_ref().unwrap().dlq_depth, 100);
    let shown = bazaar_toolbelt::render::top(&screen, false);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("notifier") && l.ends_with(" !")),
        "{shown}"
    );
    for k in 0..20 {
        assert_eq!(
            world.notes(&format!("ord-ok-{k:03}")).await,
            1,
            "good ones pass"
        );
    }
    let dlq_ref = world.dlq();
    let before = dlq::letters(&world.target, &dlq_ref).await.unwrap();
    assert_eq!(before.len(), 100);
    let groups = dlq::group(&before);
    assert_eq!(
        by_group(&groups),
        BTreeMap::from([
            (("contract-violation".into(), "order.confirmed".into()), 25),
            (("malformed".into(), "unknown".into()), 35),
            (("no-template".into(), "order.confirmed".into()), 40),
        ])
    );
    assert_eq!(groups[0].reason, "no-template", "largest group first");
    assert!(groups[0].example.contains("no notification template"));
    let text = bazaar_toolbelt::render::groups(&dlq_ref.name, &groups);
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");

    // One letter in detail.
    let shown = dlq::find(&world.target, &dlq_ref, "env-ord-vip-007")
        .await
        .unwrap();
    assert_eq!(shown.reason, "no-template");
    assert_eq!(shown.function.as_deref(), Some("notifier"));
    assert_eq!(shown.correlation_id.as_deref(), Some("ord-vip-007"));
    assert!(shown.message.receive_count <= 3);

    let no_template = Selection {
        reasons: vec!["no-template".into()],
        ..Selection::default()
    };
    // A dry run moves nothing.
    let dry = dlq::replay(
        &world.target,
        &dlq_ref,
        &no_template,
        None,
        true,
        300,
        &mut Quiet,
    )
    .await
    .unwrap();
    assert_eq!(dry.planned.len(), 40);
    assert_eq!(dry.not_selected, 60);
    assert!(
        dry.planned
            .iter()
            .all(|p| p.to.as_ref().unwrap() == &world.queue())
    );
    assert_eq!(dry.moved, 0);
    assert_eq!(
        world.dlq_depth().await,
        (100, 0),
        "dry run: all still there"
    );
    let queue = world
        .target
        .backend
        .counts(&world.queue().name)
        .await
        .unwrap();
    assert_eq!((queue.visible, queue.in_flight), (0, 0));

    // The fix is deployed; ten first, then the rest of the group.
    world.fixed.store(true, Ordering::SeqCst);
    let ten = Selection {
        max: Some(10),
        ..no_template.clone()
    };
    let first = dlq::replay(&world.target, &dlq_ref, &ten, None, false, 300, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(first.moved, 10, "--max 10 moves exactly 10");
    assert_eq!(world.dlq_depth().await, (90, 0));
    let queue = world
        .target
        .backend
        .counts(&world.queue().name)
        .await
        .unwrap();
    assert_eq!(queue.visible, 10);
    let rest = dlq::replay(
        &world.target,
        &dlq_ref,
        &no_template,
        None,
        false,
        300,
        &mut Quiet,
    )
    .await
    .unwrap();
    assert_eq!((rest.moved, rest.not_selected), (30, 60));
    world.deliver().await;

    let runs = world.runs.lock().unwrap().clone();
    for id in &vip {
        assert_eq!(runs.get(id), Some(&1), "{id} processed once");
        assert_eq!(world.notes(id).await, 1, "{id}: one effect");
    }
    let after = dlq::letters(&world.target, &dlq_ref).await.unwrap();
    let ids = |ls: &[dlq::Letter]| -> BTreeSet<String> {
        ls.iter()
            .filter(|l| l.reason != "no-template")
            .map(|l| l.message.message_id.clone())
            .collect()
    };
    assert_eq!(after.len(), 60);
    assert_eq!(ids(&after), ids(&before), "the other groups are untouched");

    let audit = dlq::audit_records(&world.target).await.unwrap();
    assert_eq!(audit.len(), 40, "one audit record per message moved");
    let moved: BTreeSet<String> = audit.iter().filter_map(|r| r.envelope_id.clone()).collect();
    let expected: BTreeSet<String> = vip.iter().map(|id| format!("env-{id}")).collect();
    assert_eq!(moved, expected);
    for r in &audit {
        assert_eq!(
            (r.from.as_str(), r.to.as_str()),
            (dlq_ref.name.as_str(), world.queue().name.as_str())
        );
        assert_eq!(r.reason, "no-template");
        assert!(!r.who.is_empty() && r.who != "unknown", "{}", r.who);
    }
}

#[tokio::test]
async fn local_stack_three_groups_one_replayed_exactly_once_with_audit() {
    three_groups_one_replayed(&World::local()).await;
}

#[tokio::test]
async fn aws_api_three_groups_one_replayed_exactly_once_with_audit() {
    let Some(endpoint) = bazaar_aws::testing::endpoint() else {
        return;
    };
    let world = World::aws(&endpoint).await;
    three_groups_one_replayed(&world).await;

    // The command line on the same stack: --endpoint-url and --stage.
    let stage = world.stage.clone().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bazaar"))
            .arg("--template")
            .arg(template())
            .args(["--endpoint-url", &endpoint, "--stage", &stage])
            .args(args)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let queues = run(&["queues"]);
    assert!(
        queues
            .lines()
            .any(|l| l.starts_with("NotifierQueue") && l.contains(" 60  <- needs attention")),
        "{queues}"
    );
    let list = run(&["dlq", "list", "notifier"]);
    assert!(list.starts_with("60 dead letters"), "{list}");
    assert!(
        list.contains("malformed") && list.contains("contract-violation"),
        "{list}"
    );
}

/// Stops the replay right after its n-th send, before that message's audit record and delete:
/// the worst moment for a crash.
struct CrashAfter(usize);

impl Observer for CrashAfter {
    fn after_send(&mut self, sent: usize) -> bool {
        sent < self.0
    }
}

#[tokio::test]
async fn a_replay_killed_between_send_and_delete_loses_nothing_and_duplicates_one_message() {
    let world = World::local();
    let mut vip = Vec::new();
    for k in 0..30 {
        let id = format!("ord-vip-{k:03}");
        world.confirm(&id, &format!("vip-{k}")).await;
        vip.push(id);
    }
    world.deliver().await;
    assert_eq!(world.dlq_depth().await, (30, 0));
    world.fixed.store(true, Ordering::SeqCst);
    let dlq_ref = world.dlq();
    let all = Selection::default();

    let crashed = dlq::replay(
        &world.target,
        &dlq_ref,
        &all,
        None,
        false,
        300,
        &mut CrashAfter(12),
    )
    .await
    .unwrap();
    assert!(crashed.interrupted);
    assert_eq!(crashed.moved, 11);
    assert_eq!(
        world.dlq_depth().await,
        (0, 19),
        "the rest is held, not lost"
    );

    // Restarted after the crashed run's hold ran out.
    let clock = world.clock.as_ref().unwrap();
    clock.advance(chrono::Duration::seconds(301));
    assert_eq!(world.dlq_depth().await, (19, 0), "back once the hold ends");
    let restarted = dlq::replay(&world.target, &dlq_ref, &all, None, false, 300, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(restarted.moved, 19);
    assert_eq!(world.dlq_depth().await, (0, 0));

    // Before delivery: 31 messages for 30 orders, the one in flight at the crash twice.
    let Runner::Local(stack) = &world.runner else {
        unreachable!()
    };
    let queued = stack.engine().peek(&world.queue().name).unwrap();
    let mut per_envelope: BTreeMap<String, usize> = BTreeMap::new();
    for m in &queued {
        let e = bazaar_platform::sqs::envelope_of(&m.body).unwrap();
        *per_envelope.entry(e.id).or_default() += 1;
    }
    assert_eq!(per_envelope.len(), 30, "nothing lost");
    assert_eq!(queued.len(), 31, "at most one duplicate");

    world.deliver().await;
    for id in &vip {
        assert_eq!(world.notes(id).await, 1, "{id}: no duplicate effect");
    }
    let audit = dlq::audit_records(&world.target).await.unwrap();
    assert_eq!(
        audit.len(),
        30,
        "one audit record per message, the duplicate included"
    );
}

/// The local stack on a data folder, with the notifier under test, on a simulated clock that
/// starts at `start`.
fn file_stack(
    path: &std::path::Path,
    start: chrono::DateTime<chrono::Utc>,
    fixed: bool,
    runs: Runs,
) -> Arc<Stack> {
    let model = StackModel::load_local(&template(), &BTreeMap::new()).unwrap();
    let mut options = StackOptions::simulated(
        Arc::new(ScriptedFaults::new()),
        Arc::new(CollectedMetrics::default()),
    );
    let clock = Arc::new(ManualClock::new(start));
    options.manual_clock = Some(clock.clone());
    options.engine = bazaar_embedded::Engine::open(path, clock).unwrap();
    let fixed = Arc::new(AtomicBool::new(fixed));
    options.constructors.insert(
        "notifier",
        Arc::new(move |deps| Ok(notifier_under_test(deps, fixed.clone(), runs.clone()))),
    );
    Stack::build(model, options).unwrap()
}

/// The real thing: the `bazaar` process is killed in the middle of a replay (after its tenth
/// audit line, wherever its next message is), then the replay is run again once the killed
/// run's hold has ended.
#[tokio::test]
async fn a_replay_process_killed_midway_then_restarted_loses_nothing() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("bazaar-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("local.sqlite");
    let runs: Runs = Default::default();
    let now = chrono::Utc::now();
    let stack = file_stack(&path, now, false, runs.clone());
    let model = stack.model().clone();
    let target = Target::new(
        model.clone(),
        Arc::new(LocalBackend::new(stack.engine().clone(), "test")),
    );
    let world = World {
        target,
        runner: Runner::Local(stack.clone()),
        fixed: Arc::new(AtomicBool::new(false)),
        runs: runs.clone(),
        clock: None,
        stage: None,
    };
    let mut vip = Vec::new();
    for k in 0..30 {
        let id = format!("ord-vip-{k:03}");
        world.confirm(&id, &format!("vip-{k}")).await;
        vip.push(id);
    }
    world.deliver().await;
    assert_eq!(world.dlq_depth().await, (30, 0));
    drop(world);
    drop(stack);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .arg("--template")
        .arg(template())
        .arg("--data-dir")
        .arg(&dir)
        .args(["dlq", "replay", "notifier", "--rate", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut moved = 0;
    for line in std::io::BufReader::new(stdout).lines() {
        if line.unwrap().contains(" moved ") {
            moved += 1;
            if moved == 10 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(moved, 10);

    // Restarted after the killed run's hold ended (300 s, longer with --rate), with the fixed
    // notifier.
    let stack = file_stack(
        &path,
        chrono::Utc::now() + chrono::Duration::hours(1),
        true,
        runs.clone(),
    );
    let target = Target::new(
        model.clone(),
        Arc::new(LocalBackend::new(stack.engine().clone(), "test")),
    );
    let dlq_ref = target.dead_letter_queue("notifier").unwrap();
    let rest = dlq::replay(
        &target,
        &dlq_ref,
        &Selection::default(),
        None,
        false,
        300,
        &mut Quiet,
    )
    .await
    .unwrap();
    assert!(
        (19..=20).contains(&rest.moved),
        "moved {} after the restart",
        rest.moved
    );
    let queued = stack
        .engine()
        .peek(&model.queues["NotifierQueue"].name)
        .unwrap();
    let mut per_envelope: BTreeMap<String, usize> = BTreeMap::new();
    for m in &queued {
        let e = bazaar_platform::sqs::envelope_of(&m.body).unwrap();
        *per_envelope.entry(e.id).or_default() += 1;
    }
    assert_eq!(per_envelope.len(), 30, "nothing lost");
    assert!(
        queued.len() <= 31,
        "at most one duplicate: {}",
        queued.len()
    );
    assert!(stack.engine().peek(&dlq_ref.name).unwrap().is_empty());

    stack.settle().await;
    let notes = target.backend.table(&model.tables["NotificationsTable"]);
    for id in &vip {
        let n = notes
            .query_all(Query::partition(format!("NOTE#{id}")))
            .await
            .unwrap()
            .len();
        assert_eq!(n, 1, "{id}: one effect");
    }
    let audit = dlq::audit_records(&target).await.unwrap();
    assert_eq!(audit.len(), 30, "one audit record per message");
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}
