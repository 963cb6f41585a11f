//! A terminal session: the `bazaar` binary on a local stack's data folder, as an operator runs
//! it. Every command's output and help must read well at 80 columns: tables and trees, not raw
//! JSON; errors say what was wrong and what to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bazaar_embedded::Engine;
use bazaar_embedded::filter::Attribute;
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::telemetry::CollectedMetrics;
use serde_json::{Value, json};

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bazaar(data: &Path, args: &[&str]) -> Run {
    bazaar_with_input(data, args, None)
}

/// [`bazaar`] with `input` on its standard input.
fn bazaar_with_input(data: &Path, args: &[&str], input: Option<&str>) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .arg("--template")
        .arg(template())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("COLUMNS", "80")
        .env_remove("BAZAAR_USER_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bazaar runs");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().expect("bazaar runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn readable(what: &str, text: &str) {
    eprintln!("$ bazaar {what}\n{text}");
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{what}: a line over 80 columns:\n{line}\n---\n{text}"
        );
    }
    let first = text.trim_start().chars().next();
    assert!(
        !matches!(first, Some('{') | Some('[')),
        "{what}: raw JSON\n{text}"
    );
}

async fn call(stack: &Stack, method: &str, path: &str, who: (&str, &str), body: Value) -> Value {
    let r = stack
        .http(
            HttpRequest::json(method, path, &body)
                .header(
                    "authorization",
                    &bazaar_embedded::identity::bearer(who.0, &[who.1]),
                )
                .header("idempotency-key", &format!("{method}:{path}")),
        )
        .await;
    assert!(
        r.status < 300,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// A data folder with one confirmed order and a few dead letters in the notifier's DLQ.
async fn data_folder() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("bazaar-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = StackModel::load_local(&template(), &BTreeMap::new()).unwrap();
    let mut options = StackOptions::simulated(
        Arc::new(ScriptedFaults::new()),
        Arc::new(CollectedMetrics::default()),
    );
    let clock = options.manual_clock.clone().unwrap();
    options.engine = Engine::open(&dir.join("local.sqlite"), clock).unwrap();
    let stack = Stack::build(model.clone(), options).unwrap();
    let merchant = ("merchant-1", "merchant");
    call(
        &stack,
        "PUT",
        "/products/MUG-01",
        merchant,
        json!({"title": "Mug", "category": "kitchen"}),
    )
    .await;
    call(
        &stack,
        "PUT",
        "/products/MUG-01/price",
        merchant,
        json!({"amount_cents": 1200, "currency": "EUR"}),
    )
    .await;
    call(
        &stack,
        "PUT",
        "/inventory/MUG-01",
        merchant,
        json!({"available": 5}),
    )
    .await;
    stack.settle().await;
    call(
        &stack,
        "POST",
        "/orders",
        ("customer-1", "customer"),
        json!({"items": [{"sku": "MUG-01", "quantity": 1}], "payment": {"token": "tok_ok"}}),
    )
    .await;
    let queue = &model.queues["NotifierQueue"].name;
    for i in 0..3 {
        stack
            .engine()
            .send(queue, &format!("not json {i}"), BTreeMap::new(), None, None)
            .unwrap();
    }
    let unknown = bazaar_contracts::Envelope {
        id: "e-1".into(),
        source: "bazaar/shipping".into(),
        message_type: "parcel.shipped".into(),
        data_version: 1,
        time: chrono::DateTime::UNIX_EPOCH,
        correlation_id: "c-1".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: bazaar_contracts::Actor::system(),
        flags: Default::default(),
        data: json!({}).into(),
    };
    stack
        .engine()
        .send(
            queue,
            &unknown.to_json(),
            BTreeMap::from([("type".to_string(), Attribute::string("parcel.shipped"))]),
            None,
            None,
        )
        .unwrap();
    stack.settle().await;
    let ops = stack.table_of("EventArchiverFunction").unwrap();
    let placed = event_archiver::archived(ops.as_ref(), &["order.placed".into()])
        .await
        .unwrap();
    let flow = placed[0].correlation_id.clone();
    (dir, flow)
}

#[tokio::test]
async fn an_operator_session_reads_well_at_80_columns() {
    let (data, flow) = data_folder().await;

    let queues = bazaar(&data, &["queues"]);
    assert_eq!(queues.code, 0, "{}", queues.stderr);
    readable("queues", &queues.stdout);
    assert!(queues.stdout.contains("NotifierQueue"));
    assert!(
        queues.stdout.contains("needs attention"),
        "{}",
        queues.stdout
    );

    let json = bazaar(&data, &["queues", "--json"]);
    let rows: Value = serde_json::from_str(&json.stdout).expect("--json is JSON");
    assert!(rows.as_array().unwrap().len() >= 8);

    let list = bazaar(&data, &["dlq", "list", "notifier"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    readable("dlq list", &list.stdout);
    assert!(list.stdout.contains("malformed"), "{}", list.stdout);
    assert!(list.stdout.contains("4 dead letters"), "{}", list.stdout);

    let ids = bazaar(&data, &["dlq", "list", "NotifierDLQ", "--ids"]);
    readable("dlq list --ids", &ids.stdout);
    let show = bazaar(&data, &["dlq", "show", "notifier", "e-1"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    readable("dlq show", &show.stdout);
    assert!(show.stdout.contains("unknown-type"), "{}", show.stdout);

    let dry = bazaar(
        &data,
        &[
            "dlq",
            "replay",
            "notifier",
            "--reason",
            "malformed",
            "--dry-run",
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    readable("dlq replay --dry-run", &dry.stdout);
    assert!(dry.stdout.contains("3 would move"), "{}", dry.stdout);

    let trace = bazaar(&data, &["trace", &flow]);
    assert_eq!(trace.code, 0, "{}", trace.stderr);
    readable("trace", &trace.stdout);
    assert!(trace.stdout.contains("order.confirmed"), "{}", trace.stdout);

    // top, once: the queues from the store; no metrics file yet, and it says so.
    let top = bazaar(&data, &["top", "--once", "--all"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    readable("top --once --all", &top.stdout);
    assert!(top.stdout.contains("NotifierQueue") || top.stdout.contains("notifier"));
    assert!(
        top.stdout.contains("No handling or business figures"),
        "{}",
        top.stdout
    );
    // With the metrics a running stack writes (stamped now: top reads the wall clock).
    {
        use bazaar_platform::telemetry::{EmfFile, MessageMetrics, MetricsSink, Outcome};
        let sink = EmfFile::open(&data.join(EmfFile::FILE_NAME), 1 << 20).unwrap();
        for ms in [1.0, 2.0, 30.0] {
            sink.record(&MessageMetrics {
                function: "orders-saga".into(),
                message_type: "order.placed".into(),
                outcome: Outcome::Processed,
                duration_ms: ms,
                critical_time_ms: None,
                at: chrono::Utc::now(),
            });
        }
    }
    let top = bazaar(&data, &["top", "--once", "--window", "1h"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    readable("top --once --window 1h", &top.stdout);
    let saga = top
        .stdout
        .lines()
        .find(|l| l.starts_with("orders-saga"))
        .unwrap_or_else(|| panic!("a row for orders-saga:\n{}", top.stdout));
    let columns: Vec<&str> = saga.split_whitespace().collect();
    assert_eq!(columns[5..], ["3", "0", "2.00", "30.0"], "{saga}");
    let bad = bazaar(&data, &["top", "--window", "5d"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("30s, 5m or 1h"), "{}", bad.stderr);

    let audit = bazaar(&data, &["dlq", "audit"]);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    readable("dlq audit", &audit.stdout);

    for help in [
        vec!["--help"],
        vec!["queues", "--help"],
        vec!["dlq", "--help"],
        vec!["dlq", "list", "--help"],
        vec!["dlq", "show", "--help"],
        vec!["dlq", "replay", "--help"],
        vec!["dlq", "audit", "--help"],
        vec!["publish", "--help"],
        vec!["trace", "--help"],
        vec!["replay", "--help"],
        vec!["top", "--help"],
        vec!["smoke", "--help"],
        vec!["users", "--help"],
        vec!["users", "create", "--help"],
        vec!["users", "approve", "--help"],
        vec!["users", "disable", "--help"],
        vec!["users", "list", "--help"],
    ] {
        let r = bazaar(&data, &help);
        assert_eq!(r.code, 0, "{help:?}: {}", r.stderr);
        readable(&format!("{help:?}"), &r.stdout);
        assert!(
            r.stdout.contains("Example"),
            "{help:?} has an example:\n{}",
            r.stdout
        );
    }

    // Users: the first operator, from a password on standard input.
    let made = bazaar_with_input(
        &data,
        &[
            "users",
            "create",
            "ops-ada",
            "--email",
            "ada@example.com",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some("wheel and kiln 1842\n"),
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    readable("users create", &made.stdout);
    let users = bazaar(&data, &["users", "list"]);
    assert_eq!(users.code, 0, "{}", users.stderr);
    readable("users list", &users.stdout);
    assert!(users.stdout.contains("ops-ada"), "{}", users.stdout);
    let disabled = bazaar(&data, &["users", "disable", "ops-ada"]);
    assert_eq!(disabled.code, 0, "{}", disabled.stderr);
    readable("users disable", &disabled.stdout);
    assert!(disabled.stdout.contains("disabled"), "{}", disabled.stdout);
    let no_password = bazaar(
        &data,
        &["users", "create", "ops-bob", "--email", "bob@example.com"],
    );
    assert_ne!(no_password.code, 0);
    assert!(
        no_password.stderr.contains("--password-stdin"),
        "{}",
        no_password.stderr
    );
    let weak = bazaar_with_input(
        &data,
        &[
            "users",
            "create",
            "ops-bob",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        Some("password1\n"),
    );
    assert_ne!(weak.code, 0);
    assert!(weak.stderr.contains("password"), "{}", weak.stderr);

    // Mistakes: what was wrong and what to do.
    let wrong = bazaar(&data, &["dlq", "list", "nosuch"]);
    assert_ne!(wrong.code, 0);
    assert!(
        wrong.stderr.contains("no queue \"nosuch\""),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong.stderr.contains("orders-saga"),
        "names what to give: {}",
        wrong.stderr
    );
    let payload = data.join("bad.json");
    std::fs::write(&payload, r#"{"sku": 5}"#).unwrap();
    let refused = bazaar(
        &data,
        &["publish", "product.withdrawn", payload.to_str().unwrap()],
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("not a valid product.withdrawn"),
        "{}",
        refused.stderr
    );
    let nowhere = bazaar(&data.join("nowhere"), &["queues"]);
    assert_ne!(nowhere.code, 0);
    assert!(nowhere.stderr.contains("scripts/dev"), "{}", nowhere.stderr);
    let _ = std::fs::remove_dir_all(&data);
}

/// `bazaar --endpoint-url` without what an endpoint needs says what to set or start.
#[test]
fn an_endpoint_without_region_credentials_or_server_says_what_to_do() {
    let home = std::env::temp_dir().join(format!("bazaar-cli-no-aws-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bazaar"));
        cmd.arg("--template")
            .arg(template())
            .args(["--endpoint-url", &endpoint, "queues"])
            .env("HOME", &home)
            .env("RUST_BACKTRACE", "1");
        for var in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd.envs(env.iter().copied()).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            !stderr.contains("IMDS") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        stderr
    };
    assert!(run(&[]).contains("no AWS region"));
    assert!(run(&[("AWS_REGION", "us-east-1")]).contains("no AWS credentials"));
    let stderr = run(&[
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]);
    assert!(
        stderr.contains(&format!("nothing answers at {endpoint}")),
        "{stderr}"
    );
}
