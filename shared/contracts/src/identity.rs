//! Contracts of the identity service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ContractViolation;

/// `user.authed`: a user proved who they are and got a token. Carries no secret and no
/// personal data beyond the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAuthed {
    /// The subject.
    pub subject: String,
    /// The id of the token issued (`jti`), to trace its use.
    pub token_id: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

crate::event!(UserAuthed, "user.authed", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.subject.is_empty() {
            return Err(ContractViolation::new("subject must not be empty"));
        }
        Ok(())
    }
});
