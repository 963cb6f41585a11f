//! The local stack's identity: one fixed signing key, so that tokens minted for tests and the
//! sample events of `events/` verify against the keys the local stack's identity service
//! publishes. Like the demo passwords, it is for the local stack only: a deployed identity
//! service makes and rotates its own keys and never sees this one.

use std::sync::Arc;

use base64::Engine as _;
use bazaar_platform::auth::KeySource;
use bazaar_platform::jwt::{Claims, Jwks, SigningKey};

/// The key id of the local signing key.
pub const LOCAL_KID: &str = "local-development-key";

/// The issuer the template gives the local stack: `https://${IdentityHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}`
/// with the local stack's names (region `local`, suffix `localhost`).
pub const LOCAL_ISSUER: &str = "https://local-IdentityHttpApi.execute-api.local.localhost";

/// The audience of every token.
pub const LOCAL_AUDIENCE: &str = "bazaar-api";

/// When tokens minted by [`token`] expire: 2100-01-01, so that sample events stay valid.
pub const FAR_FUTURE: i64 = 4_102_444_800;

/// The RSA private key (PKCS#8 DER, base64), in pieces.
const LOCAL_KEY_PKCS8: [&str; PIECES] = [
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDkpZXzh0EC0yEQMpsX6wORjzNEwo0/yL7g2Oqk",
    "IqQWkTlv5jmFj7dWidKGu6tA7toLz25lgGZfiflAKFViLtUczG+68bGsoGb6ddHPWuTq6uQpIMtjh+AjZf2VAA0b",
    "USh4/QSEQZ8jfAV5jLZwOKS2prNu3dnwguJq5y/tsIeRUlcObQ/lfTxkz6Tl19fJBXLz3PJTOT43+gHCAPFAbIif",
    "FKdIzvTAo+fq8gHkmhJk3UTgaJ1jocxuE3sEpO3uqnAb/qrS1Mu7AFtTJ84sDxbp8JJQ/kp49RHtzjLSb+9JqwUs",
    "bmUq7zokAiKdJ5hDiHjnl8mBmHz65QF0T0E4eCk3AgMBAAECggEAE7IIMZYuhvBDeL8Ez7G6UndyR20c0eg+02Tl",
    "o8x25v/zR/M3p3LveSBd7QyaBJNhxY+rALC0emyK3ThvaaNptYin451LNhJxHG6gUcsqGeqwfn+pLw8p9jkKxKMT",
    "ysBNPkxi1bbgK73UrBlvY6/onFhniQuXAoBu9Ld3No0Bkh/+BTK/c0XkkvE9qRad8WYbBvaNJBrbvXGXRnnCXS/p",
    "gFibBHNikBIi9+ndJTWJgyF5BTy9J+hO9ihO1x3zHndwzOcpio9DDabxp1B7fqiW7v+571+GImzqG/Cq12N2EbD3",
    "w38UFuYR1qa288pMleAMMBm2gQOu/T8jPF68b7kQVQKBgQD7uoQ/GO3199ukDhr1Pl0e8CN2NBho8CikAcbkLKp4",
    "2OSpIKeMqh3z4Dc6gr2KurLG0XNeZPLL62tr4K/ArGKCCmuL9IgDqIjNuQ3vUp55xtQNQhJ0W348sfeDWK0e+kyG",
    "ofAUdUaLdKIjTw2Gln021QsV0XKTvt2oiHQ25v3CywKBgQDohs3opXay/Yd7bwgVTF7fiVeAnhVA/ofI2XhaJvM+",
    "+UQ7p464mZBXMkaRmx9aXTLMOS/4qdOW+GJn0iDxzHA5ANtVmzVN+Aw1/hhYrrpTkzUle+gZcwTeYeQHCydlc26p",
    "p4lbpynGnAOFImAfdnZX35MSsb2HtqImmCeRgWRpxQKBgC3zNw65gz6B9wL0XDFmJ+Ns3FxIWChXpmOBu4eNK7UR",
    "inPg9RS1PPB2fj5c/TJksBugwhl5/eQBXkN76TkXfofUVRtgEK/yRL6gyA1mnG0IQU8GP44j4WA88Dx2pGtiLzPo",
    "PYXOfokYSjx9wq9Nqx+mNfbOm8aicZ3BAs2+zpWPAoGAK+KtYBhCg9unw1scSnDEgyn3stWjK0YeuICa32D0jdEb",
    "2KpyHFMXU+2wNfDyBOsMGFE+xY6/2YF9iRy2jQxJreiEfO6zK8kB/Pq8+5fWoMlqwW1WS99SbupI0C+BuvsDSs/M",
    "89hj4RE29NydCbMg+MrAhkm3fLKyfdg/t42VNwUCgYAMTW7/kdhQTzBQ4RTW7wIxz1sVmdf8DNkYzgALKPBfp5rI",
    "RQcfdV0ZdYreDTxjMJ+98x3xfMFYyiK217bcb3TKGD4nBF/duNJiRY03pcqgRI9aVXlBlnFFaJOGQoiHq1nbg5Fz",
    "T2jWm7P3TO+44vp4LRNipI7KeJNXt/Un7VzUow==",
];
const PIECES: usize = 19;

/// The local signing key.
pub fn local_signing_key() -> SigningKey {
    let der = base64::engine::general_purpose::STANDARD
        .decode(LOCAL_KEY_PKCS8.concat())
        .expect("the local key is base64");
    SigningKey::from_pkcs8(LOCAL_KID, &der).expect("the local key is an RSA PKCS#8 key")
}

/// The local key set (the public half of [`local_signing_key`]).
pub fn local_jwks() -> Jwks {
    Jwks {
        keys: vec![local_signing_key().jwk()],
    }
}

/// A token for `subject` with `roles`, signed with the local key, valid from 1970 to 2100.
pub fn token(subject: &str, roles: &[&str]) -> String {
    token_with_flags(subject, roles, "")
}

/// [`token`] with the user's flags claim (`name=value,…`), as the issuer writes it for a user
/// an operator gave flags.
pub fn token_with_flags(subject: &str, roles: &[&str], flags: &str) -> String {
    local_signing_key()
        .sign(&Claims {
            iss: LOCAL_ISSUER.into(),
            sub: subject.into(),
            aud: LOCAL_AUDIENCE.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            iat: 0,
            nbf: 0,
            exp: FAR_FUTURE,
            jti: format!("local-{subject}"),
            sid: local_session(subject),
            flags: flags.into(),
        })
        .expect("signing with the local key")
}

/// The session of the local stack's tokens for `subject` ([`token`]): the local stack's demo
/// users are given it, so that disabling one (or changing its password) revokes the tokens of
/// `events/` and of the tests too.
pub fn local_session(subject: &str) -> String {
    format!("local-{subject}")
}

/// `Authorization` header value for [`token`].
pub fn bearer(subject: &str, roles: &[&str]) -> String {
    format!("Bearer {}", token(subject, roles))
}

/// The local key set as a key source.
pub fn local_keys() -> Arc<dyn KeySource> {
    Arc::new(bazaar_platform::auth::StaticKeys(local_jwks()))
}
