//! Cold start: a function binary started against a fake Lambda Runtime API on loopback.
//!
//! Measured from just before `exec` to the binary's first `GET .../invocation/next` (its
//! init: runtime, logging, SDK configuration and clients), and to the response of its first
//! invocation; peak RSS (`VmHWM`) read once that response is in. The first event needs no
//! AWS call (an HTTP request without a token, or an empty SQS batch), so the figures are
//! the binary's own and not a network's. A function that reads secrets at init
//! (`<NAME>_SECRET_ARN`) is pointed (`AWS_ENDPOINT_URL`) at a fake Secrets Manager on the same
//! loopback server, which answers `GetSecretValue` at once: its figures then include the
//! client's work and the two reads' loopback round trip, not Secrets Manager's own latency.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;

/// One cold start.
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    /// From exec to the first poll for an invocation.
    pub first_poll: Duration,
    /// From exec to the response of the first invocation.
    pub first_response: Duration,
    /// Peak resident set size, in KiB.
    pub peak_rss_kib: u64,
    /// The function answered its first event with an error (a scheduled function handed
    /// an SQS batch, say): the timing still holds, the answer is not a success.
    pub errored: bool,
}

struct Api {
    event: Value,
    polls: AtomicUsize,
    first_poll: Mutex<Option<Instant>>,
    done: tokio::sync::Notify,
    outcome: Mutex<Option<(Instant, Result<(), String>)>>,
}

async fn next(State(api): State<Arc<Api>>) -> impl IntoResponse {
    if api.polls.fetch_add(1, Ordering::SeqCst) > 0 {
        // One invocation per process: later polls wait until the process is killed.
        std::future::pending::<()>().await;
    }
    api.first_poll
        .lock()
        .expect("api lock")
        .get_or_insert_with(Instant::now);
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        h.insert(k, HeaderValue::from_str(&v).expect("a header value"));
    };
    set(
        &mut headers,
        "lambda-runtime-aws-request-id",
        "cold-1".into(),
    );
    set(
        &mut headers,
        "lambda-runtime-deadline-ms",
        deadline.to_string(),
    );
    set(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
    );
    set(
        &mut headers,
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    set(&mut headers, "content-type", "application/json".into());
    (headers, api.event.to_string())
}

fn finish(api: &Api, outcome: Result<(), String>) -> StatusCode {
    api.outcome
        .lock()
        .expect("api lock")
        .get_or_insert((Instant::now(), outcome));
    api.done.notify_one();
    StatusCode::ACCEPTED
}

async fn response(State(api): State<Arc<Api>>) -> StatusCode {
    finish(&api, Ok(()))
}

async fn error(State(api): State<Arc<Api>>, body: String) -> StatusCode {
    finish(&api, Err(body))
}

/// Secrets Manager's `GetSecretValue` (awsJson 1.1): a value for `AWSCURRENT`, "not found"
/// for `AWSPREVIOUS` (a secret never rotated).
async fn secrets_manager(headers: HeaderMap, body: String) -> impl IntoResponse {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    let id = request["SecretId"].as_str().unwrap_or_default().to_string();
    let json = |status: StatusCode, v: Value| {
        (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            v.to_string(),
        )
    };
    if target != "secretsmanager.GetSecretValue" {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "__type": "InvalidRequestException", "message": target }),
        );
    }
    if request["VersionStage"].as_str() == Some("AWSPREVIOUS") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "__type": "ResourceNotFoundException", "message": "no AWSPREVIOUS" }),
        );
    }
    json(
        StatusCode::OK,
        serde_json::json!({
            "ARN": id, "Name": "bench", "VersionId": "v1", "VersionStages": ["AWSCURRENT"],
            "SecretString": "bench-secret-value-0123456789", "CreatedDate": 1.7e9,
        }),
    )
}

/// Starts `binary` with `env` against a fresh fake Runtime API, hands it `event`, and
/// measures. Fails when the binary does not answer within 10 s.
pub async fn measure(
    binary: &Path,
    env: &[(String, String)],
    event: &Value,
) -> anyhow::Result<ColdStart> {
    let api = Arc::new(Api {
        event: event.clone(),
        polls: AtomicUsize::new(0),
        first_poll: Mutex::new(None),
        done: tokio::sync::Notify::new(),
        outcome: Mutex::new(None),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .route("/", post(secrets_manager))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let reads_secrets = env.iter().any(|(k, _)| k.ends_with("_SECRET_ARN"));
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string());
    if reads_secrets {
        command.env("AWS_ENDPOINT_URL", format!("http://{addr}"));
    }
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let waited = tokio::time::timeout(Duration::from_secs(10), api.done.notified()).await;
    let peak_rss_kib = peak_rss(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    if waited.is_err() {
        anyhow::bail!(
            "{} did not answer its first invocation within 10 s",
            binary.display()
        );
    }
    let (answered, outcome) = api
        .outcome
        .lock()
        .expect("api lock")
        .take()
        .expect("an outcome");
    let polled = api
        .first_poll
        .lock()
        .expect("api lock")
        .expect("a poll came before the response");
    Ok(ColdStart {
        first_poll: polled - started,
        first_response: answered - started,
        peak_rss_kib,
        errored: outcome.is_err(),
    })
}

/// `VmHWM` of a live process, in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The first event for a function: for HTTP functions, one of its sample requests sent to
/// a path no route has and without a token (answered 404 by the router, without a call out:
/// a public route would reach the table), an empty SQS batch for the others.
pub fn first_event(http_sample: Option<&Value>) -> Value {
    match http_sample {
        Some(sample) => {
            let mut e = sample.clone();
            if let Some(h) = e.get_mut("headers").and_then(Value::as_object_mut) {
                h.remove("authorization");
            }
            if let Some(rc) = e.get_mut("requestContext").and_then(Value::as_object_mut) {
                rc.remove("authorizer");
                if let Some(http) = rc.get_mut("http").and_then(Value::as_object_mut) {
                    http.insert("path".into(), Value::from("/cold-start-probe"));
                }
            }
            e["rawPath"] = Value::from("/cold-start-probe");
            e["routeKey"] = Value::from("$default");
            e.as_object_mut().map(|o| o.remove("pathParameters"));
            e
        }
        None => serde_json::json!({ "Records": [] }),
    }
}

/// The median of `values` (sorted in place).
pub fn median<T: Copy + Ord>(values: &mut [T]) -> T {
    values.sort();
    values[values.len() / 2]
}
