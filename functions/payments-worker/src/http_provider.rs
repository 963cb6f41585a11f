//! The payment provider over HTTPS (the [`bazaar_payments::wire`] API): one connection pool per
//! process, a deadline on every call, and the answer's status mapped to "try again" or
//! "refused".

use std::time::Duration;

use async_trait::async_trait;
use bazaar_aws::https::HttpsClient;
use bazaar_payments::wire::{
    ChargeBody, ChargeList, ChargeObject, ErrorBody, IDEMPOTENCY_HEADER, RefundBody, RefundObject,
};
use bazaar_payments::{
    Charge, ChargeRequest, LedgerCharge, LedgerPage, PaymentProvider, ProviderError, Refund,
    RefundRequest,
};
use std::sync::Arc;

use bazaar_platform::secrets::Secret;
use bazaar_platform::settings::Env;
use bazaar_platform::{Deps, SettingsError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What the function calls the provider's API key in the secret store.
pub const API_KEY: &str = "PROVIDER_API_KEY";

/// How long a call may take before it counts as unanswered, unless `PROVIDER_TIMEOUT_MS` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer read from the provider.
const MAX_ANSWER: usize = 64 * 1024;

/// The shortest API key accepted.
pub const MIN_KEY_LEN: usize = 8;

/// Where the provider is and how long to wait for it. The API key is not a setting: it is a
/// secret, in the secret store ([`HttpProvider::from_deps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// `PROVIDER_URL` (required): `https://...`, or `http://` for a local fake.
    pub url: String,
    /// `PROVIDER_TIMEOUT_MS` (1 ms to 60 s; [`DEFAULT_TIMEOUT`] when unset).
    pub timeout: Duration,
}

impl bazaar_platform::Settings for ProviderSettings {
    fn read(env: &Env<'_>) -> Result<ProviderSettings, SettingsError> {
        const URL: &str = "the provider's base URL, http:// or https:// with a host";
        let url = env.required("PROVIDER_URL", URL)?;
        let parsed: Option<http::Uri> = url.parse().ok();
        if !parsed
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        {
            return Err(env.invalid("PROVIDER_URL", URL));
        }
        let default_ms = i64::try_from(DEFAULT_TIMEOUT.as_millis()).unwrap_or(3_000);
        let ms = env.number_or("PROVIDER_TIMEOUT_MS", 1..=60_000, default_ms)?;
        Ok(ProviderSettings {
            url: url.to_string(),
            timeout: Duration::from_millis(ms.unsigned_abs()),
        })
    }
}

/// The provider's HTTP API.
pub struct HttpProvider {
    base: String,
    api_key: Option<Arc<Secret>>,
    timeout: Duration,
    client: HttpsClient,
}

impl HttpProvider {
    /// A client for the provider at `base` (`https://...`, or `http://` for a local fake).
    pub fn new(
        base: &str,
        api_key: Option<Arc<Secret>>,
        timeout: Duration,
    ) -> Result<HttpProvider, String> {
        let uri: http::Uri = base
            .parse()
            .map_err(|e| format!("PROVIDER_URL {base:?} is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "PROVIDER_URL {base:?} must be an http:// or https:// URL"
            ));
        }
        Ok(HttpProvider {
            base: base.trim_end_matches('/').to_string(),
            api_key,
            timeout,
            client: bazaar_aws::https::client(),
        })
    }

    /// The client a function's ports describe: [`ProviderSettings`] from its environment,
    /// and the API key from the secret store when the environment names one
    /// (`PROVIDER_API_KEY_SECRET_ARN`; a local fake may take calls without a key).
    pub fn from_deps(deps: &Deps) -> Result<HttpProvider, SettingsError> {
        let settings: ProviderSettings = deps.settings()?;
        let api_key = deps
            .secrets
            .names()
            .any(|n| n == API_KEY)
            .then(|| {
                deps.secrets.get(
                    API_KEY,
                    MIN_KEY_LEN,
                    "the API key Bazaar holds at the payment provider",
                )
            })
            .transpose()?;
        HttpProvider::new(&settings.url, api_key, settings.timeout).map_err(|why| SettingsError {
            variable: "PROVIDER_URL".into(),
            found: Some(settings.url.clone()),
            expected: format!("a provider this function can reach ({why})"),
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        body: &B,
    ) -> Result<T, ProviderError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ProviderError::Rejected(format!("encoding the request: {e}")))?;
        self.send(http::Method::POST, path, Some(key), Bytes::from(body))
            .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProviderError> {
        self.send(http::Method::GET, path, None, Bytes::new()).await
    }

    /// Sends a request with the API key and the deadline, and reads the answer. When the
    /// provider refuses the key (401) and the secret store holds a newer one (the key was
    /// rotated since it was read), the request is sent once more with it.
    async fn send<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Bytes,
    ) -> Result<T, ProviderError> {
        let mut retried = false;
        loop {
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(format!("{}{path}", self.base));
            if let Some(key) = idempotency_key {
                request = request
                    .header("content-type", "application/json")
                    .header(IDEMPOTENCY_HEADER, key);
            }
            if let Some(secret) = &self.api_key {
                let key = secret.versions().await.map_err(|e| {
                    ProviderError::Unavailable(format!("the API key cannot be read: {e}"))
                })?;
                request =
                    request.header("authorization", format!("Bearer {}", key.current.expose()));
            }
            let (status, bytes) = self.exchange(path, request, body.clone()).await?;
            if status == http::StatusCode::UNAUTHORIZED
                && !retried
                && let Some(secret) = &self.api_key
                && secret.refresh().await
            {
                tracing::info!(
                    "the provider refused the API key; sending again with the rotated key"
                );
                retried = true;
                continue;
            }
            if status.is_success() {
                return serde_json::from_slice(&bytes).map_err(|e| {
                    ProviderError::Unavailable(format!(
                        "{path} answered {status} with a body we cannot read: {e}"
                    ))
                });
            }
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            let what = format!("{path} answered {status}: {message}");
            return Err(ProviderError::from_status(status.as_u16(), what));
        }
    }

    /// One request within the deadline: the answer's status and body.
    async fn exchange(
        &self,
        path: &str,
        request: http::request::Builder,
        body: Bytes,
    ) -> Result<(http::StatusCode, Bytes), ProviderError> {
        let request = request
            .body(Full::new(body))
            .map_err(|e| ProviderError::Rejected(format!("building the request: {e}")))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ProviderError::Unavailable(format!("calling {path}: {e}")))?;
            let status = response.status();
            let bytes = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| ProviderError::Unavailable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ProviderError>((status, bytes))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                ProviderError::Unavailable(format!(
                    "no answer from {path} within {} ms",
                    self.timeout.as_millis()
                ))
            })?
    }
}

#[async_trait]
impl PaymentProvider for HttpProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let body = ChargeBody::of(request);
        let object: ChargeObject = self
            .post("/v1/charges", &request.idempotency_key, &body)
            .await?;
        object.into_charge()
    }

    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError> {
        let body = RefundBody {
            payment_id: request.payment_id.clone(),
            reference: request.order_id.clone(),
            amount_cents: request.amount_cents,
        };
        let object: RefundObject = self
            .post("/v1/refunds", &request.idempotency_key, &body)
            .await?;
        Ok(Refund {
            refund_id: object.id,
        })
    }

    async fn retrieve(&self, payment_id: &str) -> Result<LedgerCharge, ProviderError> {
        let object: ChargeObject = self
            .get(&format!("/v1/charges/{}", escape(payment_id)))
            .await?;
        object.into_ledger()
    }

    async fn list(
        &self,
        created_from: i64,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Result<LedgerPage, ProviderError> {
        let mut path = format!("/v1/charges?created_from={created_from}&limit={limit}");
        if let Some(after) = starting_after {
            path.push_str(&format!("&starting_after={}", escape(after)));
        }
        self.get::<ChargeList>(&path).await?.into_page()
    }
}

/// A payment id as one path segment or query value: anything but letters, digits, `-` and
/// `_` percent-encoded (ids come from the provider's own answers, but a callback names one too).
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
