//! Both marketplaces over HTTP, for `scripts/dev`: every path goes to
//! [`Marketplaces::handle`]; a slow channel's answer is held back [`crate::Switches::slow_ms`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::{Call, Marketplaces};

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

async fn any(
    State(m): State<Arc<Marketplaces>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let call = Call {
        method: method.to_string(),
        path: percent_encoding::percent_decode_str(uri.path())
            .decode_utf8_lossy()
            .into_owned(),
        query,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body: body.to_vec(),
    };
    let reply = m.handle(&call);
    if reply.late {
        let channel = call
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let wait = bazaar_channels::ChannelId::parse(channel)
            .map(|c| m.switches(c).slow_ms)
            .unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [("content-type", "application/json")],
        serde_json::to_vec(&reply.body).unwrap_or_default(),
    )
        .into_response();
    if let Some(s) = reply.retry_after
        && let Ok(v) = s.to_string().parse()
    {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

/// Serves both marketplaces on `listener` until `stop` completes.
pub async fn serve(
    marketplaces: Arc<Marketplaces>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(any).with_state(marketplaces);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}
