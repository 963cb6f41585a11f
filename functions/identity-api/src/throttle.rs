//! Sign-in throttling: failed attempts slow down the next ones, per user name and per source
//! address, so that passwords cannot be guessed at the speed of the API.
//!
//! Each key (a user name; a source address) has a record of its recent failures. Up to a
//! threshold they cost nothing; past it, each further attempt must wait twice as long as the
//! one before (from one second), up to a cap, or is answered 429 with `Retry-After`. Failures
//! are forgotten a quarter of an hour after the last one.
//!
//! - Per user name: 5 free failures, waits capped at one minute. The cap is low on purpose:
//!   an attacker (from many addresses) can make a real user wait a minute at most, never lock
//!   the account; other users are not touched.
//! - Per source: 20 free failures, waits capped at fifteen minutes: one address guessing at
//!   many users (or one user) is slowed hard, and is what makes the per-user cap safe.
//!
//! An attempt is counted before the password is checked (and given back when it succeeds),
//! with a conditional write on the record's version: a burst of simultaneous attempts cannot
//! all read "not yet throttled". A success resets the user's record; the source keeps its
//! other failures, so that logging in to one's own account between guesses buys nothing.
//! Unknown users and wrong passwords are throttled alike: the answer says nothing of whether
//! a name exists.
//!
//! Sign-ups are counted the same way per source address ([`admit_signup`]), every one of them
//! (made or refused as taken): accounts cannot be mass-created, and taken names cannot be
//! probed faster than sign-ins allow.

use bazaar_platform::HandlerError;
use bazaar_platform::item::{Condition, Item, Key, Update, Write, item};
use bazaar_platform::ports::{Table, TableError};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// How a kind of key is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures allowed before any wait.
    pub free: u32,
    /// The longest wait.
    pub cap: Duration,
}

/// Per user name.
pub const PER_USER: Policy = Policy {
    free: 5,
    cap: Duration::minutes(1),
};
/// Per source address.
pub const PER_SOURCE: Policy = Policy {
    free: 20,
    cap: Duration::minutes(15),
};
/// Sign-ups per source address: a household or an office signs up a few people; a script
/// making accounts (or probing which names are taken) waits, doubling, up to fifteen minutes.
pub const SIGNUP_PER_SOURCE: Policy = Policy {
    free: 5,
    cap: Duration::minutes(15),
};
/// How long failures are remembered after the last one.
pub const MEMORY: Duration = Duration::minutes(15);

/// A key's failures as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Failures {
    count: u32,
    last: i64,
    version: Option<u64>,
}

impl Failures {
    fn of(item: Option<&Item>) -> Failures {
        let Some(item) = item else {
            return Failures::default();
        };
        let n = |k: &str| item.get(k).and_then(Value::as_i64).unwrap_or(0);
        Failures {
            count: u32::try_from(n("failures")).unwrap_or(u32::MAX),
            last: n("last"),
            version: item.get("v").and_then(Value::as_u64).or(Some(0)),
        }
    }

    /// The failures that still count at `now`.
    fn current(&self, now: DateTime<Utc>) -> u32 {
        if now.timestamp_millis().saturating_sub(self.last) > MEMORY.num_milliseconds() {
            0
        } else {
            self.count
        }
    }

    /// How long the next attempt must still wait at `now` (zero: it may go).
    fn wait(&self, policy: Policy, now: DateTime<Utc>) -> Duration {
        let count = self.current(now);
        if count < policy.free {
            return Duration::zero();
        }
        // One second after the `free`-th failure, doubling with each one after.
        let doublings = (count - policy.free).min(30);
        let delay = Duration::seconds(1i64 << doublings).min(policy.cap);
        let until = self.last.saturating_add(delay.num_milliseconds());
        // Never longer than the cap, even after a record from a clock that ran ahead.
        Duration::milliseconds(until.saturating_sub(now.timestamp_millis()).max(0)).min(policy.cap)
    }
}

fn user_key(username: &str) -> Key {
    Key::new(format!("THROTTLE#user#{username}"), "LOGIN")
}

fn source_key(source: &str) -> Key {
    Key::new(format!("THROTTLE#source#{source}"), "LOGIN")
}

fn signup_key(source: &str) -> Key {
    Key::new(format!("THROTTLE#source#{source}"), "SIGNUP")
}

/// Why an attempt may not go now.
#[derive(Debug)]
pub enum Refusal {
    /// Too many failures: retry after this long.
    Wait(Duration),
    /// The table failed.
    Table(HandlerError),
}

/// A refusal as the API answers it: 429 with `Retry-After` (`what` names what was counted,
/// for the detail), or the table's failure.
pub fn refusal(refusal: Refusal, what: &str) -> bazaar_platform::http::ApiError {
    match refusal {
        Refusal::Wait(wait) => {
            let seconds = u32::try_from(wait.num_seconds().saturating_add(1)).unwrap_or(u32::MAX);
            tracing::warn!(what, "throttled");
            bazaar_platform::http::ApiError::too_many(
                seconds,
                format!("too many {what}; retry in {seconds} s"),
            )
        }
        Refusal::Table(e) => e.into(),
    }
}

impl From<TableError> for Refusal {
    fn from(e: TableError) -> Self {
        Refusal::Table(e.into())
    }
}

/// An attempt that was let through and counted; [`Attempt::succeeded`] gives it back.
pub struct Attempt {
    user: Key,
    source: Key,
}

/// Counts an attempt of `username` from `source`, or says how long to wait.
pub async fn admit(
    table: &dyn Table,
    username: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Attempt, Refusal> {
    let (user, source) = (user_key(username), source_key(source));
    count(
        table,
        &[(user.clone(), PER_USER), (source.clone(), PER_SOURCE)],
        now,
    )
    .await?;
    Ok(Attempt { user, source })
}

/// Counts a sign-up from `source` (every one counts, made or refused), or says how long to
/// wait.
pub async fn admit_signup(
    table: &dyn Table,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    count(table, &[(signup_key(source), SIGNUP_PER_SOURCE)], now).await
}

/// Adds one to each key's count in one transaction, unless one of them must wait.
async fn count(
    table: &dyn Table,
    keys: &[(Key, Policy)],
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    // A conflicting write is a simultaneous attempt: read again and judge again.
    for _ in 0..5 {
        let mut seen = Vec::with_capacity(keys.len());
        let mut wait = Duration::zero();
        for (key, policy) in keys {
            let f = Failures::of(table.get(key).await?.as_ref());
            wait = wait.max(f.wait(*policy, now));
            seen.push(f);
        }
        if wait > Duration::zero() {
            return Err(Refusal::Wait(wait));
        }
        let counted = |key: &Key, f: &Failures| Write::Put {
            item: item(
                key,
                json!({
                    "failures": f.current(now).saturating_add(1),
                    "last": now.timestamp_millis(),
                    "v": f.version.map_or(1, |v| v + 1),
                    "ttl": (now + MEMORY).timestamp(),
                }),
            ),
            condition: Some(match f.version {
                None => Condition::NotExists,
                Some(0) => Condition::AttributeNotExists("v".into()),
                Some(v) => Condition::Equals("v".into(), json!(v)),
            }),
        };
        let writes = keys
            .iter()
            .zip(&seen)
            .map(|((key, _), f)| counted(key, f))
            .collect();
        match table.transact(writes).await {
            Ok(()) => return Ok(()),
            Err(TableError::TransactionCanceled { .. } | TableError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Refusal::Wait(Duration::seconds(1)))
}

impl Attempt {
    /// The password was right: the user's failures are forgotten, and this attempt is given
    /// back to the source (its other failures stay).
    pub async fn succeeded(self, table: &dyn Table) -> Result<(), HandlerError> {
        table.delete(&self.user, None).await?;
        match table
            .update(
                &self.source,
                Update::new().add("failures", -1),
                Some(Condition::AtLeast("failures".into(), 1)),
            )
            .await
        {
            Ok(_) | Err(TableError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn waits_double_after_the_free_failures_up_to_the_cap() {
        let t = 1_800_000_000_000;
        let waits: Vec<i64> = (0..12)
            .map(|count| {
                Failures {
                    count,
                    last: t,
                    version: Some(1),
                }
                .wait(PER_USER, at(t))
                .num_seconds()
            })
            .collect();
        assert_eq!(waits, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60]);
        let old = Failures {
            count: 50,
            last: t,
            version: Some(1),
        };
        assert_eq!(
            old.wait(PER_USER, at(t + MEMORY.num_milliseconds() + 1)),
            Duration::zero(),
            "forgotten"
        );
        assert_eq!(
            old.wait(PER_SOURCE, at(t)),
            Duration::minutes(15),
            "the source's cap"
        );
    }

    #[test]
    fn numbers_at_the_ends_of_the_range_do_not_overflow() {
        let f = Failures {
            count: u32::MAX,
            last: i64::MAX,
            version: Some(u64::MAX - 1),
        };
        assert_eq!(f.wait(PER_USER, at(0)), Duration::minutes(1));
        let f = Failures {
            count: u32::MAX,
            last: i64::MIN,
            version: None,
        };
        assert_eq!(f.wait(PER_SOURCE, at(0)), Duration::zero());
    }
}
