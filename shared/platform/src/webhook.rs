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

/// A sender's webhook secret, read once at init; never printed (its `Debug` hides it).
pub struct Secret(String);

impl Secret {
    /// Reads the secret `sender` signs its calls with from `variable` (at least
    /// [`MIN_SECRET_LEN`] characters, or the function does not start).
    pub fn read(
        env: &crate::settings::Env<'_>,
        variable: &str,
        sender: &str,
    ) -> Result<Secret, crate::SettingsError> {
        let expected = format!(
            "the secret {sender} signs its calls with, at least {MIN_SECRET_LEN} characters"
        );
        Ok(Secret(
            env.secret(variable, MIN_SECRET_LEN, &expected)?.to_string(),
        ))
    }

    /// The secret's bytes, to verify a signature with.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
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

    #[test]
    fn a_secret_is_read_once_long_enough_and_never_printed() {
        let vars = |v: &str| {
            std::collections::BTreeMap::from([("WEBHOOK_SECRET".to_string(), v.to_string())])
        };
        let short = vars("too-short");
        let error = Secret::read(
            &crate::settings::Env::new(&short),
            "WEBHOOK_SECRET",
            "the carrier",
        )
        .unwrap_err();
        assert_eq!(error.variable, "WEBHOOK_SECRET");
        assert!(
            error.expected.contains("the carrier") && error.expected.contains("16"),
            "{error:?}"
        );
        let good = vars("a-secret-long-enough");
        let secret = Secret::read(
            &crate::settings::Env::new(&good),
            "WEBHOOK_SECRET",
            "the carrier",
        )
        .unwrap();
        assert_eq!(secret.as_bytes(), b"a-secret-long-enough");
        assert!(!format!("{secret:?}").contains("long-enough"));
    }

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
