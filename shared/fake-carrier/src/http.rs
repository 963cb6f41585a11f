//! The carrier over HTTP, for `scripts/dev`: `POST /parcels` books a parcel,
//! `GET /parcels/{code}` shows one, `POST /parcels/{code}/advance` moves it on now (optional
//! body `{"to":"in_transit"|"delivered"|"returned_to_sender"}`), and `GET`/`PUT /switches`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::{CarrierError, FakeCarrier, ParcelStatus, Switches};

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

fn error(e: CarrierError) -> Response {
    let (status, message) = match e {
        CarrierError::Unknown(m) => (StatusCode::NOT_FOUND, m),
        CarrierError::Conflict(m) => (StatusCode::CONFLICT, m),
        CarrierError::Down => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the carrier is down (PUT /switches {\"down\": false} brings it back)".to_string(),
        ),
    };
    json(status, &serde_json::json!({ "error": message }))
}

async fn book(State(c): State<Arc<FakeCarrier>>) -> Response {
    match c.book() {
        Ok(p) => {
            tracing::info!(target: "fake-carrier", code = %p.tracking_code, "parcel booked");
            json(StatusCode::CREATED, &p)
        }
        Err(e) => error(e),
    }
}

async fn parcel(State(c): State<Arc<FakeCarrier>>, Path(code): Path<String>) -> Response {
    match c.parcel(&code) {
        Ok(p) => json(StatusCode::OK, &p),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    to: Option<ParcelStatus>,
}

async fn advance(
    State(c): State<Arc<FakeCarrier>>,
    Path(code): Path<String>,
    body: Bytes,
) -> Response {
    let to = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<AdvanceBody>(&body) {
            Ok(b) => b.to,
            Err(e) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "error": format!("expected {{\"to\": \"in_transit\" | \"delivered\" | \"returned_to_sender\"}} or no body: {e}") }),
                );
            }
        }
    };
    match c.advance(&code, to) {
        Ok(p) => {
            tracing::info!(target: "fake-carrier", %code, status = ?p.status, "parcel moved on; its callback is due now");
            json(StatusCode::OK, &p)
        }
        Err(e) => error(e),
    }
}

async fn switches(State(c): State<Arc<FakeCarrier>>) -> Response {
    json(StatusCode::OK, &c.switches())
}

async fn set_switches(State(c): State<Arc<FakeCarrier>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Switches>(&body) {
        Ok(s) => {
            c.set_switches(s);
            tracing::info!(target: "fake-carrier", down = s.down, auto = s.auto, duplicate = s.duplicate, out_of_order = s.out_of_order, "switches changed");
            json(StatusCode::OK, &s)
        }
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": format!("expected {{\"down\": bool, \"auto\": bool, \"duplicate\": bool, \"out_of_order\": bool}}: {e}") }),
        ),
    }
}

/// Serves the carrier on `listener` until `stop` completes.
pub async fn serve(
    carrier: Arc<FakeCarrier>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/parcels", post(book))
        .route("/parcels/{code}", get(parcel))
        .route("/parcels/{code}/advance", post(advance))
        .route("/switches", get(switches).put(set_switches))
        .with_state(carrier);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}
