//! Who is calling: the bearer token of an HTTP request, checked by the handler itself.
//!
//! API Gateway's JWT authorizer already checks tokens at the edge, but a route deployed without
//! it (or a local invocation) must not open a hole, so every request with an `Authorization`
//! header is validated again here (`authenticate`): RS256 only, the key found by `kid` in the
//! issuer's key set, `exp`, `nbf`, `iss` (`JWT_ISSUER`) and `aud` (`JWT_AUDIENCE`). The key
//! set comes through the [`KeySource`] port: fetched from the issuer over HTTPS on Lambda, read
//! from the identity service in process on the local stack, fixed in tests.
//!
//! A valid token can still have been revoked: its user was disabled or changed its password.
//! The issuer publishes the sessions it revoked ([`Revoked`]) beside its keys, and a function
//! refuses a token whose session is among them. The list is small (a session stays on it only
//! as long as a token of it could live) and says nothing about whose sessions they were.
//! Sources read it at most [`REVOCATIONS_MAX_AGE`] late, which is the "within a minute" of a
//! disabled user's tokens: past that age without a fresh copy, tokens are not accepted (503)
//! rather than let a revoked one through.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::{Actor, Flags};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deps::Deps;
use crate::jwt::{self, Expect, Jwks, JwtError};
use crate::ports::BoxError;

/// Where the issuer's public keys come from.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The key set, possibly cached.
    async fn jwks(&self) -> Result<Jwks, BoxError>;
    /// The key set fetched again: a token names a key the cached set does not have (the
    /// issuer rotated its keys). Sources may refuse to refetch too often and return the cache.
    async fn refresh(&self) -> Result<Jwks, BoxError> {
        self.jwks().await
    }
    /// The sessions the issuer has revoked, as of no more than [`REVOCATIONS_MAX_AGE`] before
    /// `now` (the function's clock).
    /// Shared, not copied: every token check reads it, and it may hold many sessions.
    async fn revoked(&self, now: DateTime<Utc>) -> Result<Arc<Revoked>, BoxError>;
}

/// How late a function may learn that a session was revoked: the bound on how long a
/// disabled user's token keeps working.
pub const REVOCATIONS_MAX_AGE: chrono::Duration = chrono::Duration::seconds(60);

/// How often a source that caches the list reads it again: half of [`REVOCATIONS_MAX_AGE`],
/// so that one failed read does not yet make tokens uncheckable.
pub const REVOCATIONS_REFRESH: chrono::Duration = chrono::Duration::seconds(30);

/// The sessions whose tokens are refused (`GET /.well-known/revoked-sessions.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The revoked sessions' ids (the `sid` claim).
    pub sessions: BTreeSet<String>,
}

impl Revoked {
    /// Whether a token of `claims` was revoked.
    pub fn refuses(&self, claims: &jwt::Claims) -> bool {
        !claims.sid.is_empty() && self.sessions.contains(&claims.sid)
    }
}

/// A fixed key set that revokes nothing (tests, and functions that are given the keys).
pub struct StaticKeys(pub Jwks);

#[async_trait]
impl KeySource for StaticKeys {
    async fn jwks(&self) -> Result<Jwks, BoxError> {
        Ok(self.0.clone())
    }

    async fn revoked(&self, _now: DateTime<Utc>) -> Result<Arc<Revoked>, BoxError> {
        Ok(Arc::default())
    }
}

/// A cached copy of the revocation list, for sources that read it over the network: read
/// again when older than [`REVOCATIONS_REFRESH`], and used up to [`REVOCATIONS_MAX_AGE`]
/// when a read fails. Ages are measured on the caller's clock, so tests drive it.
#[derive(Default)]
pub struct RevokedCache {
    copy: std::sync::Mutex<Option<(Arc<Revoked>, DateTime<Utc>)>>,
}

impl RevokedCache {
    /// The list, from the cache when fresh enough, else from `read`.
    pub async fn get<F, Fut>(&self, now: DateTime<Utc>, read: F) -> Result<Arc<Revoked>, BoxError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Revoked, BoxError>>,
    {
        let cached = self.copy.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // A copy "from the future" (a clock set back) is not trusted.
        let age = |at: DateTime<Utc>| (now >= at).then(|| now - at);
        if let Some((list, at)) = &cached
            && age(*at).is_some_and(|a| a < REVOCATIONS_REFRESH)
        {
            return Ok(list.clone());
        }
        match read().await {
            Ok(list) => {
                let list = Arc::new(list);
                *self.copy.lock().unwrap_or_else(|p| p.into_inner()) = Some((list.clone(), now));
                Ok(list)
            }
            Err(e) => match cached {
                Some((list, at)) if age(at).is_some_and(|a| a < REVOCATIONS_MAX_AGE) => {
                    tracing::warn!(error = %e, "revocation list unreadable; using the copy read at {at}");
                    Ok(list)
                }
                _ => Err(e),
            },
        }
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    Anonymous,
    /// A valid token, speaking for this actor, with the user's flags.
    Caller(Actor, Flags),
    /// A token that is not accepted, and why (for the problem document: never which key or
    /// secret was expected).
    Refused(String),
    /// The token could not be checked now (the key set is unreachable): try again.
    Unavailable(String),
    /// The function is deployed without `JWT_ISSUER`, `JWT_AUDIENCE` or a key source: a
    /// deployment mistake, answered 500 so that nobody is let in by accident.
    Misconfigured(String),
}

/// The bearer token of an `Authorization` header value.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Whom a function's tokens must be issued by and for (`JWT_ISSUER`, `JWT_AUDIENCE`), read
/// once when its API is built; `None` for a function that takes no tokens (the issuer itself),
/// where a request with a token is answered as a deployment mistake.
pub(crate) fn expected_tokens(deps: &Deps) -> Option<Expect> {
    let env = crate::settings::Env::new(&deps.env);
    Some(Expect {
        issuer: env.get("JWT_ISSUER")?.to_string(),
        audience: env.get("JWT_AUDIENCE")?.to_string(),
    })
}

/// Checks the `Authorization` header of a request, if it has one, against `expect`
/// ([`expected_tokens`]).
pub(crate) async fn authenticate(
    deps: &Deps,
    expect: Option<&Expect>,
    authorization: Option<&str>,
) -> Auth {
    let Some(header) = authorization else {
        return Auth::Anonymous;
    };
    let Some(token) = bearer(header) else {
        return Auth::Refused("the Authorization header must be `Bearer <token>`".into());
    };
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Auth::Refused(JwtError::TooLarge.to_string());
    }
    let (Some(expect), Some(keys)) = (expect, deps.keys.as_ref()) else {
        return Auth::Misconfigured(format!(
            "{} cannot check tokens: JWT_ISSUER, JWT_AUDIENCE and a key source are required",
            deps.function
        ));
    };
    let now = deps.clock.now();
    let claims = match check(keys.as_ref(), token, expect, now).await {
        Ok(claims) => claims,
        Err(CheckError::Refused(e)) => return Auth::Refused(e.to_string()),
        Err(CheckError::Unavailable(why)) => return Auth::Unavailable(why),
    };
    match keys.revoked(now).await {
        Ok(revoked) if revoked.refuses(&claims) => Auth::Refused(
            "the token was revoked (the account was disabled or its password changed): sign in again"
                .into(),
        ),
        Ok(_) => Auth::Caller(claims.actor(), claims.flags()),
        Err(e) => Auth::Unavailable(format!("the issuer's revocation list is unavailable: {e}")),
    }
}

/// Why a token did not pass [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The token is not accepted.
    Refused(JwtError),
    /// The issuer's keys could not be read.
    Unavailable(String),
}

/// Validates a token with the issuer's keys, reading them again once when the token names a
/// key the set does not have (a rotation). The edge (the local API Gateway's JWT authorizer)
/// and the functions check tokens with this same rule.
pub async fn check(
    keys: &dyn KeySource,
    token: &str,
    expect: &Expect,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<jwt::Claims, CheckError> {
    let unavailable =
        |e: BoxError| CheckError::Unavailable(format!("the issuer's keys are unavailable: {e}"));
    let jwks = keys.jwks().await.map_err(unavailable)?;
    match jwt::validate(token, &jwks, expect, now) {
        Err(JwtError::UnknownKey(_)) => {
            let fresh = keys.refresh().await.map_err(unavailable)?;
            jwt::validate(token, &fresh, expect, now)
        }
        other => other,
    }
    .map_err(CheckError::Refused)
}

#[cfg(test)]
mod tests {
    use super::{REVOCATIONS_MAX_AGE, REVOCATIONS_REFRESH, Revoked, RevokedCache, bearer};
    use crate::ports::BoxError;
    use chrono::{DateTime, Duration, Utc};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn list(sessions: &[&str]) -> Revoked {
        Revoked {
            sessions: sessions.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Reads the cache at `now`, the source answering `answer`; returns the list and whether
    /// the source was read.
    async fn read(
        cache: &RevokedCache,
        now: DateTime<Utc>,
        answer: Result<Revoked, &str>,
    ) -> (Result<Revoked, String>, bool) {
        let reads = AtomicU32::new(0);
        let got = cache
            .get(now, || async {
                reads.fetch_add(1, Ordering::SeqCst);
                answer.map_err(|e| BoxError::from(e.to_string()))
            })
            .await
            .map(|list| (*list).clone())
            .map_err(|e| e.to_string());
        (got, reads.load(Ordering::SeqCst) == 1)
    }

    #[tokio::test]
    async fn the_list_is_read_again_after_thirty_seconds_and_trusted_at_most_a_minute() {
        let cache = RevokedCache::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            read(&cache, t0, Ok(list(&["a"]))).await,
            (Ok(list(&["a"])), true)
        );
        // Fresh: not read again.
        let just_before = t0 + REVOCATIONS_REFRESH - Duration::milliseconds(1);
        assert_eq!(
            read(&cache, just_before, Ok(list(&["a", "b"]))).await,
            (Ok(list(&["a"])), false)
        );
        // Due: read again, and the new list is used.
        let t1 = t0 + REVOCATIONS_REFRESH;
        assert_eq!(
            read(&cache, t1, Ok(list(&["a", "b"]))).await,
            (Ok(list(&["a", "b"])), true)
        );
        // The source fails: the copy serves while younger than a minute...
        let due = t1 + REVOCATIONS_REFRESH;
        assert_eq!(
            read(&cache, due, Err("down")).await,
            (Ok(list(&["a", "b"])), true)
        );
        let last = t1 + REVOCATIONS_MAX_AGE - Duration::milliseconds(1);
        assert_eq!(
            read(&cache, last, Err("down")).await,
            (Ok(list(&["a", "b"])), true)
        );
        // ...and no longer: tokens cannot be checked (503), none is let through blindly.
        let (got, _) = read(&cache, t1 + REVOCATIONS_MAX_AGE, Err("down")).await;
        assert_eq!(got, Err("down".to_string()));
    }

    #[tokio::test]
    async fn a_copy_from_the_future_is_not_trusted() {
        let cache = RevokedCache::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert!(read(&cache, t0, Ok(list(&["a"]))).await.0.is_ok());
        let earlier = t0 - Duration::seconds(5);
        assert_eq!(
            read(&cache, earlier, Ok(list(&[]))).await,
            (Ok(list(&[])), true)
        );
        let (got, _) = read(&cache, earlier - Duration::seconds(5), Err("down")).await;
        assert!(got.is_err());
    }

    #[test]
    fn only_a_listed_session_is_refused() {
        let mut claims = crate::jwt::Claims {
            iss: "i".into(),
            sub: "ada".into(),
            aud: "a".into(),
            roles: vec![],
            iat: 0,
            nbf: 0,
            exp: 1,
            jti: "j".into(),
            sid: "s1".into(),
            flags: String::new(),
        };
        assert!(list(&["s1"]).refuses(&claims));
        assert!(!list(&["s2"]).refuses(&claims));
        claims.sid.clear();
        assert!(
            !list(&[""]).refuses(&claims),
            "no session: nothing to match"
        );
    }

    #[test]
    fn only_bearer_credentials_are_read() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
