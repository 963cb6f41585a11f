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
use bazaar_platform::SettingsError;
use bazaar_platform::settings::Env;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a call may take before it counts as unanswered, unless `PROVIDER_TIMEOUT_MS` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer read from the provider.
const MAX_ANSWER: usize = 64 * 1024;

/// Where the provider is and how long to wait for it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// `PROVIDER_URL` (required): `https://...`, or `http://` for a local fake.
    pub url: String,
    /// `PROVIDER_API_KEY`, sent as a bearer token (a secret: never logged).
    pub api_key: Option<String>,
    /// `PROVIDER_TIMEOUT_MS` (1 ms to 60 s; [`DEFAULT_TIMEOUT`] when unset).
    pub timeout: Duration,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("timeout", &self.timeout)
            .finish()
    }
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
            api_key: env.get("PROVIDER_API_KEY").map(String::from),
            timeout: Duration::from_millis(ms.unsigned_abs()),
        })
    }
}

/// The provider's HTTP API.
pub struct HttpProvider {
    base: String,
    api_key: Option<String>,
    timeout: Duration,
    client: HttpsClient,
}

impl HttpProvider {
    /// A client for the provider at `base` (`https://...`, or `http://` for a local fake).
    pub fn new(
        base: &str,
        api_key: Option<String>,
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

    /// The client its settings describe ([`ProviderSettings`]).
    pub fn from_settings(settings: &ProviderSettings) -> Result<HttpProvider, SettingsError> {
        HttpProvider::new(&settings.url, settings.api_key.clone(), settings.timeout).map_err(
            |why| SettingsError {
                variable: "PROVIDER_URL".into(),
                found: Some(settings.url.clone()),
                expected: format!("a provider this function can reach ({why})"),
            },
        )
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        body: &B,
    ) -> Result<T, ProviderError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ProviderError::Rejected(format!("encoding the request: {e}")))?;
        let request = http::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, key);
        self.send(path, request, Bytes::from(body)).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProviderError> {
        let request = http::Request::get(format!("{}{path}", self.base));
        self.send(path, request, Bytes::new()).await
    }

    /// Sends a request with the API key and the deadline, and reads the answer.
    async fn send<T: DeserializeOwned>(
        &self,
        path: &str,
        mut request: http::request::Builder,
        body: Bytes,
    ) -> Result<T, ProviderError> {
        if let Some(k) = &self.api_key {
            request = request.header("authorization", format!("Bearer {k}"));
        }
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
        let (status, bytes) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                ProviderError::Unavailable(format!(
                    "no answer from {path} within {} ms",
                    self.timeout.as_millis()
                ))
            })??;
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
        Err(ProviderError::from_status(status.as_u16(), what))
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
