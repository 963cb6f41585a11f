//! A channel's partner API over HTTPS: where it is and the partner key, read once at start,
//! and a [`Transport`] with a deadline on every call.

use std::time::Duration;

use async_trait::async_trait;
use bazaar_aws::https::HttpsClient;
use bazaar_channels::client::{HttpCall, HttpReply, Transport};
use bazaar_platform::SettingsError;
use bazaar_platform::settings::Env;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// How long a call may take before it counts as unanswered, unless the settings say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read from a channel.
const MAX_ANSWER: usize = 1024 * 1024;

/// The shortest partner key accepted.
pub const MIN_KEY_LEN: usize = 8;

/// Where a channel's partner API is: `<PREFIX>_URL`, `<PREFIX>_PARTNER_KEY` (a secret, never
/// logged) and `<PREFIX>_TIMEOUT_MS` (1 ms to 60 s).
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelSettings {
    /// The base URL (`https://...`, or `http://` for the local fakes).
    pub url: String,
    /// The partner key.
    pub key: String,
    /// The deadline of one call.
    pub timeout: Duration,
}

impl std::fmt::Debug for ChannelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSettings")
            .field("url", &self.url)
            .field("key", &"<hidden>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ChannelSettings {
    /// Reads the settings of the channel whose variables start with `prefix` (`AGORA`).
    pub fn read(env: &Env<'_>, prefix: &str) -> Result<ChannelSettings, SettingsError> {
        const URL: &str = "the channel's base URL, http:// or https:// with a host";
        let url_var = format!("{prefix}_URL");
        let url = env.required(&url_var, URL)?;
        let parsed: Option<http::Uri> = url.parse().ok();
        if !parsed
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        {
            return Err(env.invalid(&url_var, URL));
        }
        let key = env.secret(
            &format!("{prefix}_PARTNER_KEY"),
            MIN_KEY_LEN,
            "the partner key Bazaar holds at the channel, at least 8 characters",
        )?;
        let default_ms = i64::try_from(DEFAULT_TIMEOUT.as_millis()).unwrap_or(5_000);
        let ms = env.number_or(&format!("{prefix}_TIMEOUT_MS"), 1..=60_000, default_ms)?;
        Ok(ChannelSettings {
            url: url.trim_end_matches('/').to_string(),
            key: key.to_string(),
            timeout: Duration::from_millis(ms.unsigned_abs()),
        })
    }
}

/// Calls over HTTP(S), one connection pool per process.
pub struct HttpTransport {
    base: String,
    timeout: Duration,
    client: HttpsClient,
}

impl HttpTransport {
    /// A transport to the channel its settings name.
    pub fn new(settings: &ChannelSettings) -> HttpTransport {
        HttpTransport {
            base: settings.url.clone(),
            timeout: settings.timeout,
            client: bazaar_aws::https::client(),
        }
    }
}

fn query_string(query: &[(String, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, String> {
        let uri = format!("{}{}{}", self.base, call.path, query_string(&call.query));
        let mut request = http::Request::builder()
            .method(call.method)
            .uri(&uri)
            .header("authorization", format!("Bearer {}", call.bearer));
        if call.body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(call.body.unwrap_or_default())))
            .map_err(|e| format!("building the request to {}: {e}", call.path))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("calling {}: {e}", call.path))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("reading the answer of {}: {e}", call.path))?
                .to_bytes()
                .to_vec();
            Ok::<_, String>(HttpReply {
                status,
                retry_after,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no answer from {} within {} ms",
                    call.path,
                    self.timeout.as_millis()
                )
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(query_string(&[]), "");
        assert_eq!(
            query_string(&[
                ("since".into(), "a b&c".into()),
                ("limit".into(), "5".into())
            ]),
            "?since=a%20b%26c&limit=5"
        );
    }
}
