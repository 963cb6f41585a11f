//! The API Gateway HTTP API emulator: matches a request to the template's routes, invokes the
//! function with a payload format 2.0 event, and turns its response back into HTTP, as API
//! Gateway does (including its own `{"message":"Not Found"}` for unknown routes and
//! `{"message":"Internal Server Error"}` when the function fails).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bazaar_embedded::engine::ACCOUNT;
use bazaar_platform::auth::{CheckError, KeySource, check};
use bazaar_platform::clock::Clock;
use bazaar_platform::ids::Ids;
use bazaar_platform::jwt::Expect;
use serde_json::{Value, json};

use crate::functions::Functions;
use crate::template::JwtAuthorizer;

/// An HTTP route of the template.
#[derive(Debug, Clone)]
pub struct RouteDef {
    /// Method, uppercase, or `ANY`.
    pub method: String,
    /// Path pattern.
    pub path: String,
    /// The function's logical id.
    pub function: String,
    /// The JWT authorizer guarding it (`None`: public).
    pub authorizer: Option<JwtAuthorizer>,
}

/// The API Gateway emulator of a stack: its routes, the functions behind them, and the
/// issuer's keys its JWT authorizer checks tokens with.
pub struct Gateway {
    routes: Vec<RouteDef>,
    functions: Arc<Functions>,
    /// The token issuer's keys, as the identity service publishes them.
    keys: Option<Arc<dyn KeySource>>,
    /// The stack's clock (simulated in tests): token dates and event times.
    clock: Arc<dyn Clock>,
    /// Request ids.
    ids: Arc<dyn Ids>,
}

/// An HTTP request as the emulator receives it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// Method, uppercase.
    pub method: String,
    /// Path, starting with `/`.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: String,
    /// Headers (names are lowercased on the way in).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The address the connection came from, as API Gateway passes it on
    /// (`requestContext.http.sourceIp`); `127.0.0.1` when not set.
    pub source_ip: Option<String>,
}

impl HttpRequest {
    /// A request with a JSON body.
    pub fn json(method: &str, path: &str, body: &Value) -> Self {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            ..Default::default()
        }
    }

    /// A request without a body.
    pub fn get(path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        HttpRequest {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            ..Default::default()
        }
    }

    /// Comes from `ip`.
    pub fn from_ip(mut self, ip: &str) -> Self {
        self.source_ip = Some(ip.to_string());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_lowercase(), value.into()));
        self
    }
}

/// The emulator's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn message(status: u16, message: &str) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({ "message": message }).to_string().into_bytes(),
        }
    }
}

fn matches(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let pat: Vec<&str> = pattern
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut params = Vec::new();
    for (i, seg) in pat.iter().enumerate() {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            if i >= parts.len() {
                return None;
            }
            params.push((name.to_string(), parts[i..].join("/")));
            return Some(params);
        }
        let part = parts.get(i)?;
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => params.push((name.to_string(), part.to_string())),
            None if seg == part => {}
            None => return None,
        }
    }
    (pat.len() == parts.len()).then_some(params)
}

impl Gateway {
    /// A gateway for `routes`, invoking `functions`.
    pub fn new(
        routes: Vec<RouteDef>,
        functions: Arc<Functions>,
        keys: Option<Arc<dyn KeySource>>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn Ids>,
    ) -> Self {
        Gateway {
            routes,
            functions,
            keys,
            clock,
            ids,
        }
    }

    /// The routes.
    pub fn routes(&self) -> &[RouteDef] {
        &self.routes
    }

    /// The token issuer's keys.
    pub fn keys(&self) -> Option<&Arc<dyn KeySource>> {
        self.keys.as_ref()
    }

    /// API Gateway's JWT authorizer: the token of the identity source (with or without its
    /// `Bearer` prefix) must verify with the issuer's keys, be current, and be for the issuer
    /// and one of the audiences. Returns the claims as API Gateway passes them on (strings).
    async fn authorize(
        &self,
        authorizer: &JwtAuthorizer,
        request: &HttpRequest,
    ) -> Result<serde_json::Map<String, Value>, String> {
        let value = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&authorizer.header))
            .map(|(_, v)| v.trim())
            .ok_or("no token")?;
        let token = match value.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => value,
        };
        let keys = self.keys().ok_or("no issuer keys")?;
        let now = self.clock.now();
        let mut last = String::from("no audience configured");
        for audience in &authorizer.audience {
            let expect = Expect {
                issuer: authorizer.issuer.clone(),
                audience: audience.clone(),
            };
            match check(keys.as_ref(), token, &expect, now).await {
                Ok(c) => {
                    let mut claims = serde_json::Map::new();
                    claims.insert("iss".into(), json!(c.iss));
                    claims.insert("sub".into(), json!(c.sub));
                    claims.insert("aud".into(), json!(c.aud));
                    claims.insert("exp".into(), json!(c.exp.to_string()));
                    claims.insert("iat".into(), json!(c.iat.to_string()));
                    claims.insert("roles".into(), json!(format!("[{}]", c.roles.join(" "))));
                    return Ok(claims);
                }
                Err(CheckError::Refused(e)) => last = e.to_string(),
                Err(CheckError::Unavailable(why)) => return Err(why),
            }
        }
        Err(last)
    }

    /// Answers one HTTP request through the template's routes. The whole of it (the JWT
    /// authorizer's token check included, which reads the caller's numbers) runs inside the
    /// same panic guard as an invocation: a panic anywhere is a 500, as API Gateway answers
    /// when its integration fails, never a connection closed without an answer.
    pub async fn http(&self, request: HttpRequest) -> HttpResponse {
        use futures::FutureExt;
        let route = format!("{} {}", request.method, request.path);
        match std::panic::AssertUnwindSafe(self.route_http(request))
            .catch_unwind()
            .await
        {
            Ok(response) => response,
            Err(panic) => {
                let what = crate::functions::panic_text(panic.as_ref());
                tracing::error!(%route, panic = %what, "the gateway panicked; answering 500");
                HttpResponse::message(500, "Internal Server Error")
            }
        }
    }

    async fn route_http(&self, request: HttpRequest) -> HttpResponse {
        let method = request.method.to_uppercase();
        let Some((route, params)) = self.routes().iter().find_map(|r| {
            (r.method == method || r.method == "ANY")
                .then(|| matches(&r.path, &request.path).map(|p| (r, p)))
                .flatten()
        }) else {
            return HttpResponse::message(404, "Not Found");
        };
        let now = self.clock.now();
        let authorizer = match &route.authorizer {
            None => None,
            Some(a) => match self.authorize(a, &request).await {
                Ok(claims) => Some(claims),
                Err(why) => {
                    tracing::info!(target: "gateway", route = %route.path, reason = %why, "401 at the JWT authorizer");
                    return HttpResponse::message(401, "Unauthorized");
                }
            },
        };
        let route_key = format!("{} {}", route.method, route.path);
        let mut headers = serde_json::Map::new();
        for (k, v) in &request.headers {
            let k = k.to_lowercase();
            let joined = match headers.get(&k).and_then(Value::as_str) {
                Some(prev) => format!("{prev},{v}"),
                None => v.clone(),
            };
            headers.insert(k, json!(joined));
        }
        let (body, is_base64) = match std::str::from_utf8(&request.body) {
            Ok(text) => (text.to_string(), false),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&request.body),
                true,
            ),
        };
        let mut query = serde_json::Map::new();
        for pair in request.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query.entry(k.to_string()).or_insert(json!(v));
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.query,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": "local",
                "domainName": "127.0.0.1",
                "domainPrefix": "127",
                "http": { "method": method, "path": request.path, "protocol": "HTTP/1.1", "sourceIp": request.source_ip.as_deref().unwrap_or("127.0.0.1"), "userAgent": headers.get("user-agent").cloned().unwrap_or(json!("")) },
                "requestId": self.ids.new_id(),
                "routeKey": route_key,
                "stage": "$default",
                "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
                "timeEpoch": now.timestamp_millis(),
            },
            "isBase64Encoded": is_base64,
        });
        if let Some(claims) = authorizer {
            event["requestContext"]["authorizer"] =
                json!({ "jwt": { "claims": claims, "scopes": null } });
        }
        if !query.is_empty() {
            event["queryStringParameters"] = Value::Object(query);
        }
        if !params.is_empty() {
            event["pathParameters"] =
                Value::Object(params.into_iter().map(|(k, v)| (k, json!(v))).collect());
        }
        if !request.body.is_empty() {
            event["body"] = json!(body);
        }
        // Billed as API Gateway bills: requests that reach an integration (not those the
        // authorizer refuses).
        if let Some(usage) = self.functions.usage()
            && let Some(def) = self.functions.def(&route.function)
        {
            usage.http_request(&def.name());
        }
        match self.functions.invoke(&route.function, event).await {
            Ok(response) => from_lambda(&response),
            Err(e) => {
                tracing::error!(route = %route_key, error = %e, "the function failed; answering 500 as API Gateway does");
                HttpResponse::message(500, "Internal Server Error")
            }
        }
    }
}

/// Turns a function's payload 2.0 response into HTTP.
fn from_lambda(response: &Value) -> HttpResponse {
    let Some(status) = response.get("statusCode").and_then(Value::as_u64) else {
        // API Gateway's inference for a response without statusCode: 200 with the JSON.
        return HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: response.to_string().into_bytes(),
        };
    };
    let mut headers: Vec<(String, String)> = response
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(multi) = response.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vs) in multi {
            for v in vs.as_array().into_iter().flatten() {
                headers.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
            }
        }
    }
    let text = response.get("body").and_then(Value::as_str).unwrap_or("");
    let body = if response
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    HttpResponse {
        status: status as u16,
        headers,
        body,
    }
}

/// How long a client may take to send a request's body once its headers are in. API
/// Gateway buffers bodies before the function runs, so a function never sees a trickle;
/// the emulator must not let one slow client hold a connection and a task for ever
/// either. Past the deadline the answer is 408, as a front door would give.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// API Gateway's payload limit; the functions enforce their own, lower, limits.
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// Serves the emulator on `addr` until `stop` completes.
pub async fn serve(
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(gateway, listener, stop).await
}

/// [`serve`] on a listener the caller bound (tests bind port 0 and read the address).
pub async fn serve_on(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::body::{Body, to_bytes};
    use axum::extract::State;
    use axum::http::{Request, Response};

    async fn handle(
        State(gateway): State<Arc<Gateway>>,
        axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
        request: Request<Body>,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let refuse = |r: HttpResponse| {
            Response::builder()
                .status(r.status)
                .header("content-type", "application/json")
                .header("connection", "close")
                .body(Body::from(r.body))
                .expect("a valid response")
        };
        // A body declared too large is refused before a byte of it is read.
        let declared = parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return refuse(HttpResponse::message(413, "Request Entity Too Large"));
        }
        let body = match tokio::time::timeout(BODY_DEADLINE, to_bytes(body, MAX_BODY)).await {
            Ok(Ok(b)) => b.to_vec(),
            Ok(Err(_)) => return refuse(HttpResponse::message(413, "Request Entity Too Large")),
            Err(_) => {
                tracing::warn!(target: "gateway", "{} {}: body not received within {:?}; answering 408", parts.method, parts.uri.path(), BODY_DEADLINE);
                return refuse(HttpResponse::message(408, "Request Timeout"));
            }
        };
        let req = HttpRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
            source_ip: Some(peer.ip().to_string()),
        };
        let started = std::time::Instant::now();
        let res = gateway.http(req.clone()).await;
        tracing::info!(target: "gateway", "{} {} -> {} ({:.1} ms)", req.method, req.path, res.status, started.elapsed().as_secs_f64() * 1000.0);
        let mut builder = Response::builder().status(res.status);
        for (k, v) in &res.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder
            .body(Body::from(res.body))
            .unwrap_or_else(|_| Response::new(Body::from("bad response headers")))
    }

    let app = axum::Router::new().fallback(handle).with_state(gateway);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn route_patterns_bind_parameters() {
        assert_eq!(
            matches("/orders/{id}", "/orders/o-1"),
            Some(vec![("id".into(), "o-1".into())])
        );
        assert_eq!(matches("/orders", "/orders"), Some(vec![]));
        assert_eq!(matches("/orders", "/orders/1"), None);
        assert_eq!(
            matches("/files/{path+}", "/files/a/b"),
            Some(vec![("path".into(), "a/b".into())])
        );
    }
}
