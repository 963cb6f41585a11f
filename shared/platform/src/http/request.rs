//! A request as a route sees it: path parameters and query decoded, the body as typed JSON
//! (a 400 naming the field at fault otherwise), and the caller.

use std::collections::BTreeMap;

use bazaar_contracts::{Actor, Role};
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use crate::auth::Auth;
use crate::ports::HandlerError;

/// An HTTP request as a handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without query.
    pub path: String,
    /// Path parameters from the route pattern.
    pub params: BTreeMap<String, String>,
    /// Query parameters (the first value of each).
    pub query: BTreeMap<String, String>,
    /// Headers, names lowercase.
    pub headers: HeaderMap,
    /// The body, decoded from base64 when API Gateway encoded it.
    pub body: Vec<u8>,
    /// API Gateway's request id.
    pub request_id: String,
    /// The address the request came from, as API Gateway saw the connection
    /// (`requestContext.http.sourceIp`; not a header a client can set). Empty when unknown.
    pub source_ip: String,
    /// The caller, from the bearer token.
    pub auth: Auth,
}

impl Request {
    /// The body as JSON of type `T`; otherwise a 400 problem whose `field` names the part at
    /// fault (`items[0].quantity`, `payment.token`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(None, "the request needs a JSON body"));
        }
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = field_of(&e);
            let detail = e.into_inner().to_string();
            ApiError::bad_request(field.as_deref(), format!("the body is not valid: {detail}"))
        })
    }

    /// A path parameter.
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The caller; 401 without a valid token, 503 when tokens cannot be checked now.
    pub fn actor(&self) -> Result<Actor, ApiError> {
        match &self.auth {
            Auth::Caller(actor, _) => Ok(actor.clone()),
            Auth::Anonymous => Err(ApiError::unauthorized(
                "this route needs an access token: send `Authorization: Bearer <token>` (POST /auth/token issues one)",
            )),
            Auth::Refused(why) => Err(ApiError::unauthorized(format!(
                "the access token is not accepted: {why}"
            ))),
            Auth::Unavailable(why) => Err(ApiError::unavailable(why.clone().into())),
            Auth::Misconfigured(why) => {
                Err(ApiError::internal(HandlerError::bug(why.clone()).into()))
            }
        }
    }

    /// The caller, who must hold one of `roles`: 403 otherwise (after the 401 cases).
    pub fn actor_with_role(&self, roles: &[Role]) -> Result<Actor, ApiError> {
        let actor = self.actor()?;
        if roles.iter().any(|r| actor.has_role(*r)) {
            Ok(actor)
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this route is for {}",
                names.join(" or ")
            )))
        }
    }
}

/// The JSON path of a deserialization error, with the missing field's name appended when a
/// field is missing; `None` when the body is not JSON at all.
fn field_of(e: &serde_path_to_error::Error<serde_json::Error>) -> Option<String> {
    if e.inner().is_syntax() || e.inner().is_eof() {
        return None;
    }
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = e.inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next());
    match (path.is_empty(), missing) {
        (true, Some(f)) => Some(f.to_string()),
        (false, Some(f)) => Some(format!("{path}.{f}")),
        (false, None) => Some(path),
        (true, None) => None,
    }
}

/// Percent-decodes a path parameter or query part (`plus_is_space` for the query's
/// form encoding), keeping invalid UTF-8 as replacement characters.
pub(super) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let text = if plus_is_space {
        std::borrow::Cow::Owned(s.replace('+', " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The query string's parameters, decoded (the first value of each).
pub(super) fn parse_query(raw: &str) -> BTreeMap<String, String> {
    let mut q = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        q.entry(percent_decode(k, true))
            .or_insert_with(|| percent_decode(v, true));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query("q=red+mug&category=home%2Fkitchen&q=second");
        assert_eq!(q["q"], "red mug");
        assert_eq!(q["category"], "home/kitchen");
    }
}
