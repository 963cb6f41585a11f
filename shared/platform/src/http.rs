//! The HTTP entry point: API Gateway HTTP API events (payload format 2.0) in, responses out.
//!
//! - Routing on method and path, with `{name}` path parameters; unknown paths are 404 and
//!   known paths with another method 405, as problem documents.
//! - Errors are `application/problem+json` (RFC 9457) with `type`, `title`, `status`, `detail`
//!   and, for bad input, the `field` at fault. A handler never answers 5xx for bad input;
//!   transient failures answer 503 with `Retry-After`.
//! - Idempotency (BRIEF §4) for routes that declare it: the same `Idempotency-Key` with the
//!   same request returns the original response; with a different request, 422; while the
//!   first is still in progress, 409. The idempotency record, the state changes and the outbox
//!   are committed in one transaction, so a retried request never has a second effect.
//! - The caller: the bearer token of the `Authorization` header, validated by the function
//!   itself ([`crate::auth`]) before any route runs, whatever the edge already checked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine;
use bazaar_contracts::{Actor, Flags, Role};
use chrono::Duration;
use http::{HeaderMap, HeaderValue, Method};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{Auth, authenticate, expected_tokens};
use crate::deps::Deps;
use crate::item::{Condition, Key, Update, Write, item};
use crate::jwt::Expect;
use crate::outbox;
use crate::ports::{BoxError, Encoded, ErrorClass, HandlerError, TableError};
use crate::telemetry::{LogFields, MessageMetrics, Outcome, log_outcome};
use crate::work::{Cause, Work};

/// The idempotency header of mutating requests.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The largest request body accepted (messages caused by it must fit SNS's 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::hours(24);
/// How long a request holds its idempotency key before another may take it over (a crashed
/// request must not block its key for a day).
pub const IDEMPOTENCY_LOCK: Duration = Duration::seconds(60);

/// An HTTP request as a handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without query.
    pub path: String,
    /// Path parameters from the route pattern.
    pub params: BTreeMap<String, String>,
    /// Query parameters (the first value of each).
    pub query: BTreeMap<String, String>,
    /// Headers, names lowercase.
    pub headers: HeaderMap,
    /// The body, decoded from base64 when API Gateway encoded it.
    pub body: Vec<u8>,
    /// API Gateway's request id.
    pub request_id: String,
    /// The address the request came from, as API Gateway saw the connection
    /// (`requestContext.http.sourceIp`; not a header a client can set). Empty when unknown.
    pub source_ip: String,
    /// The caller, from the bearer token.
    pub auth: Auth,
}

impl Request {
    /// The body as JSON of type `T`; otherwise a 400 problem whose `field` names the part at
    /// fault (`items[0].quantity`, `payment.token`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(None, "the request needs a JSON body"));
        }
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = field_of(&e);
            let detail = e.into_inner().to_string();
            ApiError::bad_request(field.as_deref(), format!("the body is not valid: {detail}"))
        })
    }

    /// A path parameter.
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The caller; 401 without a valid token, 503 when tokens cannot be checked now.
    pub fn actor(&self) -> Result<Actor, ApiError> {
        match &self.auth {
            Auth::Caller(actor) => Ok(actor.clone()),
            Auth::Anonymous => Err(ApiError::unauthorized(
                "this route needs an access token: send `Authorization: Bearer <token>` (POST /auth/token issues one)",
            )),
            Auth::Refused(why) => Err(ApiError::unauthorized(format!(
                "the access token is not accepted: {why}"
            ))),
            Auth::Unavailable(why) => Err(ApiError::unavailable(why.clone().into())),
            Auth::Misconfigured(why) => {
                Err(ApiError::internal(HandlerError::bug(why.clone()).into()))
            }
        }
    }

    /// The caller, who must hold one of `roles`: 403 otherwise (after the 401 cases).
    pub fn actor_with_role(&self, roles: &[Role]) -> Result<Actor, ApiError> {
        let actor = self.actor()?;
        if roles.iter().any(|r| actor.has_role(*r)) {
            Ok(actor)
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this route is for {}",
                names.join(" or ")
            )))
        }
    }
}

/// The JSON path of a deserialization error, with the missing field's name appended when a
/// field is missing; `None` when the body is not JSON at all.
fn field_of(e: &serde_path_to_error::Error<serde_json::Error>) -> Option<String> {
    if e.inner().is_syntax() || e.inner().is_eof() {
        return None;
    }
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = e.inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next());
    match (path.is_empty(), missing) {
        (true, Some(f)) => Some(f.to_string()),
        (false, Some(f)) => Some(format!("{path}.{f}")),
        (false, None) => Some(path),
        (true, None) => None,
    }
}

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
    fn new(status: u16, title: &'static str, detail: impl Into<String>) -> Self {
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
    pub fn too_large(detail: impl Into<String>) -> Self {
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

/// Handles one route.
#[async_trait]
pub trait Route: Send + Sync {
    /// Answers the request; state changes and messages go through `work` and are committed
    /// by the platform after the handler returns.
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError>;
}

/// Whether a route takes an `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, and writes that are idempotent by nature without a key.
    None,
    /// The key is optional: honoured when given.
    Optional,
    /// The key is required: 400 without it.
    Required,
}

struct RouteEntry {
    method: Method,
    /// `METHOD /pattern`: how metrics, logs and fault points name the route.
    key: String,
    idempotency: Idempotency,
    handler: Arc<dyn Route>,
}

/// A path with its empty segments dropped (`/orders/` and `//orders` are `/orders`), as the
/// routes are matched.
fn normalized(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Percent-decodes a path parameter or query part (`plus_is_space` for the query's
/// form encoding), keeping invalid UTF-8 as replacement characters.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let text = if plus_is_space {
        std::borrow::Cow::Owned(s.replace('+', " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The routes: their entries, and a `matchit` router from each path pattern to the entries
/// (one per method) that share it.
#[derive(Default)]
struct Routes {
    entries: Vec<RouteEntry>,
    by_pattern: matchit::Router<usize>,
    /// The entries of each pattern, by the router's value.
    slots: Vec<Vec<usize>>,
    patterns: BTreeMap<String, usize>,
}

impl Routes {
    fn add(&mut self, entry: RouteEntry, pattern: &str) {
        let pattern = normalized(pattern);
        let slot = match self.patterns.get(&pattern) {
            Some(slot) => *slot,
            None => {
                let slot = self.slots.len();
                self.by_pattern
                    .insert(pattern.clone(), slot)
                    .unwrap_or_else(|e| panic!("route {pattern}: {e}"));
                self.slots.push(Vec::new());
                self.patterns.insert(pattern, slot);
                slot
            }
        };
        self.slots[slot].push(self.entries.len());
        self.entries.push(entry);
    }

    /// The entries whose pattern matches `path`, with the path's parameters decoded.
    fn find(&self, path: &str) -> Option<(Vec<&RouteEntry>, BTreeMap<String, String>)> {
        let path = normalized(path);
        let found = self.by_pattern.at(&path).ok()?;
        let params = found
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), percent_decode(v, false)))
            .collect();
        let entries = self.slots[*found.value]
            .iter()
            .map(|i| &self.entries[*i])
            .collect();
        Some((entries, params))
    }
}

fn parse_query(raw: &str) -> BTreeMap<String, String> {
    let mut q = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        q.entry(percent_decode(k, true))
            .or_insert_with(|| percent_decode(v, true));
    }
    q
}

/// A function's HTTP routes.
#[derive(Clone)]
pub struct Api {
    deps: Arc<Deps>,
    routes: Arc<Routes>,
    /// The tokens this API accepts, read from the environment once.
    tokens: Option<Expect>,
}

impl Api {
    /// An API with no routes yet.
    pub fn new(deps: Arc<Deps>) -> Self {
        Api {
            tokens: expected_tokens(&deps),
            deps,
            routes: Arc::new(Routes::default()),
        }
    }

    /// Adds a route: `pattern` like `/orders/{id}`.
    pub fn route(
        mut self,
        method: Method,
        pattern: &str,
        idempotency: Idempotency,
        handler: Arc<dyn Route>,
    ) -> Self {
        let routes =
            Arc::get_mut(&mut self.routes).expect("routes are added before the API is shared");
        let key = format!("{method} {pattern}");
        routes.add(
            RouteEntry {
                method,
                key,
                idempotency,
                handler,
            },
            pattern,
        );
        self
    }

    /// The routes as `METHOD /pattern`, for checking against the template.
    pub fn route_keys(&self) -> Vec<String> {
        self.routes.entries.iter().map(|r| r.key.clone()).collect()
    }

    /// Answers one API Gateway event.
    pub async fn handle_event(&self, event: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let started = Instant::now();
        let request_id = event
            .request_context
            .request_id
            .clone()
            .unwrap_or_else(|| self.deps.ids.new_id());
        let method = event.request_context.http.method.clone();
        let path = event
            .raw_path
            .clone()
            .or(event.request_context.http.path.clone())
            .unwrap_or_else(|| "/".into());
        let response =
            match self.to_request(event, request_id.clone(), method.clone(), path.clone()) {
                Ok((request, entry)) => self.answer(entry, request).await,
                Err(e) => self.fail(&request_id, &format!("{method} {path}"), e),
            };
        let outcome = if response.status >= 500 {
            Outcome::Failed
        } else {
            Outcome::Processed
        };
        self.deps.metrics.record(&MessageMetrics {
            function: self.deps.function.clone(),
            message_type: format!("{method} {path}"),
            outcome,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            critical_time_ms: None,
            at: self.deps.clock.now(),
        });
        to_lambda(response)
    }

    fn to_request(
        &self,
        event: ApiGatewayV2httpRequest,
        request_id: String,
        method: Method,
        path: String,
    ) -> Result<(Request, &RouteEntry), ApiError> {
        let (entries, params) = self.routes.find(&path).unwrap_or_default();
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

    async fn answer(&self, entry: &RouteEntry, mut request: Request) -> Response {
        let route = &entry.key;
        request.auth = authenticate(
            &self.deps,
            self.tokens.as_ref(),
            request.header("authorization"),
        )
        .await;
        let key = request.header(IDEMPOTENCY_HEADER).map(str::to_string);
        let result = match (entry.idempotency, key) {
            (Idempotency::Required, None) => Err(ApiError::bad_request(
                Some(IDEMPOTENCY_HEADER),
                "this request needs an Idempotency-Key header (a unique value per intended operation)",
            )),
            (Idempotency::None, _) | (Idempotency::Optional, None) => {
                self.run_plain(entry, &request).await
            }
            (_, Some(key)) => self.run_idempotent(entry, &request, &key).await,
        };
        match result {
            Ok(r) => {
                log_outcome(
                    &LogFields {
                        function: &self.deps.function,
                        message_id: &request.request_id,
                        message_type: route,
                        correlation_id: &request.request_id,
                        causation_id: "",
                    },
                    Outcome::Processed,
                    None,
                );
                r
            }
            Err(e) => self.fail(&request.request_id, route, e),
        }
    }

    fn fail(&self, request_id: &str, route: &str, e: ApiError) -> Response {
        let fields = LogFields {
            function: &self.deps.function,
            message_id: request_id,
            message_type: route,
            correlation_id: request_id,
            causation_id: "",
        };
        let outcome = if e.status >= 500 {
            Outcome::Failed
        } else {
            Outcome::Processed
        };
        match &e.source {
            Some(s) => log_outcome(&fields, outcome, Some(s.as_ref())),
            None => log_outcome(&fields, outcome, None),
        }
        e.to_response()
    }

    fn cause(&self, request: &Request) -> Cause {
        Cause {
            id: request.request_id.clone(),
            correlation_id: request.request_id.clone(),
            actor: request.actor().unwrap_or_else(|_| Actor {
                subject: "anonymous".into(),
                roles: vec![],
            }),
            flags: Flags::default(),
            traceparent: request.header("traceparent").map(String::from),
        }
    }

    async fn run_plain(&self, entry: &RouteEntry, request: &Request) -> Result<Response, ApiError> {
        let deps = &*self.deps;
        let mut work = Work::new(deps, self.cause(request));
        let response = entry.handler.handle(request, &mut work).await?;
        if work.writes.is_empty() && work.outgoing.is_empty() {
            return Ok(response);
        }
        let source = outbox::source_key(&format!("http:{}:{}", deps.function, request.request_id));
        let outgoing = Encoded::new(&work.outgoing);
        outbox::commit(
            deps,
            &source,
            &request.request_id,
            Vec::new(),
            std::mem::take(&mut work.writes),
            &outgoing,
        )
        .await
        .map_err(commit_error)?;
        outbox::dispatch(deps, &source, &outgoing, &entry.key, &request.request_id)
            .await
            .map_err(ApiError::from)?;
        Ok(response)
    }

    async fn run_idempotent(
        &self,
        entry: &RouteEntry,
        request: &Request,
        key: &str,
    ) -> Result<Response, ApiError> {
        let deps = &*self.deps;
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad_request(
                Some(IDEMPOTENCY_HEADER),
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        let table = deps.table().map_err(ApiError::from)?;
        let subject = request
            .actor()
            .map(|a| a.subject)
            .unwrap_or_else(|_| "anonymous".into());
        let record_key = Key::new(format!("IDEM#{subject}#{key}"), deps.function.clone());
        let fingerprint = fingerprint(request);
        let now = deps.clock.now();
        let claim = item(
            &record_key,
            json!({
                "state": KeyState::InProgress,
                "fingerprint": fingerprint,
                "locked_until": (now + IDEMPOTENCY_LOCK).timestamp(),
                "ttl": (now + IDEMPOTENCY_RETENTION).timestamp(),
            }),
        );
        let free = Condition::Or(vec![
            Condition::NotExists,
            Condition::And(vec![
                Condition::Equals("state".into(), json!(KeyState::InProgress)),
                Condition::LessThan("locked_until".into(), now.timestamp()),
            ]),
        ]);
        match table.put(claim, Some(free)).await {
            Ok(()) => {}
            Err(TableError::ConditionFailed) => {
                let existing = table
                    .get(&record_key)
                    .await
                    .map_err(ApiError::from)?
                    .ok_or_else(|| {
                        ApiError::conflict(
                            "the request with this Idempotency-Key changed state; retry",
                        )
                    })?;
                let existing: KeyRecord = crate::item::parse(existing)?;
                if existing.fingerprint != fingerprint {
                    return Err(ApiError::unprocessable(
                        Some(IDEMPOTENCY_HEADER),
                        "this Idempotency-Key was used for a different request",
                    ));
                }
                if existing.state == KeyState::Completed {
                    let mut stored = existing.response.ok_or_else(|| {
                        ApiError::internal(
                            HandlerError::bug("a completed key without its response").into(),
                        )
                    })?;
                    stored
                        .headers
                        .insert("idempotent-replayed".into(), "true".into());
                    return Ok(stored);
                }
                return Err(ApiError::conflict(
                    "a request with this Idempotency-Key is still in progress",
                ));
            }
            Err(e) => return Err(e.into()),
        }

        let mut cause = self.cause(request);
        cause.correlation_id = request.request_id.clone();
        let mut work = Work::new(deps, cause);
        let outcome = entry.handler.handle(request, &mut work).await;
        let response = match outcome {
            Ok(r) => r,
            Err(e) if e.status < 500 => e.to_response(),
            Err(e) => {
                // Not the caller's fault: release the key so that a retry runs again.
                let _ = table
                    .delete(
                        &record_key,
                        Some(Condition::Equals("fingerprint".into(), json!(fingerprint))),
                    )
                    .await;
                return Err(e);
            }
        };
        let complete = Write::Update {
            key: record_key.clone(),
            update: Update::new()
                .set("state", json!(KeyState::Completed))
                .set(
                    "response",
                    serde_json::to_value(&response).unwrap_or(Value::Null),
                )
                .remove("locked_until"),
            condition: Some(Condition::Equals("fingerprint".into(), json!(fingerprint))),
        };
        let source = outbox::source_key(&format!("http:{}:{}:{}", deps.function, subject, key));
        let writes = if response.status < 400 {
            std::mem::take(&mut work.writes)
        } else {
            Vec::new()
        };
        let outgoing = if response.status < 400 {
            std::mem::take(&mut work.outgoing)
        } else {
            Vec::new()
        };
        let outgoing = Encoded::new(&outgoing);
        if let Err(e) = outbox::commit(
            deps,
            &source,
            &request.request_id,
            vec![complete],
            writes,
            &outgoing,
        )
        .await
        {
            let _ = table
                .delete(
                    &record_key,
                    Some(Condition::Equals(
                        "state".into(),
                        json!(KeyState::InProgress),
                    )),
                )
                .await;
            return Err(commit_error(e));
        }
        outbox::dispatch(deps, &source, &outgoing, &entry.key, &request.request_id)
            .await
            .map_err(ApiError::from)?;
        Ok(response)
    }
}

fn commit_error(e: TableError) -> ApiError {
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

/// Where a request under an idempotency key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyState {
    /// A request holds the key (until `locked_until`, if it crashed).
    InProgress,
    /// Its response is stored and answers every retry.
    Completed,
}

/// The record of an idempotency key, as the table holds it.
#[derive(Debug, serde::Deserialize)]
struct KeyRecord {
    state: KeyState,
    fingerprint: String,
    #[serde(default)]
    response: Option<Response>,
}

/// What makes two requests "the same" for idempotency: method, path and body.
fn fingerprint(request: &Request) -> String {
    let mut h = Sha256::new();
    h.update(request.method.as_str().as_bytes());
    h.update(b" ");
    h.update(request.path.as_bytes());
    h.update(b"\n");
    h.update(&request.body);
    hex::encode(h.finalize())
}

fn to_lambda(r: Response) -> ApiGatewayV2httpResponse {
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait]
    impl Route for Nothing {
        async fn handle(&self, _: &Request, _: &mut Work<'_>) -> Result<Response, ApiError> {
            Ok(Response::json(204, Value::Null))
        }
    }

    #[test]
    fn patterns_match_literal_and_parameter_segments() {
        let mut routes = Routes::default();
        let entry = |method: Method| RouteEntry {
            key: format!("{method} /orders/{{id}}"),
            method,
            idempotency: Idempotency::None,
            handler: Arc::new(Nothing),
        };
        routes.add(entry(Method::GET), "/orders/{id}");
        routes.add(entry(Method::DELETE), "/orders/{id}");
        let params = |path: &str| routes.find(path).map(|(_, p)| p);
        assert_eq!(params("/orders/o-1").unwrap()["id"], "o-1");
        assert_eq!(params("/orders/a%20b").unwrap()["id"], "a b");
        assert_eq!(
            params("//orders/o-1/").unwrap()["id"],
            "o-1",
            "empty segments drop"
        );
        assert_eq!(
            routes.find("/orders/o-1").unwrap().0.len(),
            2,
            "one entry per method"
        );
        assert!(params("/orders").is_none());
        assert!(params("/orders/1/x").is_none());
        assert!(params("/other/1").is_none());
    }

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query("q=red+mug&category=home%2Fkitchen&q=second");
        assert_eq!(q["q"], "red mug");
        assert_eq!(q["category"], "home/kitchen");
    }

    #[test]
    fn a_problem_document_names_the_field() {
        let r = ApiError::bad_request(Some("items"), "must not be empty").to_response();
        assert_eq!(r.status, 400);
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(r.body["field"], "items");
        assert_eq!(r.body["status"], 400);
    }
}
