//! A channel's partner API over HTTPS: where it is, read once at start, the partner key from
//! the secret store (refreshed, so a rotated key needs no redeploy), and a [`Transport`] with
//! a deadline on every call.

use std::time::Duration;

use async_trait::async_trait;
use bazaar_aws::https::HttpsClient;
use bazaar_channels::client::{HttpCall, HttpReply, Transport};
use std::sync::Arc;

use bazaar_platform::SettingsError;
use bazaar_platform::secrets::Secret;
use bazaar_platform::settings::Env;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// How long a call may take before it counts as unanswered, unless the settings say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read from a channel.
const MAX_ANSWER: usize = 1024 * 1024;

/// The shortest partner key accepted.
pub const MIN_KEY_LEN: usize = 8;

/// Where a channel's partner API is: `<PREFIX>_URL` and `<PREFIX>_TIMEOUT_MS` (1 ms to
/// 60 s). The partner key is a secret, named by `<PREFIX>_PARTNER_KEY_SECRET_ARN`
/// ([`partner_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSettings {
    /// The base URL (`https://...`, or `http://` for the local fakes).
    pub url: String,
    /// The deadline of one call.
    pub timeout: Duration,
}

/// The partner key Bazaar holds at the channel whose variables start with `prefix`, from the
/// secret store.
pub fn partner_key(
    book: &bazaar_platform::secrets::SecretBook,
    prefix: &str,
) -> Result<Arc<Secret>, SettingsError> {
    book.get(
        &format!("{prefix}_PARTNER_KEY"),
        MIN_KEY_LEN,
        "the partner key Bazaar holds at the channel",
    )
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
        let default_ms = i64::try_from(DEFAULT_TIMEOUT.as_millis()).unwrap_or(5_000);
        let ms = env.number_or(&format!("{prefix}_TIMEOUT_MS"), 1..=60_000, default_ms)?;
        Ok(ChannelSettings {
            url: url.trim_end_matches('/').to_string(),
            timeout: Duration::from_millis(ms.unsigned_abs()),
        })
    }
}

/// Calls over HTTP(S), one connection pool per process, each with the partner key as it is
/// in the secret store now (the `bearer` of a call is not used).
pub struct HttpTransport {
    base: String,
    timeout: Duration,
    key: Arc<Secret>,
    client: HttpsClient,
}

impl HttpTransport {
    /// A transport to the channel its settings name, presenting `key`.
    pub fn new(settings: &ChannelSettings, key: Arc<Secret>) -> HttpTransport {
        HttpTransport {
            base: settings.url.clone(),
            timeout: settings.timeout,
            key,
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
    /// Sends the call; when the channel refuses the key (401) and the secret store holds a
    /// newer one (rotated since it was read), sends it once more with that.
    async fn send(&self, call: HttpCall) -> Result<HttpReply, String> {
        let key = self.key.versions().await.map_err(|e| e.to_string())?;
        let reply = self.send_with(&call, key.current.expose()).await?;
        if reply.status == 401 && self.key.refresh().await {
            tracing::info!(path = %call.path, "the channel refused the partner key; sending again with the rotated key");
            let key = self.key.versions().await.map_err(|e| e.to_string())?;
            return self.send_with(&call, key.current.expose()).await;
        }
        Ok(reply)
    }
}

impl HttpTransport {
    async fn send_with(&self, call: &HttpCall, key: &str) -> Result<HttpReply, String> {
        let call = call.clone();
        let uri = format!("{}{}{}", self.base, call.path, query_string(&call.query));
        let mut request = http::Request::builder()
            .method(call.method)
            .uri(&uri)
            .header("authorization", format!("Bearer {key}"));
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
