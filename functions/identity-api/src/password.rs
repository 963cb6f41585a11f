//! `PUT /users/me/password`: a signed-in user changes its password, giving the old one.
//!
//! The old password is checked like a sign-in (Argon2id, throttled per user name and source
//! address by [`crate::throttle`], so that a stolen token cannot be used to guess the
//! password behind it); the new one must pass the sign-up rules
//! ([`crate::signup::check_password`]). A change revokes the session: every token issued
//! before it is refused everywhere within a minute (the reason a person changes a password
//! is often that something leaked). The answer carries a fresh token of the new session, so
//! the client that made the change stays signed in.

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::identity::{UserPasswordChanged, UserStatus};
use bazaar_platform::Work;
use bazaar_platform::http::{ApiError, Request, Response, Route};
use serde::Deserialize;

use crate::signup::{MAX_PASSWORD_BYTES, check_password};
use crate::{Settings, UserRecord, accounts, throttle, user_key};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeRequest {
    old_password: String,
    new_password: String,
}

/// `PUT /users/me/password`.
pub struct ChangePassword(pub Arc<Settings>);

#[async_trait]
impl Route for ChangePassword {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = request.actor()?;
        let body: ChangeRequest = request.json()?;
        if body.old_password.is_empty() || body.old_password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::bad_request(
                Some("old_password"),
                "old_password must be 1 to 1024 bytes",
            ));
        }
        let username = actor.subject;
        check_password(&username, &body.new_password)
            .map_err(|why| ApiError::bad_request(Some("new_password"), why))?;
        if body.new_password == body.old_password {
            return Err(ApiError::bad_request(
                Some("new_password"),
                "new_password must differ from old_password",
            ));
        }
        let source = if request.source_ip.is_empty() {
            "unknown"
        } else {
            request.source_ip.as_str()
        };
        let attempt = throttle::admit(work.table()?, &username, source, work.now())
            .await
            .map_err(|r| throttle::refusal(r, "failed password checks"))?;
        let user: Option<UserRecord> = work.table()?.get_as(&user_key(&username)).await?;
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| crate::dummy_hash().to_string());
        let (old, new) = (body.old_password, body.new_password);
        let checked = crate::off_the_workers(move || {
            crate::verify_password(&old, &hash)
                .then(|| crate::hash_password(&new))
                .transpose()
        })
        .await??;
        let (Some(mut user), Some(new_hash)) = (user, checked) else {
            return Err(ApiError::forbidden(
                "old_password is not this account's password",
            ));
        };
        attempt.succeeded(work.table()?).await?;
        if !matches!(user.status, UserStatus::Active | UserStatus::Pending) {
            return Err(ApiError::forbidden(format!(
                "this account is {}: its password cannot be changed",
                user.status.as_str()
            )));
        }
        let read = user.version;
        user.password_hash = new_hash;
        accounts::revoke(work, &mut user, self.0.token_ttl);
        accounts::save(work, &mut user, Some(read));
        work.send(&UserPasswordChanged {
            username: username.clone(),
            changed_at: work.now(),
        })?;
        tracing::info!(username, "password changed; older tokens revoked");
        crate::token_response(work, &self.0, &user).await
    }
}
