//! JSON Web Tokens as Bazaar issues and checks them: RS256 signatures (what API Gateway's JWT
//! authorizer accepts) with a `kid` naming the key in the issuer's JWKS.
//!
//! [`validate`] is what every handler runs, whatever the edge already checked, so that a
//! misconfigured route cannot open a hole. Tokens over 8 KB are refused before any parsing;
//! a header or payload that names a key twice is refused; only `RS256` is accepted (`none`
//! and the HMAC family are refused, which closes the algorithm-confusion attacks); the key is
//! found by `kid` in the JWKS it is given (never by `jku` or `x5u`). The signature, the
//! algorithm, the issuer and the audience are then checked by `jsonwebtoken` (on aws-lc-rs,
//! the crypto library rustls links already), and `exp` and `nbf` here, on the function's
//! clock (a simulated one in tests; `jsonwebtoken` reads the system clock), as numbers only.
//! Issuing ([`SigningKey::sign`]) goes through `jsonwebtoken` too.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use bazaar_contracts::{Actor, Flags};

/// The only signature algorithm accepted.
pub const ALGORITHM: &str = "RS256";
/// The largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;

/// A public key in JWK form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`.
    pub kty: String,
    /// The key id tokens name in their header.
    pub kid: String,
    /// Algorithm: `RS256`.
    pub alg: String,
    /// Use: `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Modulus, base64url.
    pub n: String,
    /// Public exponent, base64url.
    pub e: String,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// What a token must have been issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The `iss` claim.
    pub issuer: String,
    /// A value the `aud` claim must hold.
    pub audience: String,
}

/// The claims Bazaar puts in a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user name.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Roles granted.
    pub roles: Vec<String>,
    /// Issued at (epoch seconds).
    pub iat: i64,
    /// Not before (epoch seconds).
    pub nbf: i64,
    /// Expires at (epoch seconds).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// The session: a random value the issuer keeps per user and replaces when the user's
    /// tokens must stop working (disabled, password changed). Functions refuse tokens whose
    /// session the issuer has revoked ([`crate::auth::Revoked`]); being random, a revoked
    /// session says nothing about whose it was. Empty in tokens issued before sessions
    /// existed (those cannot be revoked; they expired within a token lifetime of the change).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    /// The user's feature flags (`name=value,…`), as the operator set them on the user
    /// (`PUT /users/{username}/flags`): every flow the token's requests start carries them.
    /// Empty when the user has none (and in tokens issued before flags existed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flags: String,
}

impl Claims {
    /// The actor the token speaks for.
    pub fn actor(&self) -> Actor {
        Actor {
            subject: self.sub.clone(),
            roles: self.roles.clone(),
        }
    }

    /// The user's flags.
    pub fn flags(&self) -> Flags {
        // The issuer writes them; a claim that does not read is refused by `check`.
        Flags::decode(&self.flags).unwrap_or_default()
    }
}

/// Why a token was refused. Every variant is a 401 for the caller; the variant is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("the token is larger than 8 KB")]
    TooLarge,
    /// Not three base64url parts of JSON.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// An algorithm other than RS256 (including `none` and HMAC).
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// No key with that `kid` in the JWKS.
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Another issuer.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// Not for this audience.
    #[error("the token is for another audience")]
    Audience,
    /// A claim is missing or of the wrong type (dates must be numbers).
    #[error("claim {0} is missing or invalid")]
    Claim(&'static str),
}

fn part(text: &str) -> Result<Vec<u8>, JwtError> {
    B64.decode(text)
        .map_err(|_| JwtError::Malformed("a part is not base64url"))
}

/// Checks a token against the issuer's keys; returns its claims.
pub fn validate(
    token: &str,
    jwks: &Jwks,
    expect: &Expect,
    now: DateTime<Utc>,
) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("a token has three parts"));
    };
    let header = unique_json(&part(h)?)
        .map_err(|_| JwtError::Malformed("the header is not JSON with each key once"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != ALGORITHM {
        return Err(JwtError::Algorithm(alg.to_string()));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwtError::Claim("kid"))?;
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == kid && k.kty == "RSA")
        .ok_or_else(|| JwtError::UnknownKey(kid.to_string()))?;
    // The payload is read here only to refuse a key named twice; `jsonwebtoken` verifies the
    // signature, the algorithm, the issuer and the audience.
    let claims = unique_json(&part(p)?)
        .map_err(|_| JwtError::Malformed("the payload is not JSON with each key once"))?;
    part(s)?;
    let key = jsonwebtoken::DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
        .map_err(|_| JwtError::UnknownKey(kid.to_string()))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&expect.issuer]);
    validation.set_audience(&[&expect.audience]);
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    // Dates are judged below, on the function's clock (a simulated one in tests):
    // `jsonwebtoken` reads the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    jsonwebtoken::decode::<serde::de::IgnoredAny>(token, &key, &validation).map_err(refusal)?;

    let number = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .ok_or(JwtError::Claim(name))
    };
    let string = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or(JwtError::Claim(name))
    };
    // `exp` and `nbf` are the token's numbers, any i64: the leeway is applied to now, which
    // is ours and far from the ends of the range, so no sum can overflow.
    let t = now.timestamp();
    let exp = number("exp")?;
    if t - LEEWAY_SECONDS > exp {
        return Err(JwtError::Expired);
    }
    let nbf = match claims.get("nbf") {
        None => number("iat").unwrap_or(0),
        Some(_) => number("nbf")?,
    };
    if t + LEEWAY_SECONDS < nbf {
        return Err(JwtError::NotYetValid);
    }
    if string("iss")? != expect.issuer {
        return Err(JwtError::Issuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == expect.audience,
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str() == Some(expect.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    let roles = match claims.get("roles") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|r| r.as_str().map(String::from).ok_or(JwtError::Claim("roles")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(_) => return Err(JwtError::Claim("roles")),
    };
    Ok(Claims {
        iss: expect.issuer.clone(),
        sub: string("sub")?,
        aud: expect.audience.clone(),
        roles,
        iat: number("iat").unwrap_or(nbf),
        nbf,
        exp,
        jti: string("jti").unwrap_or_default(),
        sid: match claims.get("sid") {
            None => String::new(),
            Some(_) => string("sid")?,
        },
        flags: match claims.get("flags") {
            None => String::new(),
            Some(_) => {
                let flags = string("flags")?;
                Flags::decode(&flags).map_err(|_| JwtError::Claim("flags"))?;
                flags
            }
        },
    })
}

/// Why `jsonwebtoken` refused a token, in this module's terms.
fn refusal(e: jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => JwtError::Signature,
        K::InvalidIssuer => JwtError::Issuer,
        K::InvalidAudience => JwtError::Audience,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            JwtError::Algorithm("unreadable".into())
        }
        K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) => {
            JwtError::Claim(match c.as_str() {
                "iss" => "iss",
                "aud" => "aud",
                "sub" => "sub",
                "exp" => "exp",
                "nbf" => "nbf",
                _ => "claims",
            })
        }
        K::Base64(_) => JwtError::Malformed("a part is not base64url"),
        K::Json(_) | K::Utf8(_) => JwtError::Malformed("a part is not JSON"),
        K::InvalidRsaKey(_) | K::InvalidKeyFormat => JwtError::Signature,
        _ => JwtError::Malformed("the token is not a JWT"),
    }
}

/// JSON text as a tree, refused when an object names a key twice. A plain parse keeps the
/// last of two `alg` or `roles`, while another reader (a proxy, a log pipeline, the issuer's
/// own tools) may keep the first: a token whose meaning depends on the reader is refused.
fn unique_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Unique>(bytes).map(|u| u.0)
}

/// A JSON value read with [`unique_json`]'s rule.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON whose objects name each key once")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "key {key:?} appears twice"
                )));
            }
            let Unique(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// A private signing key with its id.
pub struct SigningKey {
    kid: String,
    /// The key pair, for its public half (the JWK) and its storage form.
    pair: KeyPair,
    /// The same key as `jsonwebtoken` signs with.
    encoding: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing key: {0}")]
pub struct KeyError(pub String);

impl SigningKey {
    /// A new 2048-bit RSA key.
    pub fn generate(kid: impl Into<String>) -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| KeyError(e.to_string()))?;
        let der = pair.as_der().map_err(|e| KeyError(e.to_string()))?;
        Self::from_pkcs8(kid, der.as_ref())
    }

    /// A key from its PKCS#8 DER form.
    pub fn from_pkcs8(kid: impl Into<String>, der: &[u8]) -> Result<Self, KeyError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|e| KeyError(e.to_string()))?;
        // `jsonwebtoken` takes a PKCS#8 key as PEM (and finds the RSA key inside itself).
        let pem = pem_of(der);
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| KeyError(e.to_string()))?;
        Ok(SigningKey {
            kid: kid.into(),
            pair,
            encoding,
        })
    }

    /// The PKCS#8 DER form, for storage (a secret: keep it encrypted at rest, never log it).
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, KeyError> {
        Ok(self
            .pair
            .as_der()
            .map_err(|e| KeyError(e.to_string()))?
            .as_ref()
            .to_vec())
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Jwk {
        let public = self.pair.public_key();
        Jwk {
            kty: "RSA".into(),
            kid: self.kid.clone(),
            alg: ALGORITHM.into(),
            use_: "sig".into(),
            n: B64.encode(public.modulus().big_endian_without_leading_zero()),
            e: B64.encode(public.exponent().big_endian_without_leading_zero()),
        }
    }

    /// Signs claims into a compact token (with `jsonwebtoken`).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| KeyError(e.to_string()))
    }

    /// Signs any header and payload with RS256, whatever they say: for tests that forge
    /// tokens (a header naming another algorithm, a key named twice), never for issuing them;
    /// [`SigningKey::sign`] issues.
    pub fn sign_parts(&self, header: &Value, payload: &Value) -> Result<String, KeyError> {
        self.sign_text(&header.to_string(), &payload.to_string())
    }

    /// Signs a header and payload given as JSON text, exactly as written (tests use it for
    /// JSON a tree cannot hold, such as a key named twice).
    pub fn sign_text(&self, header: &str, payload: &str) -> Result<String, KeyError> {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
            .map_err(|e| KeyError(e.to_string()))?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }
}

/// A PKCS#8 DER key as PEM text.
fn pem_of(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for (i, c) in text.chars().enumerate() {
        pem.push(c);
        if i % 64 == 63 {
            pem.push('\n');
        }
    }
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}
