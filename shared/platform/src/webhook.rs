//! Signed webhooks: a provider signs `<timestamp>.<body>` with HMAC-SHA256 under a shared
//! secret and sends `t=<unix seconds>,v1=<hex>` (several `v1` are allowed while a secret is
//! rotated). [`verify`] refuses unsigned, wrongly signed and malformed calls, and calls whose
//! timestamp is more than [`TOLERANCE_SECONDS`] away from now: a captured call cannot be
//! replayed later. A replay inside the window carries the same provider event id, which the
//! receiver turns into the same envelope id, so consumers deduplicate it: nothing needs to be
//! stored at the edge.

use aws_lc_rs::hmac;
use chrono::{DateTime, Utc};

/// How far a signature's timestamp may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The shortest webhook secret accepted, as the template's parameters require.
pub const MIN_SECRET_LEN: usize = 16;

/// A sender's webhook secret, from the secret store ([`crate::secrets`]): its current and
/// previous values, so that calls signed before or after a rotation both pass.
#[derive(Debug, Clone)]
pub struct Secret(std::sync::Arc<crate::secrets::Secret>);

impl Secret {
    /// The secret `sender` signs its calls with, which the function knows as `name` (`WEBHOOK`:
    /// its ARN in `WEBHOOK_SECRET_ARN`); at least [`MIN_SECRET_LEN`] characters, or the function does
    /// not start.
    pub fn read(
        book: &crate::secrets::SecretBook,
        name: &str,
        sender: &str,
    ) -> Result<Secret, crate::SettingsError> {
        let expected = format!("the secret {sender} signs its calls with");
        Ok(Secret(book.get(name, MIN_SECRET_LEN, &expected)?))
    }

    /// Checks a call's signature (`t=...,v1=...`, [`verify`]) against the secret.
    pub async fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        self.check(|secret| verify(secret, header, body, now)).await
    }

    /// Checks a call with `check` (a sender's own signature scheme) against the secret's
    /// current and previous values. When neither matches, the store is read again (at most
    /// every [`crate::secrets::MIN_REFRESH_GAP`]) in case the secret was rotated since it
    /// was read, and the call checked against the new values. A value shorter than
    /// [`MIN_SECRET_LEN`] put into the store is never accepted (and said in the log).
    pub async fn check(
        &self,
        check: impl Fn(&[u8]) -> Result<(), WebhookError>,
    ) -> Result<(), WebhookError> {
        let first = self.check_held(&check).await;
        if first != Err(WebhookError::Mismatch) || !self.0.refresh().await {
            return first;
        }
        self.check_held(&check).await
    }

    async fn check_held(
        &self,
        check: &impl Fn(&[u8]) -> Result<(), WebhookError>,
    ) -> Result<(), WebhookError> {
        let versions = self
            .0
            .versions()
            .await
            .map_err(|e| WebhookError::NoSecret(e.to_string()))?;
        let mut result = Err(WebhookError::Mismatch);
        for value in versions.all() {
            if value.expose().len() < MIN_SECRET_LEN {
                tracing::error!(
                    secret = self.0.variable(),
                    characters = value.expose().len(),
                    "a webhook secret in the store is shorter than {MIN_SECRET_LEN} characters; it is not used"
                );
                continue;
            }
            result = check(value.expose().as_bytes());
            if result != Err(WebhookError::Mismatch) {
                return result;
            }
        }
        result
    }
}

/// Why a call was refused (all are 401 for the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature header.
    #[error("the call is not signed")]
    Unsigned,
    /// The header is not `t=...,v1=...`.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is too old (or too far ahead): a replay, or a wrong clock.
    #[error("the signature is stale")]
    Stale,
    /// No signature matches.
    #[error("the signature does not match")]
    Mismatch,
    /// The secret could not be read from the store: not the caller's fault (503, so that it
    /// sends the call again).
    #[error("the webhook secret cannot be read: {0}")]
    NoSecret(String),
}

impl WebhookError {
    /// The answer for the caller: 401 for a call that is not properly signed, 503 when the
    /// secret to check it with cannot be read.
    pub fn into_api_error(self) -> crate::http::ApiError {
        match self {
            WebhookError::NoSecret(why) => crate::http::ApiError::unavailable(why.into()),
            other => crate::http::ApiError::unauthorized(other.to_string()),
        }
    }
}

fn signing_key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

fn message(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}.").into_bytes();
    m.extend_from_slice(body);
    m
}

/// A UUID-shaped envelope id derived from a sender's event id: the same event delivered again
/// (senders retry until they get a 2xx, and a captured call can be replayed inside the
/// signature's window) becomes the same envelope, which consumers deduplicate. `scope` keeps
/// two senders' ids apart (`payments-webhook`, `channels-webhook:agora`).
pub fn envelope_id(scope: &str, event_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{scope}:{event_id}").as_bytes());
    let h = hex::encode(&d[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The signature header a provider sends for `body` at `timestamp` (for the fake provider and
/// tests).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(&signing_key(secret), &message(timestamp, body));
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

/// Checks a call's signature header against the secret, in constant time.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::Unsigned)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| WebhookError::Malformed)?)
            }
            Some(("v1", v)) => {
                signatures.push(hex::decode(v).map_err(|_| WebhookError::Malformed)?)
            }
            Some(_) => {}
            None => return Err(WebhookError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::Malformed)?;
    if signatures.is_empty() {
        return Err(WebhookError::Malformed);
    }
    // The timestamp is the caller's number: any i64 can arrive, so the distance is checked
    // arithmetic (`i64::MIN` would overflow a plain subtraction, or its `abs`).
    let fresh = now
        .timestamp()
        .checked_sub(timestamp)
        .is_some_and(|d| d.unsigned_abs() <= TOLERANCE_SECONDS.unsigned_abs());
    if !fresh {
        return Err(WebhookError::Stale);
    }
    let key = signing_key(secret);
    let signed = message(timestamp, body);
    if signatures
        .iter()
        .any(|s| hmac::verify(&key, &signed, s).is_ok())
    {
        Ok(())
    } else {
        Err(WebhookError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    #[test]
    fn a_fresh_call_signed_with_the_secret_passes() {
        let h = sign(b"s3cret", now().timestamp(), b"{}");
        assert_eq!(verify(b"s3cret", Some(&h), b"{}", now()), Ok(()));
    }

    #[test]
    fn unsigned_malformed_wrong_and_stale_calls_are_refused() {
        let t = now().timestamp();
        assert_eq!(
            verify(b"s", None, b"{}", now()),
            Err(WebhookError::Unsigned)
        );
        assert_eq!(
            verify(b"s", Some("garbage"), b"{}", now()),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            verify(b"s", Some(&format!("t={t}")), b"{}", now()),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            verify(b"s", Some(&sign(b"other", t, b"{}")), b"{}", now()),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(b"s", Some(&sign(b"s", t, b"{}")), b"{\"x\":1}", now()),
            Err(WebhookError::Mismatch),
            "the body is signed"
        );
        assert_eq!(
            verify(b"s", Some(&sign(b"s", t - 301, b"{}")), b"{}", now()),
            Err(WebhookError::Stale),
            "a replay after 5 minutes"
        );
        assert_eq!(
            verify(b"s", Some(&sign(b"s", t + 301, b"{}")), b"{}", now()),
            Err(WebhookError::Stale)
        );
    }

    #[test]
    fn timestamps_at_the_ends_of_the_range_are_stale_not_a_panic() {
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX, i64::MAX - 1] {
            let header = format!("t={t},v1=00");
            assert_eq!(
                verify(b"s", Some(&header), b"{}", now()),
                Err(WebhookError::Stale),
                "{t}"
            );
        }
        assert_eq!(
            verify(b"s", Some("t=9223372036854775808,v1=00"), b"{}", now()),
            Err(WebhookError::Malformed),
            "past i64 is not a timestamp"
        );
    }

    /// Vectors computed outside this code (Python's `hmac` over `"<t>.<body>"`), as a
    /// provider's documentation publishes them: the signer and the verifier here could agree
    /// with each other and still be wrong.
    #[test]
    fn signatures_computed_independently_verify_and_are_reproduced() {
        let secret = b"whsec_test_secret_0123456789";
        let t = 1_767_225_600;
        let body = br#"{"id":"evt_1","type":"payment.succeeded","payment_id":"pay_1","order_id":"o-1","amount_cents":2500,"currency":"EUR"}"#;
        let vectors: [(&[u8], &str); 2] = [
            (
                body,
                "e2f80ae8beeec5ad86c053b7e86de9805a72888c79226e1333a6bb40e49ebc32",
            ),
            (
                b"{}",
                "9df0601d2602fad3c88832db8df8d18cec390761146235d3f57f40d2ef957bdf",
            ),
        ];
        for (body, hex) in vectors {
            let header = format!("t={t},v1={hex}");
            assert_eq!(verify(secret, Some(&header), body, now()), Ok(()));
            assert_eq!(sign(secret, t, body), header, "our signer agrees");
        }
    }

    #[test]
    fn any_of_several_signatures_may_match_during_rotation() {
        let t = now().timestamp();
        let old = sign(b"old", t, b"{}");
        let new = sign(b"new", t, b"{}");
        let both = format!("{old},{}", new.split(',').nth(1).unwrap());
        assert_eq!(verify(b"new", Some(&both), b"{}", now()), Ok(()));
    }
}
