//! The shipped binary on Lambda's protocol: `main.rs` starts the runtime against a fake
//! Lambda Runtime API, with the AWS SDK adapters pointed at moto_server, and answers
//! invocations of the sample events. This is the path `sam deploy` ships.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use bazaar_aws::testing;
use bazaar_embedded::identity;
use bazaar_embedded::testing::event;
use bazaar_platform::jwt::Claims;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

#[derive(Clone)]
struct Runtime {
    events: Arc<Mutex<VecDeque<(String, Value)>>>,
    next_event: Arc<tokio::sync::Notify>,
    answers: mpsc::UnboundedSender<(String, Result<Value, Value>)>,
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, String) {
    loop {
        let notified = rt.next_event.notified();
        if let Some((id, payload)) = rt.events.lock().unwrap().pop_front() {
            let mut h = HeaderMap::new();
            h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            h.insert(
                "lambda-runtime-deadline-ms",
                "4102444800000".parse().unwrap(),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:orders-api"
                    .parse()
                    .unwrap(),
            );
            h.insert(
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap(),
            );
            return (h, payload.to_string());
        }
        notified.await;
    }
}

async fn response(State(rt): State<Runtime>, Path(id): Path<String>, body: String) -> StatusCode {
    let _ = rt
        .answers
        .send((id, Ok(serde_json::from_str(&body).unwrap_or(Value::Null))));
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Runtime>, Path(id): Path<String>, body: String) -> StatusCode {
    let _ = rt
        .answers
        .send((id, Err(serde_json::from_str(&body).unwrap_or(Value::Null))));
    StatusCode::ACCEPTED
}

impl Runtime {
    fn invoke(&self, id: &str, payload: Value) {
        self.events
            .lock()
            .unwrap()
            .push_back((id.to_string(), payload));
        self.next_event.notify_waiters();
    }
}

async fn answer(
    rx: &mut mpsc::UnboundedReceiver<(String, Result<Value, Value>)>,
) -> (String, Result<Value, Value>) {
    // A bound on a hung binary, not a timing assumption: answers normally take milliseconds.
    tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv())
        .await
        .expect("the function answers")
        .expect("the runtime is up")
}

#[tokio::test]
async fn the_binary_serves_invocations_through_the_runtime_api_with_the_aws_adapters() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let table = testing::unique("orders");
    testing::create_table(&aws_sdk_dynamodb::Client::new(&config), &table).await;
    // MUG-01 is for sale: orders' copy of its published price.
    orders_api::store_price_copy(
        &bazaar_aws::DynamoTable::new(aws_sdk_dynamodb::Client::new(&config), &table),
        &bazaar_orders::PriceCopy {
            sku: bazaar_contracts::Sku::parse("MUG-01").unwrap(),
            price: Some(bazaar_contracts::Money {
                amount_cents: 1250,
                currency: bazaar_contracts::Currency::parse("EUR").unwrap(),
            }),
            version: 1,
        },
    )
    .await
    .unwrap();
    let topic = aws_sdk_sns::Client::new(&config)
        .create_topic()
        .name(testing::unique("order"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let rt = Runtime {
        events: Default::default(),
        next_event: Default::default(),
        answers: tx,
    };
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        // The token issuer's keys, where the binary fetches them (<JWT_ISSUER>/.well-known/...).
        .route(
            "/.well-known/jwks.json",
            get(|| async { serde_json::to_string(&identity::local_jwks()).unwrap() }),
        )
        // And the sessions it revoked: a disabled user's.
        .route(
            "/.well-known/revoked-sessions.json",
            get(|| async { r#"{"sessions":["session-of-a-disabled-user"]}"# }),
        )
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let issuer = format!("http://{addr}");
    let token_of = |subject: &str, role: &str, sid: &str| {
        let claims = Claims {
            iss: issuer.clone(),
            sub: subject.into(),
            aud: identity::LOCAL_AUDIENCE.into(),
            roles: vec![role.into()],
            iat: 0,
            nbf: 0,
            exp: identity::FAR_FUTURE,
            jti: format!("t-{subject}"),
            sid: sid.into(),
            flags: String::new(),
        };
        format!(
            "Bearer {}",
            identity::local_signing_key().sign(&claims).unwrap()
        )
    };
    let token = |subject: &str, role: &str| token_of(subject, role, &format!("s-{subject}"));

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orders-api"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bazaar-test-orders-api")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("BAZAAR_FUNCTION", "orders-api")
        .env("TABLE_NAME", &table)
        .env("TOPIC_ARN_ORDER", &topic)
        .env("JWT_ISSUER", &issuer)
        .env("JWT_AUDIENCE", identity::LOCAL_AUDIENCE)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the orders-api binary starts");

    let mut place = event("orders-api.post-orders.json");
    place["headers"]["authorization"] = token("customer-1", "customer").into();
    rt.invoke("req-1", place);
    let (id, placed) = answer(&mut rx).await;
    let placed = placed.expect("no function error");
    assert_eq!(
        (id.as_str(), placed["statusCode"].as_i64()),
        ("req-1", Some(202)),
        "{placed}"
    );
    let order_id =
        serde_json::from_str::<Value>(placed["body"].as_str().unwrap()).unwrap()["order_id"]
            .as_str()
            .unwrap()
            .to_string();

    let mut get = event("orders-api.get-order.json");
    get["rawPath"] = format!("/orders/{order_id}").into();
    get["requestContext"]["http"]["path"] = get["rawPath"].clone();
    get["headers"]["authorization"] = token("operator", "operator").into();
    rt.invoke("req-2", get);
    let (_, shown) = answer(&mut rx).await;
    let shown = shown.expect("no function error");
    assert_eq!(shown["statusCode"], 200, "{shown}");
    assert!(
        shown["body"]
            .as_str()
            .unwrap()
            .contains("\"status\":\"pending\""),
        "the order was stored in DynamoDB (moto) and read back"
    );

    let mut revoked = event("orders-api.get-order.json");
    revoked["rawPath"] = format!("/orders/{order_id}").into();
    revoked["requestContext"]["http"]["path"] = revoked["rawPath"].clone();
    revoked["headers"]["authorization"] =
        token_of("operator", "operator", "session-of-a-disabled-user").into();
    rt.invoke("req-revoked", revoked);
    let (_, refused) = answer(&mut rx).await;
    let refused = refused.expect("no function error");
    assert_eq!(refused["statusCode"], 401, "{refused}");
    assert!(
        refused["body"].as_str().unwrap().contains("revoked"),
        "a token of a session the issuer revoked is refused: {refused}"
    );

    rt.invoke("req-3", serde_json::json!({"unexpected": "shape"}));
    let (_, wrong) = answer(&mut rx).await;
    assert_eq!(
        wrong.expect_err("an unknown event is a function error")["errorType"],
        "UnsupportedEvent"
    );

    child.start_kill().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut logged = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        logged.push(line);
    }
    let processed = logged
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["outcome"] == "processed" && l["type"] == "POST /orders")
        .unwrap_or_else(|| {
            panic!(
                "a JSON log line for the request, got:\n{}",
                logged.join("\n")
            )
        });
    for field in [
        "function",
        "message_id",
        "correlation_id",
        "causation_id",
        "level",
        "timestamp",
    ] {
        assert!(
            processed.get(field).is_some(),
            "log line has {field}: {processed}"
        );
    }
    assert_eq!(processed["function"], "orders-api");
}
