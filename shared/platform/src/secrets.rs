//! Secrets that live in a secret store (Secrets Manager on AWS, the engine's `secrets` table
//! locally), never in a function's environment.
//!
//! A function's environment names each secret it may read by its ARN, in a variable ending in
//! [`SECRET_SUFFIX`]: `WEBHOOK_SECRET_ARN` names the secret the function calls `WEBHOOK`,
//! `PROVIDER_API_KEY_SECRET_ARN` the one it calls `PROVIDER_API_KEY`. The environment (which anyone with `lambda:GetFunctionConfiguration`
//! reads, and which CloudFormation keeps in its templates) then holds no secret, and the
//! function's role grants it exactly the secrets its variables name.
//!
//! Values are read when the function starts ([`SecretBook::warm`], so that a missing or
//! forbidden secret stops init with its name), kept, and read again when older than
//! [`REFRESH_AFTER`]: a rotated secret reaches every running function within five minutes,
//! without a deploy. The previous value is kept beside the current one, so that a webhook
//! signed by a partner who has not switched yet (or has switched before our copy was
//! refreshed, [`Secret::refresh`]) is still recognised. A refresh that fails keeps the values
//! already held: a short outage of the store does not take the function down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
use crate::settings::SettingsError;

/// The suffix of the variables naming a secret: `<NAME>_SECRET_ARN`.
pub const SECRET_SUFFIX: &str = "_SECRET_ARN";

/// How long a value read is used before it is read again (the default TTL of the AWS
/// Parameters and Secrets extension, too).
pub const REFRESH_AFTER: Duration = Duration::minutes(5);

/// The shortest gap between two reads forced by [`Secret::refresh`]: a flood of wrongly
/// signed calls cannot turn into a flood of reads of the store.
pub const MIN_REFRESH_GAP: Duration = Duration::seconds(30);

/// A secret's value. Its `Debug` hides it, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Arc<str>);

impl SecretValue {
    /// Wraps a value read from a store.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        SecretValue(value.into())
    }

    /// The value, to sign or send with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue(<{} characters>)", self.0.len())
    }
}

/// What a store holds of one secret: the value in force and the one before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// The current value (`AWSCURRENT`).
    pub current: SecretValue,
    /// The value before the last rotation (`AWSPREVIOUS`), if there was one.
    pub previous: Option<SecretValue>,
}

impl Versions {
    /// The current value, then the previous one.
    pub fn all(&self) -> impl Iterator<Item = &SecretValue> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

/// Why a secret could not be read: who must act is whoever deployed the function (a missing
/// secret or grant) or, for [`SecretError::Unavailable`], nobody (it passes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No such secret (or it has no value yet).
    #[error("secret {0} does not exist")]
    NotFound(String),
    /// The function's role may not read it.
    #[error("this function may not read secret {0}")]
    Denied(String),
    /// The store did not answer.
    #[error("secret {id} could not be read: {reason}")]
    Unavailable {
        /// The secret.
        id: String,
        /// What the store said.
        reason: String,
    },
    /// The request itself is wrong (a name or value the store refuses).
    #[error("{0}")]
    Invalid(String),
}

/// Reads secrets: Secrets Manager on AWS, the engine locally.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The current and previous values of the secret `id` (an ARN or a name).
    async fn versions(&self, id: &str) -> Result<Versions, SecretError>;
}

/// Creates and changes secrets: what deploys, rotations and tests do, never a function.
#[async_trait]
pub trait SecretAdmin: Send + Sync {
    /// Creates the secret `name` with `value` when it does not exist (an existing secret keeps
    /// its value); returns its ARN.
    async fn ensure(&self, name: &str, value: &str) -> Result<String, SecretError>;

    /// Makes `value` the current value of the secret `id`; the current one becomes the
    /// previous.
    async fn put(&self, id: &str, value: &str) -> Result<(), SecretError>;

    /// The ARNs of the secrets whose name starts with `prefix`, with their names.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, SecretError>;
}

struct Held {
    read_at: DateTime<Utc>,
    versions: Versions,
}

/// One secret of a function: where it is, and the values last read.
pub struct Secret {
    variable: String,
    id: String,
    store: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    held: Mutex<Option<Held>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("variable", &self.variable)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// A secret read from `store` by `id`, known to the function as `variable`.
    pub fn new(
        variable: impl Into<String>,
        id: impl Into<String>,
        store: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
    ) -> Secret {
        Secret {
            variable: variable.into(),
            id: id.into(),
            store,
            clock,
            held: Mutex::new(None),
        }
    }

    /// What the function calls it (`WEBHOOK`).
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// Its ARN (or name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The values held, without reading the store: `None` before the first read.
    pub fn peek(&self) -> Option<Versions> {
        self.lock().as_ref().map(|h| h.versions.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The values, read again when older than [`REFRESH_AFTER`]. A failed refresh keeps the
    /// values held (logged as a warning); only a first read that fails is an error.
    pub async fn versions(&self) -> Result<Versions, SecretError> {
        let now = self.clock.now();
        let stale = match self.lock().as_ref() {
            Some(h) if now - h.read_at < REFRESH_AFTER => return Ok(h.versions.clone()),
            Some(h) => Some(h.versions.clone()),
            None => None,
        };
        match self.read(now).await {
            Ok(v) => Ok(v),
            Err(e) => match stale {
                Some(v) => {
                    tracing::warn!(secret = %self.variable, error = %e, "the secret could not be read again; the values held are used");
                    // Not again for a while: the store is struggling.
                    if let Some(h) = self.lock().as_mut() {
                        h.read_at = now - REFRESH_AFTER + MIN_REFRESH_GAP;
                    }
                    Ok(v)
                }
                None => Err(e),
            },
        }
    }

    /// Reads the store again now, unless it was read less than [`MIN_REFRESH_GAP`] ago:
    /// when a partner's signature matches none of the values held, or a partner refuses the
    /// key, the secret may have been rotated since it was read. Returns whether the values
    /// changed.
    pub async fn refresh(&self) -> bool {
        let now = self.clock.now();
        let before = match self.lock().as_ref() {
            Some(h) if now - h.read_at < MIN_REFRESH_GAP => return false,
            Some(h) => Some(h.versions.clone()),
            None => None,
        };
        match self.read(now).await {
            Ok(v) => before.as_ref() != Some(&v),
            Err(e) => {
                tracing::warn!(secret = %self.variable, error = %e, "the secret could not be read again");
                false
            }
        }
    }

    async fn read(&self, now: DateTime<Utc>) -> Result<Versions, SecretError> {
        let versions = self.store.versions(&self.id).await?;
        *self.lock() = Some(Held {
            read_at: now,
            versions: versions.clone(),
        });
        Ok(versions)
    }
}

/// The secrets a function's environment names, by the name the function gives them.
#[derive(Clone, Default)]
pub struct SecretBook {
    secrets: BTreeMap<String, Arc<Secret>>,
}

impl std::fmt::Debug for SecretBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.secrets.keys()).finish()
    }
}

/// The secrets an environment names: `(name, ARN)` for each `<NAME>_SECRET_ARN` variable.
pub fn named_secrets(env: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    env.iter().filter_map(|(k, v)| {
        let name = k.strip_suffix(SECRET_SUFFIX).filter(|n| !n.is_empty())?;
        Some((name, v.as_str())).filter(|(_, v)| !v.trim().is_empty())
    })
}

impl SecretBook {
    /// The secrets `env` names, read from `store` on `clock`.
    pub fn from_env(
        env: &BTreeMap<String, String>,
        store: &Arc<dyn SecretStore>,
        clock: &Arc<dyn Clock>,
    ) -> SecretBook {
        SecretBook {
            secrets: named_secrets(env)
                .map(|(name, id)| {
                    (
                        name.to_string(),
                        Arc::new(Secret::new(name, id, store.clone(), clock.clone())),
                    )
                })
                .collect(),
        }
    }

    /// Reads every secret once (at init): the first that cannot be read is the error,
    /// as a [`SettingsError`] naming its variable.
    pub async fn warm(&self) -> Result<(), SettingsError> {
        for (name, secret) in &self.secrets {
            secret.versions().await.map_err(|e| SettingsError {
                variable: format!("{name}{SECRET_SUFFIX}"),
                found: Some(secret.id.clone()),
                expected: format!("a secret this function can read ({e})"),
            })?;
        }
        Ok(())
    }

    /// The secret the function calls `name`, at least `min_len` characters long when it was
    /// already read (at init); `expected` says what it is, for the error when the
    /// environment does not name it.
    pub fn get(
        &self,
        name: &str,
        min_len: usize,
        expected: &str,
    ) -> Result<Arc<Secret>, SettingsError> {
        let variable = format!("{name}{SECRET_SUFFIX}");
        let secret = self.secrets.get(name).ok_or_else(|| SettingsError {
            variable: variable.clone(),
            found: None,
            expected: format!("the ARN of {expected}"),
        })?;
        if let Some(v) = secret.peek()
            && v.current.expose().len() < min_len
        {
            return Err(SettingsError {
                variable,
                found: Some(format!(
                    "{} (whose value has {} characters)",
                    secret.id,
                    v.current.expose().len()
                )),
                expected: format!("{expected}, at least {min_len} characters"),
            });
        }
        Ok(secret.clone())
    }

    /// The same secrets read on another clock (a stack on simulated time), nothing held.
    pub fn on_clock(&self, clock: &Arc<dyn Clock>) -> SecretBook {
        SecretBook {
            secrets: self
                .secrets
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        Arc::new(Secret::new(
                            s.variable.clone(),
                            s.id.clone(),
                            s.store.clone(),
                            clock.clone(),
                        )),
                    )
                })
                .collect(),
        }
    }

    /// The names of the secrets.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    struct Counted {
        values: Mutex<Result<Versions, SecretError>>,
        reads: Mutex<u32>,
    }

    #[async_trait]
    impl SecretStore for Counted {
        async fn versions(&self, _id: &str) -> Result<Versions, SecretError> {
            *self.reads.lock().unwrap() += 1;
            self.values.lock().unwrap().clone()
        }
    }

    fn v(current: &str, previous: Option<&str>) -> Versions {
        Versions {
            current: SecretValue::new(current),
            previous: previous.map(SecretValue::new),
        }
    }

    fn setup() -> (Arc<Counted>, Arc<ManualClock>, Secret) {
        let store = Arc::new(Counted {
            values: Mutex::new(Ok(v("one-one-one-one", None))),
            reads: Mutex::new(0),
        });
        let clock = Arc::new(ManualClock::new(
            DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        ));
        let secret = Secret::new("WEBHOOK_SECRET", "arn:x", store.clone(), clock.clone());
        (store, clock, secret)
    }

    #[tokio::test]
    async fn a_value_is_read_once_then_again_after_five_minutes() {
        let (store, clock, secret) = setup();
        assert_eq!(secret.versions().await.unwrap(), v("one-one-one-one", None));
        *store.values.lock().unwrap() = Ok(v("two-two-two-two", Some("one-one-one-one")));
        clock.advance(Duration::minutes(4));
        assert_eq!(
            secret.versions().await.unwrap().current.expose(),
            "one-one-one-one"
        );
        assert_eq!(*store.reads.lock().unwrap(), 1, "held, not read again");
        clock.advance(Duration::minutes(1));
        assert_eq!(
            secret.versions().await.unwrap(),
            v("two-two-two-two", Some("one-one-one-one")),
            "rotated: the new value after five minutes, without a restart"
        );
        assert_eq!(*store.reads.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_values_held_but_a_failed_first_read_is_an_error() {
        let (store, clock, secret) = setup();
        secret.versions().await.unwrap();
        *store.values.lock().unwrap() = Err(SecretError::Unavailable {
            id: "arn:x".into(),
            reason: "throttled".into(),
        });
        clock.advance(Duration::minutes(6));
        assert_eq!(
            secret.versions().await.unwrap().current.expose(),
            "one-one-one-one"
        );
        assert_eq!(
            secret.versions().await.unwrap().current.expose(),
            "one-one-one-one"
        );
        assert_eq!(
            *store.reads.lock().unwrap(),
            2,
            "after a failure, not again at once"
        );

        let (store, _, fresh) = setup();
        *store.values.lock().unwrap() = Err(SecretError::Denied("arn:x".into()));
        assert_eq!(
            fresh.versions().await,
            Err(SecretError::Denied("arn:x".into()))
        );
    }

    #[tokio::test]
    async fn a_forced_refresh_reads_at_most_once_per_gap() {
        let (store, clock, secret) = setup();
        secret.versions().await.unwrap();
        *store.values.lock().unwrap() = Ok(v("two-two-two-two", Some("one-one-one-one")));
        assert!(!secret.refresh().await, "read a moment ago: not again");
        clock.advance(MIN_REFRESH_GAP);
        assert!(secret.refresh().await, "the value changed");
        assert!(!secret.refresh().await);
        clock.advance(MIN_REFRESH_GAP);
        assert!(!secret.refresh().await, "read, but unchanged");
        assert_eq!(*store.reads.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn the_book_names_secrets_by_variable_and_checks_their_length_once_read() {
        let (store, clock, _) = setup();
        let env: BTreeMap<String, String> = [
            ("WEBHOOK_SECRET_ARN", "arn:x"),
            ("EMPTY_SECRET_ARN", " "),
            ("TABLE_NAME", "t"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let store: Arc<dyn SecretStore> = store;
        let clock: Arc<dyn Clock> = clock;
        let book = SecretBook::from_env(&env, &store, &clock);
        assert_eq!(book.names().collect::<Vec<_>>(), ["WEBHOOK"]);
        let missing = book.get("API_KEY", 8, "the key").unwrap_err();
        assert_eq!(missing.variable, "API_KEY_SECRET_ARN");
        book.warm().await.unwrap();
        assert!(book.get("WEBHOOK", 15, "the secret").is_ok());
        let short = book.get("WEBHOOK", 16, "the secret").unwrap_err();
        assert_eq!(short.variable, "WEBHOOK_SECRET_ARN");
        assert!(
            !short.to_string().contains("one-one"),
            "never the value: {short}"
        );
    }
}
