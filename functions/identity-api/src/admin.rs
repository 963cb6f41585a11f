//! What operators decide about users: `POST /users/{username}/approve` and `/refuse` settle a
//! merchant's application.
//!
//! Only a pending application can be decided, once: the write is conditional on the stored
//! status still being `pending`, so two operators deciding at once cannot both win (the
//! second gets 409). Approval gives the user the role applied for (its next token carries it)
//! and emits `user.approved`; a refused user cannot sign in.

use async_trait::async_trait;
use bazaar_contracts::Role;
use bazaar_contracts::identity::{UserApproved, UserStatus};
use bazaar_platform::Work;
use bazaar_platform::http::{ApiError, Request, Response, Route};
use bazaar_platform::item::{Condition, record};
use serde_json::json;

use crate::{UserRecord, user_key};

/// What an operator decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The applicant becomes what it applied for.
    Approve,
    /// The applicant is turned away.
    Refuse,
}

/// `POST /users/{username}/approve` and `/refuse`.
pub struct Decide(pub Decision);

#[async_trait]
impl Route for Decide {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let operator = request.actor_with_role(&[Role::Operator])?;
        let username = request.param("username").to_string();
        let user: Option<UserRecord> = work.table()?.get_as(&user_key(&username)).await?;
        let Some(mut user) = user else {
            return Err(ApiError::not_found(format!("no user {username:?}")));
        };
        if user.status != UserStatus::Pending {
            return Err(ApiError::conflict(format!(
                "only a pending application can be decided; {username} is {}",
                user.status.as_str()
            )));
        }
        let role = user.applied_for.take().unwrap_or_else(|| "merchant".into());
        let now = work.now();
        match self.0 {
            Decision::Approve => {
                user.status = UserStatus::Active;
                user.roles = vec![role.clone()];
                work.send(&UserApproved {
                    username: username.clone(),
                    role: role.clone(),
                    approved_by: operator.subject.clone(),
                    approved_at: now,
                })?;
            }
            Decision::Refuse => user.status = UserStatus::Refused,
        }
        work.put(
            record(&user_key(&username), &user),
            Some(Condition::Equals("status".into(), json!("pending"))),
        );
        tracing::info!(username, operator = operator.subject, decision = ?self.0, "application decided");
        Ok(Response::json(
            200,
            json!({ "username": username, "roles": user.roles, "status": user.status }),
        ))
    }
}
