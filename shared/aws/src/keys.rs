//! The token issuer's public keys over HTTPS: `<JWT_ISSUER>/.well-known/jwks.json`, as API
//! Gateway's JWT authorizer finds them. The set is cached for ten minutes and fetched again
//! early when a token names an unknown key (a rotation), at most once a minute so that tokens
//! with made-up key ids cannot make the function hammer the issuer.
//!
//! The issuer's revoked sessions (`<JWT_ISSUER>/.well-known/revoked-sessions.json`) are read
//! every 30 seconds of the function's clock and used up to a minute old when a read fails
//! ([`RevokedCache`]): a warm container asks twice a minute, whatever its traffic.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bazaar_platform::auth::{KeySource, Revoked, RevokedCache};
use bazaar_platform::jwt::Jwks;
use bazaar_platform::ports::BoxError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::https::HttpsClient;

/// How long a fetched key set is used.
const TTL: Duration = Duration::from_secs(600);
/// The shortest time between two fetches.
const MIN_REFETCH: Duration = Duration::from_secs(60);
/// How long a fetch may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The largest key set read (a handful of keys is a few KB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The largest revocation list read: about 200,000 sessions (36 characters each, quoted). A
/// mass revocation (an incident disabling many users at once) must not make every token
/// uncheckable.
const MAX_REVOKED_BYTES: usize = 8 * 1024 * 1024;

/// The issuer's key set, fetched over HTTP(S) and cached.
pub struct HttpKeySource {
    url: String,
    revoked_url: String,
    revoked: RevokedCache,
    /// The same client type as the SDK's and the providers' (`Full` bodies), so that a
    /// binary holds one instantiation of hyper's client, not one per body type.
    client: HttpsClient,
    cache: Mutex<Option<(Jwks, Instant)>>,
}

impl HttpKeySource {
    /// Keys of the issuer whose base URL is `issuer`.
    pub fn new(issuer: &str) -> Result<HttpKeySource, String> {
        let base = issuer.trim_end_matches('/');
        let url = format!("{base}/.well-known/jwks.json");
        url.parse::<http::Uri>()
            .map_err(|e| format!("JWT_ISSUER {issuer:?} is not a URL: {e}"))?;
        Ok(HttpKeySource {
            url,
            revoked_url: format!("{base}/.well-known/revoked-sessions.json"),
            revoked: RevokedCache::default(),
            client: crate::https::client(),
            cache: Mutex::new(None),
        })
    }

    fn cached(&self, max_age: Duration) -> Option<Jwks> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(k, _)| k.clone())
    }

    /// A JSON document of the issuer, of at most `limit` bytes.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        limit: usize,
    ) -> Result<T, BoxError> {
        let request = http::Request::get(url).body(Full::new(Bytes::new()))?;
        let call = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), limit)
                .collect()
                .await?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("{url} answered {status}").into());
            }
            Ok::<_, BoxError>(serde_json::from_slice::<T>(&body)?)
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer from {url} within {TIMEOUT:?}"))?
    }

    async fn fetch(&self) -> Result<Jwks, BoxError> {
        let jwks: Jwks = self.get_json(&self.url, MAX_JWKS_BYTES).await?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((jwks.clone(), Instant::now()));
        Ok(jwks)
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn jwks(&self) -> Result<Jwks, BoxError> {
        match self.cached(TTL) {
            Some(k) => Ok(k),
            None => self.fetch().await,
        }
    }

    async fn refresh(&self) -> Result<Jwks, BoxError> {
        match self.cached(MIN_REFETCH) {
            Some(k) => Ok(k),
            None => self.fetch().await,
        }
    }

    async fn revoked(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<std::sync::Arc<Revoked>, BoxError> {
        self.revoked
            .get(now, || {
                self.get_json::<Revoked>(&self.revoked_url, MAX_REVOKED_BYTES)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// An issuer on a loopback socket answering every request with `body` (JSON), counting
    /// the requests.
    async fn issuer(body: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let body = body.clone();
                let count = count.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
                        let n = socket.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                    }
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    socket.write_all(head.as_bytes()).await.unwrap();
                    socket.write_all(body.as_bytes()).await.unwrap();
                    socket.shutdown().await.ok();
                });
            }
        });
        (url, served)
    }

    #[tokio::test]
    async fn a_mass_revocation_is_read_whole_and_the_list_is_read_again_after_thirty_seconds() {
        // 100,000 revoked sessions: 4 MB, far over the key set's limit.
        let sessions: Vec<String> = (0..100_000)
            .map(|i| format!("{:08x}-0000-4000-8000-{:012x}", i, i))
            .collect();
        let body = serde_json::to_string(&serde_json::json!({ "sessions": sessions })).unwrap();
        assert!(body.len() > 3_000_000);
        let (url, served) = issuer(body).await;
        let keys = HttpKeySource::new(&url).unwrap();
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();

        let list = keys.revoked(t0).await.unwrap();
        assert_eq!(list.sessions.len(), 100_000);
        assert!(
            list.sessions
                .contains("0001869f-0000-4000-8000-00000001869f")
        );
        keys.revoked(t0 + chrono::Duration::seconds(29))
            .await
            .unwrap();
        assert_eq!(
            served.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "cached"
        );
        keys.revoked(t0 + chrono::Duration::seconds(30))
            .await
            .unwrap();
        assert_eq!(
            served.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "read again"
        );
    }
}
