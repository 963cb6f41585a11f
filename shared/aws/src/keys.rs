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

    /// A JSON document of the issuer.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, BoxError> {
        let request = http::Request::get(url).body(Full::new(Bytes::new()))?;
        let call = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), 256 * 1024)
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
        let jwks: Jwks = self.get_json(&self.url).await?;
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

    async fn revoked(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Revoked, BoxError> {
        self.revoked
            .get(now, || self.get_json::<Revoked>(&self.revoked_url))
            .await
    }
}
