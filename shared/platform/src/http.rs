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
//!
//! Layout: [`Api`] (here) runs a route in a unit of work; `request` is what a route reads,
//! `problem` what it answers (responses and problem documents), `routing` the route table,
//! `idempotency` the key store, `lambda` the conversion from and to API Gateway's events.
//! The children import one another, never this file.

mod idempotency;
mod lambda;
mod problem;
mod request;
mod routing;

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use bazaar_contracts::trace::{Span, TraceId, TraceParent};
use bazaar_contracts::{Actor, Flags, Role};
use http::Method;

pub use idempotency::{IDEMPOTENCY_HEADER, IDEMPOTENCY_LOCK, IDEMPOTENCY_RETENTION};
pub use lambda::MAX_BODY_BYTES;
pub use problem::{ApiError, Response};
pub use request::Request;
pub use routing::{Idempotency, Route};

use crate::auth::{Auth, authenticate, expected_tokens};
use crate::deps::Deps;
use crate::jwt::Expect;
use crate::outbox;
use crate::ports::Encoded;
use crate::telemetry::{LogFields, MessageMetrics, Outcome, log_outcome};
use crate::work::{Cause, Work};
use problem::commit_error;
use routing::{RouteEntry, Routes};

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

    /// Answers one API Gateway event.
    pub(crate) async fn handle_event(
        &self,
        event: ApiGatewayV2httpRequest,
    ) -> ApiGatewayV2httpResponse {
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
        let response = match lambda::to_request(
            &self.routes,
            event,
            request_id.clone(),
            method.clone(),
            path.clone(),
        ) {
            Ok((request, entry)) => self.answer(entry, request).await,
            Err(e) => self.fail(&request_id, &format!("{method} {path}"), e, None),
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
        lambda::to_lambda(response)
    }

    async fn answer(&self, entry: &RouteEntry, mut request: Request) -> Response {
        let route = &entry.key;
        request.auth = authenticate(
            &self.deps,
            self.tokens.as_ref(),
            request.header("authorization"),
        )
        .await;
        // The request's hop, once: in its log line and in what it sends.
        let span = self.span(&request);
        let flags = match flags_of(&request) {
            Ok(flags) => flags,
            Err(e) => return self.fail(&request.request_id, route, e, Some(span)),
        };
        let cause = self.cause(&request, flags);
        let key = request.header(IDEMPOTENCY_HEADER).map(str::to_string);
        let result = match (entry.idempotency, key) {
            (Idempotency::Required, None) => Err(ApiError::bad_request(
                Some(IDEMPOTENCY_HEADER),
                "this request needs an Idempotency-Key header (a unique value per intended operation)",
            )),
            (Idempotency::None, _) | (Idempotency::Optional, None) => {
                self.run_plain(entry, &request, cause).await
            }
            (_, Some(key)) => idempotency::run(&self.deps, entry, &request, &key, cause).await,
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
                        span: Some(span),
                    },
                    Outcome::Processed,
                    None,
                );
                r
            }
            Err(e) => self.fail(&request.request_id, route, e, Some(span)),
        }
    }

    fn fail(&self, request_id: &str, route: &str, e: ApiError, span: Option<Span>) -> Response {
        let fields = LogFields {
            function: &self.deps.function,
            message_id: request_id,
            message_type: route,
            correlation_id: request_id,
            causation_id: "",
            span,
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

    fn cause(&self, request: &Request, flags: Flags) -> Cause {
        Cause {
            id: request.request_id.clone(),
            correlation_id: request.request_id.clone(),
            actor: request.actor().unwrap_or_else(|_| Actor {
                subject: "anonymous".into(),
                roles: vec![],
            }),
            flags,
            span: self.span(request),
            joined: false,
        }
    }

    /// The request's hop: a child of the caller's `traceparent` when it sent a valid one,
    /// else the first hop of a new trace (derived from the request id, unique per request).
    fn span(&self, request: &Request) -> Span {
        Span::hop(
            &request.request_id,
            &self.deps.function,
            request.header("traceparent").and_then(TraceParent::parse),
            TraceId::of_flow(&request.request_id),
        )
    }

    async fn run_plain(
        &self,
        entry: &RouteEntry,
        request: &Request,
        cause: Cause,
    ) -> Result<Response, ApiError> {
        let deps = &*self.deps;
        let mut work = Work::new(deps, cause);
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
}

/// The header in which an operator sets feature flags on one request (`name=value,…`; a name
/// alone is `true`), for the flow it starts.
pub const FLAGS_HEADER: &str = "bazaar-flags";

/// The flags of the flow a request starts: the caller's own (the token's `flags` claim, set
/// on the user by an operator), then those of the `bazaar-flags` header, which win. Only an
/// operator may send the header: anyone else's is refused with 403, never ignored, so that a
/// customer cannot turn a real order into a test one nor learn which flags exist by trying.
fn flags_of(request: &Request) -> Result<Flags, ApiError> {
    let mut flags = match &request.auth {
        Auth::Caller(_, flags) => flags.clone(),
        _ => Flags::default(),
    };
    let Some(header) = request.headers.get(FLAGS_HEADER) else {
        return Ok(flags);
    };
    match &request.auth {
        Auth::Caller(actor, _) if actor.has_role(Role::Operator) => {}
        _ => {
            return Err(ApiError::forbidden(format!(
                "only an operator may set {FLAGS_HEADER}"
            )));
        }
    }
    let header = header.to_str().map_err(|_| {
        ApiError::bad_request(
            Some(FLAGS_HEADER),
            format!("{FLAGS_HEADER} must be ASCII name=value pairs"),
        )
    })?;
    let set = Flags::decode(header).map_err(|e| {
        ApiError::bad_request(
            Some(FLAGS_HEADER),
            format!("{FLAGS_HEADER} must be name=value pairs, comma separated: {e}"),
        )
    })?;
    flags.0.extend(set.0);
    Ok(flags)
}
