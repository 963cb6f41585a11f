//! Who is calling: the bearer token of an HTTP request, checked by the handler itself.
//!
//! API Gateway's JWT authorizer already checks tokens at the edge, but a route deployed without
//! it (or a local invocation) must not open a hole, so every request with an `Authorization`
//! header is validated again here (`authenticate`): RS256 only, the key found by `kid` in the
//! issuer's key set, `exp`, `nbf`, `iss` (`JWT_ISSUER`) and `aud` (`JWT_AUDIENCE`). The key
//! set comes through the [`KeySource`] port: fetched from the issuer over HTTPS on Lambda, read
//! from the identity service in process on the local stack, fixed in tests.

use async_trait::async_trait;
use bazaar_contracts::Actor;

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
}

/// A fixed key set (tests, and functions that are given the keys).
pub struct StaticKeys(pub Jwks);

#[async_trait]
impl KeySource for StaticKeys {
    async fn jwks(&self) -> Result<Jwks, BoxError> {
        Ok(self.0.clone())
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    Anonymous,
    /// A valid token, speaking for this actor.
    Caller(Actor),
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
    match check(keys.as_ref(), token, expect, deps.clock.now()).await {
        Ok(claims) => Auth::Caller(claims.actor()),
        Err(CheckError::Refused(e)) => Auth::Refused(e.to_string()),
        Err(CheckError::Unavailable(why)) => Auth::Unavailable(why),
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
    use super::bearer;

    #[test]
    fn only_bearer_credentials_are_read() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
