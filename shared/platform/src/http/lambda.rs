//! API Gateway HTTP API events (payload format 2.0) in, responses out.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method};

use super::problem::{ApiError, Response};
use super::request::{Request, parse_query};
use super::routing::{RouteEntry, Routes};
use crate::auth::Auth;

/// The largest request body accepted (messages caused by it must fit SNS's 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The request an API Gateway event carries, and the route it is for: 404 for an unknown
/// path, 405 for a known path with another method, 400 for a body that is not base64 when it
/// says it is, 413 past [`MAX_BODY_BYTES`].
pub(super) fn to_request(
    routes: &Routes,
    event: ApiGatewayV2httpRequest,
    request_id: String,
    method: Method,
    path: String,
) -> Result<(Request, &RouteEntry), ApiError> {
    let (entries, params) = routes.find(&path).unwrap_or_default();
    let found = entries
        .iter()
        .find(|e| e.method == method)
        .map(|e| (*e, params));
    let allowed: Vec<String> = entries.iter().map(|e| e.method.to_string()).collect();
    let Some((entry, params)) = found else {
        return Err(if allowed.is_empty() {
            ApiError::not_found(format!("no route for {path}"))
        } else {
            ApiError::new(
                405,
                "Method Not Allowed",
                format!("{path} allows {}", allowed.join(", ")),
            )
        });
    };
    let raw = event.body.unwrap_or_default();
    let body = if event.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw.as_bytes())
            .map_err(|_| ApiError::bad_request(None, "the body is not valid base64"))?
    } else {
        raw.into_bytes()
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(format!(
            "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
            body.len()
        )));
    }
    let query = parse_query(event.raw_query_string.as_deref().unwrap_or(""));
    let source_ip = event
        .request_context
        .http
        .source_ip
        .clone()
        .unwrap_or_default();
    Ok((
        Request {
            method,
            path,
            params,
            query,
            headers: event.headers,
            body,
            request_id,
            source_ip,
            auth: Auth::Anonymous,
        },
        entry,
    ))
}

/// The Lambda response for `r`.
pub(super) fn to_lambda(r: Response) -> ApiGatewayV2httpResponse {
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(r.status);
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(&r.content_type)
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    for (k, v) in &r.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(name, value);
        }
    }
    out.headers = headers;
    out.body = if r.body.is_null() {
        None
    } else {
        Some(Body::Text(r.body.to_string()))
    };
    out
}
