//! `identity-api`: who is calling. `POST /users` signs people up ([`signup`]); `POST /auth/token` exchanges a user name and password for a
//! signed access token (RS256, `kid` in the header) and emits `user.authed`;
//! `GET /.well-known/jwks.json` publishes the public keys; `GET /.well-known/openid-configuration`
//! describes the issuer, so that API Gateway's JWT authorizer can find the keys.
//!
//! Passwords are stored as Argon2id hashes (PHC strings). A wrong password and an unknown
//! user get the same answer after the same work, so that user names cannot be probed. Failed
//! sign-ins are throttled per user name and per source address ([`throttle`]): past a few,
//! the next attempt must wait (429 with `Retry-After`), whether the name exists or not.
//!
//! Signing keys live in the identity table. The current key signs for [`KEY_LIFETIME`]; after
//! that a new key is made on the next token request (rotation), and the old one stays in the
//! JWKS until the last token it signed has expired.
#![forbid(unsafe_code)]

pub mod admin;
pub mod signup;
pub mod throttle;

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bazaar_contracts::identity::{UserAuthed, UserStatus};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Condition, Key, Query, parse, record};
use bazaar_platform::jwt::{Claims, Jwk, Jwks, SigningKey};
use bazaar_platform::ports::Table;
use bazaar_platform::schedule::OutboxSweeper;
use bazaar_platform::settings::Env;
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use chrono::{DateTime, Duration, Utc};
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long an access token is valid (configurable with `TOKEN_TTL_SECONDS`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::minutes(15);
/// How long a signing key signs before the next one takes over.
pub const KEY_LIFETIME: Duration = Duration::days(30);
/// The audience tokens are issued for when `AUDIENCE` is not set.
pub const DEFAULT_AUDIENCE: &str = "bazaar-api";
/// The partition of signing keys.
const KEYS_PK: &str = "KEY";

/// Builds the function with its routes; its settings are read here, once.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let settings: Arc<Settings> = Arc::new(deps.settings()?);
    let api = Api::new(deps.clone())
        .route(
            Method::POST,
            "/auth/token",
            Idempotency::None,
            Arc::new(IssueToken(settings.clone())),
        )
        .route(
            Method::POST,
            "/users",
            Idempotency::None,
            Arc::new(signup::SignUp),
        )
        .route(
            Method::POST,
            "/users/{username}/approve",
            Idempotency::None,
            Arc::new(admin::Decide(admin::Decision::Approve)),
        )
        .route(
            Method::POST,
            "/users/{username}/refuse",
            Idempotency::None,
            Arc::new(admin::Decide(admin::Decision::Refuse)),
        )
        .route(
            Method::GET,
            "/.well-known/jwks.json",
            Idempotency::None,
            Arc::new(PublishKeys(settings.clone())),
        )
        .route(
            Method::GET,
            "/.well-known/openid-configuration",
            Idempotency::None,
            Arc::new(Discovery(settings)),
        );
    Ok(Function::new(deps)
        .http(api)
        .schedule(Arc::new(OutboxSweeper)))
}

/// The issuer settings, from the function's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `iss` of every token (`ISSUER`): the API's base URL, where the JWKS is served.
    pub issuer: String,
    /// `aud` of every token (`AUDIENCE`).
    pub audience: String,
    /// Token lifetime (`TOKEN_TTL_SECONDS`).
    pub token_ttl: Duration,
}

/// The longest token lifetime `TOKEN_TTL_SECONDS` may ask for: a day.
const MAX_TOKEN_TTL_SECONDS: i64 = 86_400;

impl bazaar_platform::Settings for Settings {
    fn read(env: &Env<'_>) -> Result<Settings, SettingsError> {
        let issuer = env.required(
            "ISSUER",
            "the issuer's base URL (https://...), where the JWKS is served",
        )?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(env.invalid(
                "ISSUER",
                "the issuer's base URL (https://...), where the JWKS is served",
            ));
        }
        let audience = env.get("AUDIENCE").unwrap_or(DEFAULT_AUDIENCE).to_string();
        let token_ttl = env.seconds_or(
            "TOKEN_TTL_SECONDS",
            60..=MAX_TOKEN_TTL_SECONDS,
            DEFAULT_TOKEN_TTL,
        )?;
        Ok(Settings {
            issuer: issuer.trim_end_matches('/').to_string(),
            audience,
            token_ttl,
        })
    }
}

/// A user as identity keeps it. Records written before sign-up existed (the local stack's
/// demo users) have no e-mail, status or creation time: they are active.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    username: String,
    password_hash: String,
    /// The roles its tokens carry (none while a merchant's application is pending).
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default)]
    status: UserStatus,
    /// The role applied for, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applied_for: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
}

/// A signing key as identity keeps it (the private key is a secret: encrypted at rest by the
/// table, never logged).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    kid: String,
    pkcs8: String,
    created: i64,
    active_until: i64,
    /// The public half, kept beside the private key so that publishing the key set (which
    /// every token check of the local stack does) needs no RSA key parse: reading a PKCS#8
    /// key checks it, about a millisecond of CPU each time. Records written before it was
    /// kept have none and are parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public: Option<Jwk>,
}

fn user_key(username: &str) -> Key {
    Key::new(format!("USER#{username}"), "PROFILE")
}

fn hash_password(password: &str) -> Result<String, HandlerError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HandlerError::bug(format!("hashing failed: {e}")))
}

/// A hash of nothing anyone knows, checked for unknown users so that they cost the same work.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password anyone has").unwrap_or_default())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Creates a user if absent (the local stack's demo users; an admin tool later). Returns false
/// when the user already existed.
pub async fn ensure_user(
    table: &dyn Table,
    username: &str,
    password: &str,
    roles: &[&str],
) -> Result<bool, HandlerError> {
    if table.get(&user_key(username)).await?.is_some() {
        return Ok(false);
    }
    let user = UserRecord {
        username: username.into(),
        password_hash: hash_password(password)?,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        email: None,
        status: UserStatus::Active,
        applied_for: None,
        created_at: None,
    };
    match table
        .put(
            record(&user_key(username), &user),
            Some(Condition::NotExists),
        )
        .await
    {
        Ok(()) => Ok(true),
        Err(bazaar_platform::ports::TableError::ConditionFailed) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn keys(table: &dyn Table) -> Result<Vec<KeyRecord>, HandlerError> {
    table
        .query(Query::partition(KEYS_PK))
        .await?
        .items
        .into_iter()
        .map(parse)
        .collect()
}

/// The key that signs now, made if there is none (first use, or the last one retired).
async fn current_key(work: &Work<'_>) -> Result<SigningKey, HandlerError> {
    let table = work.table()?;
    let now = work.now();
    let active = keys(table)
        .await?
        .into_iter()
        .filter(|k| k.active_until > now.timestamp())
        .max_by_key(|k| k.created);
    let record = match active {
        Some(k) => k,
        None => {
            let kid = format!("k{}-{}", now.format("%Y%m%d%H%M%S"), &work.new_id()[..8]);
            let key = SigningKey::generate(&kid).map_err(|e| HandlerError::bug(e.to_string()))?;
            let pkcs8 = B64.encode(
                key.to_pkcs8()
                    .map_err(|e| HandlerError::bug(e.to_string()))?,
            );
            let record = KeyRecord {
                kid: kid.clone(),
                pkcs8,
                created: now.timestamp(),
                active_until: (now + KEY_LIFETIME).timestamp(),
                public: Some(key.jwk()),
            };
            // Made outside the request's unit of work on purpose: a key is useful even if the
            // request fails, and two requests racing here only publish one extra key.
            table
                .put(
                    bazaar_platform::item::record(&Key::new(KEYS_PK, kid.as_str()), &record),
                    Some(Condition::NotExists),
                )
                .await?;
            tracing::info!(kid, "made a new signing key");
            record
        }
    };
    stored_key(record)
}

/// Stores a signing key made elsewhere, active from `created` until `active_until` (epoch
/// seconds): the local stack's fixed development key. Does nothing if the key id is taken.
pub async fn install_key(
    table: &dyn Table,
    key: &SigningKey,
    created: i64,
    active_until: i64,
) -> Result<(), HandlerError> {
    let record = KeyRecord {
        kid: key.kid().to_string(),
        pkcs8: B64.encode(
            key.to_pkcs8()
                .map_err(|e| HandlerError::bug(e.to_string()))?,
        ),
        created,
        active_until,
        public: Some(key.jwk()),
    };
    match table
        .put(
            bazaar_platform::item::record(&Key::new(KEYS_PK, key.kid()), &record),
            Some(Condition::NotExists),
        )
        .await
    {
        Ok(()) | Err(bazaar_platform::ports::TableError::ConditionFailed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A signing key back from its stored record.
fn stored_key(record: KeyRecord) -> Result<SigningKey, HandlerError> {
    let der = B64
        .decode(&record.pkcs8)
        .map_err(|e| HandlerError::bug(format!("stored key unreadable: {e}")))?;
    SigningKey::from_pkcs8(record.kid, &der).map_err(|e| HandlerError::bug(e.to_string()))
}

/// The public keys that may still verify a live token: every key whose last token has not
/// expired yet.
pub async fn published_keys(
    table: &dyn Table,
    now: DateTime<Utc>,
    token_ttl: Duration,
) -> Result<Jwks, HandlerError> {
    let mut out = Jwks::default();
    for k in keys(table).await? {
        if k.active_until + token_ttl.num_seconds() > now.timestamp() {
            out.keys.push(match k.public {
                Some(jwk) => jwk,
                None => stored_key(k)?.jwk(),
            });
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    username: String,
    password: String,
}

/// `POST /auth/token`.
struct IssueToken(Arc<Settings>);

#[async_trait]
impl Route for IssueToken {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let body: TokenRequest = request.json()?;
        if body.username.is_empty() || body.username.len() > 64 {
            return Err(ApiError::bad_request(
                Some("username"),
                "username must be 1 to 64 characters",
            ));
        }
        if body.password.is_empty() || body.password.len() > 1024 {
            return Err(ApiError::bad_request(
                Some("password"),
                "password must be 1 to 1024 characters",
            ));
        }
        let settings = &self.0;
        // Counted before the password is checked, so that simultaneous guesses count too.
        let source = if request.source_ip.is_empty() {
            "unknown"
        } else {
            request.source_ip.as_str()
        };
        let attempt = match throttle::admit(work.table()?, &body.username, source, work.now()).await
        {
            Ok(a) => a,
            Err(throttle::Refusal::Wait(wait)) => {
                let seconds = u32::try_from(wait.num_seconds() + 1).unwrap_or(u32::MAX);
                tracing::warn!(source, "sign-in throttled after failed attempts");
                return Err(ApiError::too_many(
                    seconds,
                    format!("too many failed sign-ins; retry in {seconds} s"),
                ));
            }
            Err(throttle::Refusal::Table(e)) => return Err(e.into()),
        };
        let user: Option<UserRecord> = work.table()?.get_as(&user_key(&body.username)).await?;
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| dummy_hash().to_string());
        let password = body.password;
        // Argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| ApiError::internal(Box::new(e)))?;
        let Some(user) = user.filter(|_| ok) else {
            return Err(ApiError::unauthorized("invalid username or password"));
        };
        attempt.succeeded(work.table()?).await?;
        if user.status == UserStatus::Refused {
            return Err(ApiError::forbidden(
                "this merchant application was refused: the account cannot sign in",
            ));
        }
        let now = work.now();
        let claims = Claims {
            iss: settings.issuer.clone(),
            sub: user.username.clone(),
            aud: settings.audience.clone(),
            roles: user.roles.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + settings.token_ttl).timestamp(),
            jti: work.new_id(),
        };
        let token = current_key(work)
            .await?
            .sign(&claims)
            .map_err(|e| ApiError::internal(Box::new(e)))?;
        work.send(&UserAuthed {
            subject: user.username,
            token_id: claims.jti.clone(),
            expires_at: now + settings.token_ttl,
        })?;
        let mut response = Response::json(
            200,
            json!({ "access_token": token, "token_type": "Bearer", "expires_in": settings.token_ttl.num_seconds() }),
        );
        response
            .headers
            .insert("cache-control".into(), "no-store".into());
        Ok(response)
    }
}

/// `GET /.well-known/jwks.json`.
struct PublishKeys(Arc<Settings>);

#[async_trait]
impl Route for PublishKeys {
    async fn handle(&self, _request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let jwks = published_keys(work.table()?, work.now(), self.0.token_ttl).await?;
        let mut response = Response::json(200, jwks);
        response
            .headers
            .insert("cache-control".into(), "public, max-age=300".into());
        Ok(response)
    }
}

/// `GET /.well-known/openid-configuration`.
struct Discovery(Arc<Settings>);

#[async_trait]
impl Route for Discovery {
    async fn handle(&self, _request: &Request, _work: &mut Work<'_>) -> Result<Response, ApiError> {
        let s = &self.0;
        Ok(Response::json(
            200,
            json!({
                "issuer": s.issuer,
                "jwks_uri": format!("{}/.well-known/jwks.json", s.issuer),
                "token_endpoint": format!("{}/auth/token", s.issuer),
                "id_token_signing_alg_values_supported": [bazaar_platform::jwt::ALGORITHM],
                "token_endpoint_auth_methods_supported": ["none"],
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "grant_types_supported": ["password"],
            }),
        ))
    }
}
