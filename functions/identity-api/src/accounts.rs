//! Accounts as operators change them, written once for the API's routes and the operators'
//! toolbelt (`bazaar users`): the listing of users, sessions and their revocation, and the
//! status changes (approve, refuse, disable, enable).
//!
//! - Every write of a user goes through [`save`]: the record, conditional on the version read
//!   (two operators, or an operator and a sign-in, cannot overwrite each other: the loser runs
//!   again on fresh reads), and its line in the listing partition (`USERS`), which
//!   `GET /users` pages through in user-name order.
//! - A user's tokens carry its session (`sid`), a random value. Making them stop working
//!   ([`revoke`]: disabled, password changed) writes the session into the `REVOKED` partition
//!   and gives the user a new one. The partition's sort key starts with the time until which a
//!   token of the session could live, so that [`revoked_sessions`] reads only the entries that
//!   still matter; DynamoDB's TTL deletes them a day later.

use std::collections::BTreeMap;

use bazaar_contracts::identity::{SignUpRole, UserApproved, UserDisabled, UserEnabled, UserStatus};
use bazaar_contracts::{Flags, Role};
use bazaar_platform::Work;
use bazaar_platform::auth::Revoked;
use bazaar_platform::http::ApiError;
use bazaar_platform::item::{Condition, Key, Query, SortKey, Write, parse, record, unchanged};
use bazaar_platform::ports::{HandlerError, Table};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{UserRecord, user_key};

/// The partition listing every user by name.
const USERS_PK: &str = "USERS";
/// The partition of revoked sessions.
const REVOKED_PK: &str = "REVOKED";
/// The most users one page of the listing holds.
pub const MAX_PAGE: u32 = 200;

/// What the listing and the operators' answers show of a user (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The user name.
    pub username: String,
    /// The e-mail address (none for the local stack's demo users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The roles its tokens carry.
    pub roles: Vec<String>,
    /// Where the account stands.
    pub status: UserStatus,
    /// The role applied for, while an application is pending (or disabled while pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_for: Option<String>,
    /// When it signed up (none for users made before sign-up existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Feature flags set on it (`PUT /users/{username}/flags`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, String>,
}

impl From<&UserRecord> for UserSummary {
    fn from(u: &UserRecord) -> Self {
        UserSummary {
            username: u.username.clone(),
            email: u.email.clone(),
            roles: u.roles.clone(),
            status: u.status,
            applied_for: u.applied_for.clone(),
            created_at: u.created_at,
            flags: u.flags.0.clone(),
        }
    }
}

pub(crate) fn listing_key(username: &str) -> Key {
    Key::new(USERS_PK, username)
}

/// A revoked session as kept in the `REVOKED` partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RevokedSession {
    session: String,
    /// Epoch seconds until which a token of the session could be valid.
    until: i64,
    revoked_at: DateTime<Utc>,
    /// DynamoDB's expiry attribute: a day after `until`.
    ttl: i64,
}

/// The writes of `user`: its record under `condition`, and its listing line.
pub(crate) fn writes(user: &UserRecord, condition: Condition) -> [Write; 2] {
    [
        Write::Put {
            item: record(&user_key(&user.username), user),
            condition: Some(condition),
        },
        Write::Put {
            item: record(&listing_key(&user.username), &UserSummary::from(user)),
            condition: None,
        },
    ]
}

/// Adds the writes of `user` to the unit of work: the record, on condition that it is still
/// at version `read` (`None`: that there is none), and its listing line.
pub(crate) fn save(work: &mut Work<'_>, user: &mut UserRecord, read: Option<u64>) {
    let condition = match read {
        None => Condition::NotExists,
        Some(v) => unchanged(Some(v)),
    };
    user.version = read.map_or(1, |v| v + 1);
    for write in writes(user, condition) {
        work.write(write);
    }
}

/// Revokes the user's current session (its tokens are refused everywhere within a minute)
/// and gives it a new one; [`save`] the user after.
pub(crate) fn revoke(work: &mut Work<'_>, user: &mut UserRecord, token_ttl: Duration) {
    if !user.session.is_empty() {
        let now = work.now();
        let until = (now + token_ttl)
            .timestamp()
            .max(user.session_until.unwrap_or(0));
        let entry = RevokedSession {
            session: user.session.clone(),
            until,
            revoked_at: now,
            ttl: until.saturating_add(86_400),
        };
        work.put(
            record(
                &Key::new(REVOKED_PK, format!("{until:012}#{}", user.session)),
                &entry,
            ),
            None,
        );
    }
    user.session = work.new_id();
    user.session_until = None;
}

/// The sessions revoked whose tokens could still be valid at `now`.
pub async fn revoked_sessions(
    table: &dyn Table,
    now: DateTime<Utc>,
) -> Result<Revoked, HandlerError> {
    let from = format!("{:012}", now.timestamp().max(0));
    let items = table
        .query_all(Query::partition(REVOKED_PK).sort_key(SortKey::Ge(from)))
        .await?;
    let mut out = Revoked::default();
    for item in items {
        let entry: RevokedSession = parse(item)?;
        out.sessions.insert(entry.session);
    }
    Ok(out)
}

/// A page of the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserPage {
    /// The users, by name.
    pub users: Vec<UserSummary>,
    /// Where the next page starts (`cursor=`), when there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Which users to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only those with this status.
    pub status: Option<UserStatus>,
    /// Only those holding this role (or applying for it).
    pub role: Option<String>,
}

impl UserFilter {
    fn admits(&self, u: &UserSummary) -> bool {
        self.status.is_none_or(|s| s == u.status)
            && self.role.as_ref().is_none_or(|r| {
                u.roles.iter().any(|have| have == r) || u.applied_for.as_ref() == Some(r)
            })
    }
}

/// Up to `limit` users after `cursor` (a user name) that `filter` admits. At most ten pages
/// of the partition are read per call, so that a filter matching few users cannot make one
/// request read the whole table: the answer then holds fewer users and a cursor.
pub async fn list_users(
    table: &dyn Table,
    filter: &UserFilter,
    cursor: Option<String>,
    limit: u32,
) -> Result<UserPage, HandlerError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut users = Vec::new();
    let mut after = cursor;
    for _ in 0..10 {
        let page = table
            .query(
                Query::partition(USERS_PK)
                    .limit(limit)
                    .start_after(after.clone()),
            )
            .await?;
        let more = page.last_sk.is_some();
        for item in page.items {
            let user: UserSummary = parse(item)?;
            after = Some(user.username.clone());
            if filter.admits(&user) {
                users.push(user);
                if users.len() == limit as usize {
                    return Ok(UserPage {
                        users,
                        next_cursor: after,
                    });
                }
            }
        }
        if !more {
            return Ok(UserPage {
                users,
                next_cursor: None,
            });
        }
    }
    Ok(UserPage {
        users,
        next_cursor: after,
    })
}

/// Makes a user on an operator's behalf (`bazaar users create`), active at once whatever its
/// role: how a deployed stage gets its first operator, and how operators make others. The
/// same rules as sign-up for names, addresses and passwords; `user.created` names the
/// operator (`created_by`).
pub async fn create(
    work: &mut Work<'_>,
    username: &str,
    email: &str,
    password: &str,
    role: SignUpRole,
    operator: &str,
) -> Result<UserSummary, ApiError> {
    crate::signup::check_username(username)
        .map_err(|why| ApiError::bad_request(Some("username"), why))?;
    let email = crate::signup::normalise_email(email)
        .map_err(|why| ApiError::bad_request(Some("email"), why))?;
    crate::signup::check_password(username, password)
        .map_err(|why| ApiError::bad_request(Some("password"), why))?;
    let user = crate::signup::register(
        work,
        crate::signup::Registration {
            username: username.to_string(),
            email,
            password: password.to_string(),
            role,
            created_by: Some(operator.to_string()),
        },
    )
    .await?;
    tracing::info!(
        username,
        operator,
        role = role.as_str(),
        "user made by an operator"
    );
    Ok(user)
}

/// What an operator does to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A pending application becomes what it applied for.
    Approve,
    /// A pending application is turned away.
    Refuse,
    /// The user cannot sign in and its tokens stop working.
    Disable,
    /// A disabled user can sign in again (with fresh tokens).
    Enable,
}

impl Change {
    /// The change as the route and the toolbelt name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Approve => "approve",
            Change::Refuse => "refuse",
            Change::Disable => "disable",
            Change::Enable => "enable",
        }
    }
}

/// Where a change leaves a user of status `from`, or why it cannot be made (the 409's
/// detail). `None` with `Ok`: nothing to do (disabling a disabled user, enabling an enabled
/// one), answered 200 without an event. `pending_before` says whether an application was
/// pending when the user was disabled (enabling puts it back to pending).
pub fn next_status(
    from: UserStatus,
    change: Change,
    pending_before: bool,
) -> Result<Option<UserStatus>, &'static str> {
    use Change as C;
    use UserStatus as S;
    match (from, change) {
        (S::Pending, C::Approve) => Ok(Some(S::Active)),
        (S::Pending, C::Refuse) => Ok(Some(S::Refused)),
        (_, C::Approve | C::Refuse) => Err("only a pending application can be decided"),
        (S::Active | S::Pending, C::Disable) => Ok(Some(S::Disabled)),
        (S::Disabled, C::Disable) => Ok(None),
        (S::Refused, C::Disable) => Err("a refused application cannot sign in already"),
        (S::Disabled, C::Enable) if pending_before => Ok(Some(S::Pending)),
        (S::Disabled, C::Enable) => Ok(Some(S::Active)),
        (S::Active | S::Pending, C::Enable) => Ok(None),
        (S::Refused, C::Enable) => Err("a refused application cannot be enabled"),
    }
}

/// Makes `change` to `username` on behalf of `operator`: the state machine of
/// [`next_status`], the session revoked on disable, and the event (`user.approved`,
/// `user.disabled`, `user.enabled`; a refusal has none). Errors are the API's: 404 for an
/// unknown user, 409 for a change the status does not allow.
pub async fn change(
    work: &mut Work<'_>,
    username: &str,
    change: Change,
    operator: &str,
    token_ttl: Duration,
) -> Result<UserSummary, ApiError> {
    if change == Change::Disable && username == operator {
        return Err(ApiError::conflict(
            "an operator cannot disable itself: another operator must",
        ));
    }
    let user: Option<UserRecord> = work.table()?.get_as(&user_key(username)).await?;
    let Some(mut user) = user else {
        return Err(ApiError::not_found(format!("no user {username:?}")));
    };
    let read = user.version;
    let pending_before = user.applied_for.is_some();
    let next = next_status(user.status, change, pending_before).map_err(|why| {
        ApiError::conflict(format!("{why}; {username} is {}", user.status.as_str()))
    })?;
    let Some(next) = next else {
        return Ok(UserSummary::from(&user));
    };
    let now = work.now();
    user.status = next;
    match change {
        Change::Approve => {
            let role = user
                .applied_for
                .take()
                .unwrap_or_else(|| Role::Merchant.as_str().into());
            user.roles = vec![role.clone()];
            work.send(&UserApproved {
                username: username.into(),
                role,
                approved_by: operator.into(),
                approved_at: now,
            })?;
        }
        Change::Refuse => {}
        Change::Disable => {
            revoke(work, &mut user, token_ttl);
            work.send(&UserDisabled {
                username: username.into(),
                disabled_by: operator.into(),
                disabled_at: now,
            })?;
        }
        Change::Enable => {
            work.send(&UserEnabled {
                username: username.into(),
                enabled_by: operator.into(),
                enabled_at: now,
            })?;
        }
    }
    save(work, &mut user, Some(read));
    tracing::info!(username, operator, change = change.as_str(), "user changed");
    Ok(UserSummary::from(&user))
}

/// Sets the flags of `username` (replacing those it had; an empty set clears them) on behalf
/// of `operator`. The user's next token carries them: tokens already issued keep the old ones
/// until they expire (a token lifetime, 15 minutes by default), which is why the answer says
/// when the change is in force. 404 for an unknown user.
pub async fn set_flags(
    work: &mut Work<'_>,
    username: &str,
    flags: Flags,
    operator: &str,
) -> Result<UserSummary, ApiError> {
    let user: Option<UserRecord> = work.table()?.get_as(&user_key(username)).await?;
    let Some(mut user) = user else {
        return Err(ApiError::not_found(format!("no user {username:?}")));
    };
    if user.flags == flags {
        return Ok(UserSummary::from(&user));
    }
    let read = user.version;
    user.flags = flags;
    save(work, &mut user, Some(read));
    tracing::info!(username, operator, flags = %user.flags.encode().unwrap_or_default(), "user's flags set");
    Ok(UserSummary::from(&user))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATUSES: [UserStatus; 4] = [
        UserStatus::Active,
        UserStatus::Pending,
        UserStatus::Refused,
        UserStatus::Disabled,
    ];
    const ALL_CHANGES: [Change; 4] = [
        Change::Approve,
        Change::Refuse,
        Change::Disable,
        Change::Enable,
    ];

    /// Every (status, change) pair, against the table it must follow.
    #[test]
    fn every_status_and_change() {
        use Change as C;
        use UserStatus as S;
        for from in ALL_STATUSES {
            for change in ALL_CHANGES {
                for pending_before in [false, true] {
                    let got = next_status(from, change, pending_before);
                    let want: Result<Option<S>, ()> = match (from, change) {
                        (S::Pending, C::Approve) => Ok(Some(S::Active)),
                        (S::Pending, C::Refuse) => Ok(Some(S::Refused)),
                        (_, C::Approve | C::Refuse) => Err(()),
                        (S::Refused, _) => Err(()),
                        (S::Disabled, C::Disable) => Ok(None),
                        (_, C::Disable) => Ok(Some(S::Disabled)),
                        (S::Disabled, C::Enable) => Ok(Some(if pending_before {
                            S::Pending
                        } else {
                            S::Active
                        })),
                        (_, C::Enable) => Ok(None),
                    };
                    assert_eq!(
                        got.map_err(|_| ()),
                        want,
                        "{from:?} + {change:?} (pending before: {pending_before})"
                    );
                }
            }
        }
    }

    #[test]
    fn a_refused_application_is_final() {
        for change in ALL_CHANGES {
            assert!(next_status(UserStatus::Refused, change, true).is_err());
        }
    }
}
