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

pub mod accounts;
pub mod admin;
pub mod migrations;
pub mod password;
pub mod signup;
pub mod throttle;

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bazaar_contracts::Flags;
use bazaar_contracts::identity::{UserAuthed, UserStatus};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Condition, Key, Query, parse};
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
            Method::GET,
            "/users",
            Idempotency::None,
            Arc::new(admin::ListUsers),
        )
        .route(
            Method::PUT,
            "/users/{username}/flags",
            Idempotency::None,
            Arc::new(admin::SetFlags),
        )
        .route(
            Method::PUT,
            "/users/me/password",
            Idempotency::None,
            Arc::new(password::ChangePassword(settings.clone())),
        )
        .route(
            Method::GET,
            "/.well-known/revoked-sessions.json",
            Idempotency::None,
            Arc::new(PublishRevoked),
        );
    let api = [
        accounts::Change::Approve,
        accounts::Change::Refuse,
        accounts::Change::Disable,
        accounts::Change::Enable,
    ]
    .into_iter()
    .fold(api, |api, change| {
        api.route(
            Method::POST,
            &format!("/users/{{username}}/{}", change.as_str()),
            Idempotency::None,
            Arc::new(admin::ChangeUser(change, settings.clone())),
        )
    });
    let api = api
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
/// demo users) have no e-mail, status or creation time: they are active. Records written
/// before sessions existed have none: the next sign-in gives them one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRecord {
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
    /// Optimistic concurrency ([`accounts::save`]).
    #[serde(default)]
    version: u64,
    /// The session its tokens carry (`sid`); replaced when they must stop working.
    #[serde(default)]
    session: String,
    /// The latest a token of this session may expire, when tokens of it are minted elsewhere
    /// than by this service (the local stack's fixed key mints them valid until 2100): its
    /// revocation must last that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_until: Option<i64>,
    /// Feature flags an operator set on the user: its tokens carry them, and every flow its
    /// requests start carries them on.
    #[serde(default, skip_serializing_if = "Flags::is_empty")]
    flags: Flags,
}

/// A signing key as identity keeps it (the private key is a secret: encrypted at rest by the
/// table, never logged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
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

pub(crate) fn user_key(username: &str) -> Key {
    Key::new(format!("USER#{username}"), "PROFILE")
}

pub(crate) fn hash_password(password: &str) -> Result<String, HandlerError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HandlerError::bug(format!("hashing failed: {e}")))
}

/// A hash of nothing anyone knows, checked for unknown users so that they cost the same work.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password anyone has").unwrap_or_default())
}

/// Runs password work (Argon2 is deliberately slow) off the async workers.
pub(crate) async fn off_the_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(Box::new(e)))
}

pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// When the local stack's tokens expire (`bazaar_embedded::identity::FAR_FUTURE`, 2100-01-01).
pub const LOCAL_TOKENS_UNTIL: i64 = 4_102_444_800;

/// The local stack's demo users: creates `username` if absent, with the session the local
/// stack's fixed key mints its tokens with (`local-<username>`, valid until
/// [`LOCAL_TOKENS_UNTIL`]), so that disabling a demo user revokes the tokens of `events/` too.
/// A user kept from an older version of the local stack gets that session and its listing
/// line. Returns false when the user already existed.
pub async fn ensure_user(
    table: &dyn Table,
    username: &str,
    password: &str,
    roles: &[&str],
) -> Result<bool, HandlerError> {
    if let Some(mut user) = table.get_as::<UserRecord>(&user_key(username)).await? {
        if user.session.is_empty() {
            let read = user.version;
            user.session = format!("local-{username}");
            user.session_until = Some(LOCAL_TOKENS_UNTIL);
            user.version = read + 1;
            let writes = accounts::writes(&user, bazaar_platform::item::unchanged(Some(read)));
            match table.transact(writes.to_vec()).await {
                // Someone else changed the user meanwhile: theirs stands.
                Err(e) if !e.is_stale() => return Err(e.into()),
                _ => {}
            }
        }
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
        version: 1,
        session: format!("local-{username}"),
        session_until: Some(LOCAL_TOKENS_UNTIL),
        flags: Flags::default(),
    };
    match table
        .transact(accounts::writes(&user, Condition::NotExists).to_vec())
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.is_stale() => Ok(false),
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
pub(crate) fn stored_key(record: KeyRecord) -> Result<SigningKey, HandlerError> {
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
        let attempt = throttle::admit(work.table()?, &body.username, source, work.now())
            .await
            .map_err(|r| throttle::refusal(r, "failed sign-ins"))?;
        let user: Option<UserRecord> = work.table()?.get_as(&user_key(&body.username)).await?;
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| dummy_hash().to_string());
        let password = body.password;
        let ok = off_the_workers(move || verify_password(&password, &hash)).await?;
        let Some(user) = user.filter(|_| ok) else {
            return Err(ApiError::unauthorized("invalid username or password"));
        };
        attempt.succeeded(work.table()?).await?;
        match user.status {
            UserStatus::Refused => {
                return Err(ApiError::forbidden(
                    "this merchant application was refused: the account cannot sign in",
                ));
            }
            UserStatus::Disabled => {
                return Err(ApiError::forbidden(
                    "this account is disabled: an operator must enable it",
                ));
            }
            UserStatus::Active | UserStatus::Pending => {}
        }
        let mut user = user;
        if user.session.is_empty() {
            // A user from before sessions: give it one (and its listing line) now.
            let read = user.version;
            user.session = work.new_id();
            accounts::save(work, &mut user, Some(read));
        }
        Ok(token_response(work, settings, &user).await?)
    }
}

/// Signs a token for `user` (its roles and session), emits `user.authed` and answers as
/// `POST /auth/token` does.
pub(crate) async fn token_response(
    work: &mut Work<'_>,
    settings: &Settings,
    user: &UserRecord,
) -> Result<Response, ApiError> {
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
        sid: user.session.clone(),
        flags: user.flags.encode().unwrap_or_default(),
    };
    let token = current_key(work)
        .await?
        .sign(&claims)
        .map_err(|e| ApiError::internal(Box::new(e)))?;
    work.send(&UserAuthed {
        subject: user.username.clone(),
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

/// `GET /.well-known/revoked-sessions.json`: the sessions whose tokens every function refuses
/// ([`accounts::revoked_sessions`]). Public like the key set: the ids are random and say
/// nothing about whose they were. Cached by nobody, so that functions read it fresh.
struct PublishRevoked;

#[async_trait]
impl Route for PublishRevoked {
    async fn handle(&self, _request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let revoked = accounts::revoked_sessions(work.table()?, work.now()).await?;
        let mut response = Response::json(200, revoked);
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
