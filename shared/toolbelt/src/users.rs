//! `bazaar users`: operators making, approving, refusing, disabling, enabling and listing
//! users, on the identity service's table (the template's `IdentityTable`) and its topic,
//! locally or on AWS.
//!
//! The toolbelt runs the identity service's own code ([`identity_api::accounts`]) in a unit of
//! work of its own: the same rules, the same records, the same events (committed with the
//! changes through the outbox, which the identity service's sweeper publishes should this
//! process die in between). No token is involved: whoever may write the identity table is an
//! operator, which is how a deployed stage gets its first one. The events name the caller
//! (its AWS identity, or `local:<user>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use async_trait::async_trait;
use bazaar_contracts::identity::{SignUpRole, UserStatus};
use bazaar_contracts::{Actor, Role};
use bazaar_platform::clock::Clock;
use bazaar_platform::ids::RandomIds;
use bazaar_platform::ports::{DeadLetter, DeadLetters, PublishError, Topics};
use bazaar_platform::telemetry::CollectedMetrics;
use bazaar_platform::{Deps, Work};
use chrono::{DateTime, Utc};
use identity_api::accounts::{self, Change, UserFilter, UserPage, UserSummary};

use crate::Target;
use crate::backend::Backend;

/// The backend's clock, for the unit of work.
struct BackendClock(Arc<dyn Backend>);

impl Clock for BackendClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

/// The toolbelt handles no messages: nothing is ever parked.
struct NoDeadLetters;

#[async_trait]
impl DeadLetters for NoDeadLetters {
    async fn park(&self, _letter: DeadLetter) -> Result<(), PublishError> {
        Err(PublishError::Unavailable(
            "the toolbelt has no dead-letter queue".into(),
        ))
    }
}

/// The identity service's table, by the template.
fn identity_table(target: &Target) -> anyhow::Result<&String> {
    target
        .model
        .tables
        .get("IdentityTable")
        .context("the template has no IdentityTable")
}

/// The identity service's table and topic, as the toolbelt's ports.
async fn deps(target: &Target) -> anyhow::Result<Deps> {
    let table = identity_table(target)?;
    let topic = target
        .topic_name("user")
        .context("no function of the template publishes to the user topic (TOPIC_ARN_USER)")?;
    let arn = target.backend.topic_arn(&topic).await?;
    let env: BTreeMap<String, String> = [
        ("TABLE_NAME".to_string(), table.clone()),
        ("TOPIC_ARN_USER".to_string(), arn.clone()),
    ]
    .into_iter()
    .collect();
    Ok(Deps {
        function: "toolbelt".into(),
        table: Some(target.backend.table(table)),
        tables: BTreeMap::new(),
        publisher: target
            .backend
            .publisher(Topics([("user".to_string(), arn)].into_iter().collect())),
        dead_letters: Arc::new(NoDeadLetters),
        clock: Arc::new(BackendClock(target.backend.clone())),
        ids: Arc::new(RandomIds),
        metrics: Arc::new(CollectedMetrics::default()),
        keys: None,
        queues: None,
        secrets: Default::default(),
        env,
        harness: Default::default(),
    })
}

/// Runs `f` in a unit of work on the identity table, as the caller (an operator: the
/// work's actor, whom the events name), and commits it under `scope`.
async fn in_work<T>(
    target: &Target,
    scope: &str,
    f: impl AsyncFnOnce(&mut Work<'_>) -> Result<T, bazaar_platform::http::ApiError>,
) -> anyhow::Result<T> {
    let deps = deps(target).await?;
    let operator = target.backend.caller().await;
    let id = uuid::Uuid::new_v4().to_string();
    let cause = bazaar_platform::work::Cause::start(
        id.clone(),
        id,
        Actor {
            subject: operator.to_string(),
            roles: vec![Role::Operator.as_str().to_string()],
        },
        "bazaar-toolbelt",
    );
    let mut work = Work::new(&deps, cause);
    let out = match f(&mut work).await {
        Ok(out) => out,
        Err(e) => bail!("{} ({})", e.detail, e.status),
    };
    work.commit(scope).await.map_err(|e| {
        let stale = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<bazaar_platform::ports::TableError>())
            .is_some_and(|t| t.is_stale());
        if stale {
            anyhow::anyhow!("the user changed meanwhile (another operator?): run the command again")
        } else {
            anyhow::Error::new(e).context("committing the change")
        }
    })?;
    Ok(out)
}

/// A role `users create` makes.
pub fn parse_role(role: &str) -> anyhow::Result<SignUpRole> {
    match role {
        "customer" => Ok(SignUpRole::Customer),
        "merchant" => Ok(SignUpRole::Merchant),
        "operator" => Ok(SignUpRole::Operator),
        other => bail!("no role {other:?}: customer, merchant or operator"),
    }
}

/// A status `users list --status` filters by.
pub fn parse_status(status: &str) -> anyhow::Result<UserStatus> {
    match status {
        "active" => Ok(UserStatus::Active),
        "pending" => Ok(UserStatus::Pending),
        "refused" => Ok(UserStatus::Refused),
        "disabled" => Ok(UserStatus::Disabled),
        other => bail!("no status {other:?}: active, pending, refused or disabled"),
    }
}

/// Makes a user, active at once (`user.created` names the caller).
pub async fn create(
    target: &Target,
    username: &str,
    email: &str,
    password: &str,
    role: SignUpRole,
) -> anyhow::Result<UserSummary> {
    in_work(target, &format!("users:create:{username}"), async |work| {
        let operator = work.actor().subject.clone();
        accounts::create(work, username, email, password, role, &operator).await
    })
    .await
    .with_context(|| format!("making {username}"))
}

/// Approves, refuses, disables or enables a user.
pub async fn change(
    target: &Target,
    username: &str,
    change: Change,
) -> anyhow::Result<UserSummary> {
    in_work(
        target,
        &format!("users:{}:{username}", change.as_str()),
        async |work| {
            let operator = work.actor().subject.clone();
            accounts::change(
                work,
                username,
                change,
                &operator,
                identity_api::DEFAULT_TOKEN_TTL,
            )
            .await
        },
    )
    .await
    .with_context(|| format!("{} {username}", change.as_str()))
}

/// Sets a user's feature flags (replacing those it had; none clears them): the user's next
/// token carries them.
pub async fn set_flags(
    target: &Target,
    username: &str,
    flags: bazaar_contracts::Flags,
) -> anyhow::Result<UserSummary> {
    in_work(target, &format!("users:flags:{username}"), async |work| {
        let operator = work.actor().subject.clone();
        accounts::set_flags(work, username, flags, &operator).await
    })
    .await
    .with_context(|| format!("setting the flags of {username}"))
}

/// Every user `filter` admits, by name (all pages).
pub async fn list(target: &Target, filter: &UserFilter) -> anyhow::Result<Vec<UserSummary>> {
    let table = target.backend.table(identity_table(target)?);
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let UserPage { users, next_cursor } =
            accounts::list_users(table.as_ref(), filter, cursor, accounts::MAX_PAGE)
                .await
                .map_err(|e| anyhow::anyhow!("reading the identity table: {e}"))?;
        out.extend(users);
        match next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Users as a table for people.
pub fn render(users: &[UserSummary]) -> String {
    let mut out = format!(
        "{:<24} {:<9} {:<18} {}\n",
        "USER", "STATUS", "ROLES", "EMAIL"
    );
    for u in users {
        out.push_str(&render_one(u));
    }
    out.push_str(&format!("{} user(s)\n", users.len()));
    out
}

/// One user's line of [`render`].
pub fn render_one(u: &UserSummary) -> String {
    {
        let roles = if u.roles.is_empty() {
            u.applied_for
                .as_ref()
                .map(|r| format!("({r}?)"))
                .unwrap_or_else(|| "-".into())
        } else {
            u.roles.join(",")
        };
        format!(
            "{:<24} {:<9} {:<18} {}\n",
            u.username,
            u.status.as_str(),
            roles,
            u.email.as_deref().unwrap_or("-")
        )
    }
}
