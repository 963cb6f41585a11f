//! The provider over HTTP, for `scripts/dev` and for testing the payments worker's HTTP
//! adapter: `POST /v1/charges`, `POST /v1/refunds`, `GET /v1/charges` (the books, a page at a
//! time: `?created_from=<epoch s>&starting_after=<payment id>&limit=<1..100>`),
//! `GET /v1/charges/{id}`, and `GET`/`PUT /v1/switches` to make it slow or down by hand.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bazaar_payments::wire::{ErrorBody, ErrorDetail, IDEMPOTENCY_HEADER};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Answer, FakeProvider, Switches};

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &ErrorBody {
            error: ErrorDetail {
                message: message.into(),
            },
        },
    )
}

/// Checks the API key, then parses the body.
fn admit<T: DeserializeOwned>(
    provider: &FakeProvider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Box<Response>> {
    if let Some(key) = provider.api_key() {
        let presented = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(key.as_str()) {
            return Err(Box::new(error(401, "a valid API key is required")));
        }
    }
    serde_json::from_slice(body).map_err(|e| Box::new(error(400, format!("bad request body: {e}"))))
}

fn idempotency_key(headers: &HeaderMap) -> String {
    headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn answer<T: Serialize>(provider: &FakeProvider, answer: Answer<T>) -> Response {
    match answer {
        Answer::Ok(v) => json(StatusCode::OK, &v),
        Answer::Late(v) => {
            let wait = provider.switches().slow_ms;
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            json(StatusCode::OK, &v)
        }
        Answer::Error(status, message) => error(status, message),
    }
}

async fn charges(State(p): State<Arc<FakeProvider>>, headers: HeaderMap, body: Bytes) -> Response {
    match admit(&p, &headers, &body) {
        Ok(request) => {
            let a = p.charge_call(&idempotency_key(&headers), request);
            answer(&p, a).await
        }
        Err(r) => *r,
    }
}

async fn refunds(State(p): State<Arc<FakeProvider>>, headers: HeaderMap, body: Bytes) -> Response {
    match admit(&p, &headers, &body) {
        Ok(request) => {
            let a = p.refund_call(&idempotency_key(&headers), request);
            answer(&p, a).await
        }
        Err(r) => *r,
    }
}

async fn ledger(State(p): State<Arc<FakeProvider>>, uri: axum::http::Uri) -> Response {
    let mut created_from = 0i64;
    let mut starting_after = None;
    let mut limit = 100usize;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |what: &str| error(400, format!("{k} must be {what}"));
        match k {
            "created_from" => match v.parse() {
                Ok(n) => created_from = n,
                Err(_) => return bad("epoch seconds"),
            },
            "starting_after" => starting_after = Some(v.to_string()),
            "limit" => match v.parse() {
                Ok(n) => limit = n,
                Err(_) => return bad("a number"),
            },
            _ => {}
        }
    }
    let a = p.list_call(created_from, starting_after.as_deref(), limit);
    answer(&p, a).await
}

async fn charge(
    State(p): State<Arc<FakeProvider>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let a = p.retrieve_call(&id);
    answer(&p, a).await
}

async fn switches(State(p): State<Arc<FakeProvider>>) -> Response {
    json(StatusCode::OK, &p.switches())
}

async fn set_switches(State(p): State<Arc<FakeProvider>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Switches>(&body) {
        Ok(s) => {
            p.set_switches(s);
            tracing::info!(target: "fake-provider", down = s.down, slow = s.slow, "switches changed");
            json(StatusCode::OK, &s)
        }
        Err(e) => error(
            400,
            format!("expected {{\"down\": bool, \"slow\": bool, \"slow_ms\": n}}: {e}"),
        ),
    }
}

/// Serves the provider on `listener` until `stop` completes.
pub async fn serve(
    provider: Arc<FakeProvider>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/v1/charges", post(charges).get(ledger))
        .route("/v1/charges/{id}", get(charge))
        .route("/v1/refunds", post(refunds))
        .route("/v1/switches", get(switches).put(set_switches))
        .with_state(provider);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}
