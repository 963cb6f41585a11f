//! What a route answers: a [`Response`], or an [`ApiError`] rendered as an
//! `application/problem+json` document (RFC 9457).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::ports::{BoxError, ErrorClass, HandlerError, TableError};

/// A response: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`null` for none).
    pub body: Value,
    /// The content type of the body.
    pub content_type: String,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: impl Serialize) -> Response {
        Response {
            status,
            headers: BTreeMap::new(),
            body: serde_json::to_value(body).unwrap_or(Value::Null),
            content_type: "application/json".into(),
        }
    }
}

/// A failed request, rendered as a problem document.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: u16,
    /// A short, stable title for the status.
    pub title: &'static str,
    /// What went wrong, for the caller.
    pub detail: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// For 429 and 503: when to retry, in seconds.
    pub retry_after: Option<u32>,
    /// The cause, logged but never shown to the caller.
    pub source: Option<BoxError>,
}

impl ApiError {
    /// A problem with any status; the named constructors below are the usual ones.
    pub fn new(status: u16, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            detail: detail.into(),
            field: None,
            retry_after: None,
            source: None,
        }
    }
    /// 400: the request is malformed; `field` names the part at fault.
    pub fn bad_request(field: Option<&str>, detail: impl Into<String>) -> Self {
        ApiError {
            field: field.map(String::from),
            ..Self::new(400, "Bad Request", detail)
        }
    }
    /// 401: the caller is not identified.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "Unauthorized", detail)
    }
    /// 403: the caller may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", detail)
    }
    /// 404: nothing there (or nothing the caller may see).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not Found", detail)
    }
    /// 409: conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "Conflict", detail)
    }
    /// 413: the body is too large.
    pub(crate) fn too_large(detail: impl Into<String>) -> Self {
        Self::new(413, "Content Too Large", detail)
    }
    /// 422: well-formed but unacceptable; `field` names the part at fault.
    pub fn unprocessable(field: Option<&str>, detail: impl Into<String>) -> Self {
        ApiError {
            field: field.map(String::from),
            ..Self::new(422, "Unprocessable Content", detail)
        }
    }
    /// 429: too many attempts; retry after `seconds` (sent as `Retry-After`).
    pub fn too_many(retry_after: u32, detail: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(429, "Too Many Requests", detail)
        }
    }
    /// 503: try again later.
    pub fn unavailable(source: BoxError) -> Self {
        ApiError {
            retry_after: Some(1),
            source: Some(source),
            ..Self::new(
                503,
                "Service Unavailable",
                "a dependency is busy or down; retry shortly",
            )
        }
    }
    /// 500: a bug; the detail stays in the logs.
    pub fn internal(source: BoxError) -> Self {
        ApiError {
            source: Some(source),
            ..Self::new(
                500,
                "Internal Server Error",
                "an unexpected error occurred; it has been logged",
            )
        }
    }

    /// The problem document.
    pub fn to_response(&self) -> Response {
        let mut body = json!({
            "type": format!("https://bazaar.dev/problems/{}", self.status),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        });
        if let Some(f) = &self.field {
            body["field"] = json!(f);
        }
        let mut headers = BTreeMap::new();
        if let Some(s) = self.retry_after {
            headers.insert("retry-after".to_string(), s.to_string());
        }
        Response {
            status: self.status,
            headers,
            body,
            content_type: "application/problem+json".into(),
        }
    }
}

impl From<HandlerError> for ApiError {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Permanent { detail, .. } => ApiError::unprocessable(None, detail),
            HandlerError::Transient(s) => ApiError::unavailable(s),
            HandlerError::Bug(s) => ApiError::internal(s),
        }
    }
}

impl From<TableError> for ApiError {
    fn from(e: TableError) -> Self {
        HandlerError::from(e).into()
    }
}

impl From<bazaar_contracts::ContractViolation> for ApiError {
    fn from(e: bazaar_contracts::ContractViolation) -> Self {
        ApiError::unprocessable(None, e.0)
    }
}

/// The answer to a commit that failed: 409 when what the request read changed meanwhile,
/// 500 for a bug, 503 otherwise.
pub(super) fn commit_error(e: TableError) -> ApiError {
    if e.is_stale() {
        return ApiError {
            source: Some(Box::new(e)),
            ..ApiError::conflict("what this request read changed while it ran; retry it")
        };
    }
    match e.class() {
        ErrorClass::Bug => ApiError::internal(Box::new(e)),
        _ => ApiError::unavailable(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_names_the_field() {
        let r = ApiError::bad_request(Some("items"), "must not be empty").to_response();
        assert_eq!(r.status, 400);
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(r.body["field"], "items");
        assert_eq!(r.body["status"], 400);
    }
}
