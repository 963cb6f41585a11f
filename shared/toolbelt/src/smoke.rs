//! `bazaar smoke`: after a deployment, one order placed and confirmed through the public APIs,
//! as a customer would, with a product a merchant creates for it.
//!
//! The steps only speak HTTP through a [`Transport`], and wait through a function the caller
//! gives: the command line uses HTTPS and real pauses; the tests run the very same steps
//! against the local stack in process, waiting by settling its simulated clock.

use std::future::Future;
use std::pin::Pin;

use anyhow::{Context, bail};
use async_trait::async_trait;
use serde_json::{Value, json};

/// One HTTP exchange.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `body` (JSON, if any) to `url` with `headers`; returns the status and the JSON
    /// body (`null` when the body is not JSON).
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)>;
}

/// What the smoke test needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The marketplace API's base URL (the stack's `ApiUrl` output).
    pub api: String,
    /// The identity API's base URL (the `IdentityUrl` output).
    pub identity: String,
    /// A customer's user name and password.
    pub customer: (String, String),
    /// A merchant's user name and password.
    pub merchant: (String, String),
    /// The card token to pay with (`tok_ok` for the fake provider; a sandbox token otherwise).
    pub card_token: String,
    /// How many times to wait for each asynchronous step before giving up.
    pub attempts: usize,
    /// A suffix that makes the smoke product's sku unique.
    pub run_id: String,
}

/// What the smoke test did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The product it created.
    pub sku: String,
    /// The order it placed, now confirmed.
    pub order_id: String,
    /// Steps, in order, for people.
    pub steps: Vec<String>,
}

/// A pause between two checks of an asynchronous step.
pub type Wait<'a> = &'a mut (dyn FnMut() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send);

fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

async fn token(t: &dyn Transport, s: &Settings, who: &(String, String)) -> anyhow::Result<String> {
    let (status, body) = t
        .send(
            "POST",
            &url(&s.identity, "/auth/token"),
            &[("content-type", "application/json".into())],
            Some(&json!({"username": who.0, "password": who.1})),
        )
        .await?;
    if status != 200 {
        bail!("logging in as {} gave {status}: {body}", who.0);
    }
    body["access_token"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("no access_token in {body}"))
}

/// Whether an access token (ours, just issued) carries the `test-order` flag. Only its
/// claims are read, not its signature: the API checks that.
fn carries_test_order(token: &str) -> bool {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|claims| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .and_then(|claims| claims["flags"].as_str().map(String::from))
        .and_then(|flags| bazaar_contracts::Flags::decode(&flags).ok())
        .is_some_and(|flags| flags.test_order())
}

/// Runs the smoke test: a merchant describes, prices and stocks a product; once it is for
/// sale, a customer orders it and the order must reach `confirmed`. The customer must carry
/// the `test-order` flag, so that on production the order is charged in the provider's test
/// mode and notifies no one: without it the test refuses to order.
pub async fn run(t: &dyn Transport, s: &Settings, wait: Wait<'_>) -> anyhow::Result<Report> {
    let mut steps = Vec::new();
    let customer = token(t, s, &s.customer).await?;
    if !carries_test_order(&customer) {
        bail!(
            "{} does not carry the test-order flag: its order would be charged and notified for real. Set it first: bazaar [--aws --stage <stage>] users flags {} test-order",
            s.customer.0,
            s.customer.0
        );
    }
    let merchant = token(t, s, &s.merchant).await?;
    steps.push(format!(
        "logged in as {} and {}",
        s.customer.0, s.merchant.0
    ));
    let sku = format!("SMOKE-{}", s.run_id.to_ascii_uppercase());
    let auth = |tok: &str| {
        vec![
            ("authorization", format!("Bearer {tok}")),
            ("content-type", "application/json".to_string()),
        ]
    };
    for (path, body) in [
        (
            format!("/products/{sku}"),
            json!({"title": "Smoke test product", "description": "Created by bazaar smoke.", "category": "smoke"}),
        ),
        (
            format!("/products/{sku}/price"),
            json!({"amount_cents": 100, "currency": "EUR"}),
        ),
        (format!("/inventory/{sku}"), json!({"available": 1})),
    ] {
        let (status, answer) = t
            .send("PUT", &url(&s.api, &path), &auth(&merchant), Some(&body))
            .await?;
        if !(200..300).contains(&status) {
            bail!("PUT {path} gave {status}: {answer}");
        }
    }
    steps.push(format!("{sku} described, priced and stocked"));

    let mut order_id = None;
    for attempt in 0..s.attempts {
        // A 422 is stored under its idempotency key: each attempt has its own.
        let mut headers = auth(&customer);
        headers.push(("idempotency-key", format!("smoke-{}-{attempt}", s.run_id)));
        let body =
            json!({"items": [{"sku": sku, "quantity": 1}], "payment": {"token": s.card_token}});
        let (status, answer) = t
            .send("POST", &url(&s.api, "/orders"), &headers, Some(&body))
            .await?;
        match status {
            202 | 200 => {
                order_id = answer["order_id"].as_str().map(String::from);
                break;
            }
            // Not for sale yet: the price reaches orders asynchronously.
            422 => wait().await,
            _ => bail!("POST /orders gave {status}: {answer}"),
        }
    }
    let order_id = order_id.with_context(|| {
        format!(
            "{sku} was not for sale after {} attempts (is orders-prices running?)",
            s.attempts
        )
    })?;
    steps.push(format!("order {order_id} placed"));

    for _ in 0..s.attempts {
        let (status, order) = t
            .send(
                "GET",
                &url(&s.api, &format!("/orders/{order_id}")),
                &auth(&customer),
                None,
            )
            .await?;
        if status != 200 {
            bail!("GET /orders/{order_id} gave {status}: {order}");
        }
        match order["status"].as_str() {
            Some("confirmed") => {
                steps.push(format!("order {order_id} confirmed"));
                return Ok(Report {
                    sku,
                    order_id,
                    steps,
                });
            }
            Some("cancelled") => bail!("order {order_id} was cancelled: {order}"),
            _ => wait().await,
        }
    }
    bail!(
        "order {order_id} was not confirmed after {} checks",
        s.attempts
    )
}

/// HTTP(S) trusting Mozilla's roots (the functions' client).
pub struct HttpsTransport {
    client: bazaar_aws::https::HttpsClient,
}

impl Default for HttpsTransport {
    fn default() -> Self {
        HttpsTransport {
            client: bazaar_aws::https::client(),
        }
    }
}

#[async_trait]
impl Transport for HttpsTransport {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        use http_body_util::BodyExt;
        let mut request = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.client.request(request),
        )
        .await
        .with_context(|| format!("{method} {url}: no answer in 10 s"))?
        .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}
