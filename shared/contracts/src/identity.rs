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

/// What a person signs up as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignUpRole {
    /// A customer: active at once.
    Customer,
    /// A merchant: pending until an operator approves the application.
    Merchant,
}

/// Where a user's account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Signs in with the roles it holds.
    #[default]
    Active,
    /// A merchant's application waiting for an operator: signs in with no role.
    Pending,
    /// A merchant's application turned away by an operator: cannot sign in.
    Refused,
}

impl UserStatus {
    /// The status as text, as the API and events carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Pending => "pending",
            UserStatus::Refused => "refused",
        }
    }
}

/// `user.created`: someone signed up. Carries the user name, not the e-mail address: the
/// address is personal data, and the archive keeps every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The user name (the subject of the user's tokens).
    pub username: String,
    /// What the user signed up as.
    pub role: SignUpRole,
    /// Active, or pending an operator's approval.
    pub status: UserStatus,
    /// When.
    pub created_at: DateTime<Utc>,
}

crate::event!(UserCreated, "user.created", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.username.is_empty() || self.username.len() > 64 {
            return Err(ContractViolation::new("username must be 1 to 64 characters"));
        }
        let consistent = matches!(
            (self.role, self.status),
            (SignUpRole::Customer, UserStatus::Active) | (SignUpRole::Merchant, UserStatus::Pending)
        );
        if !consistent {
            return Err(ContractViolation::new(
                "a customer starts active and a merchant pending",
            ));
        }
        Ok(())
    }
});

/// `user.approved`: an operator approved a merchant's application; the user's next token
/// carries the role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserApproved {
    /// The user name.
    pub username: String,
    /// The role granted (`merchant`).
    pub role: String,
    /// The operator who approved it.
    pub approved_by: String,
    /// When.
    pub approved_at: DateTime<Utc>,
}

crate::event!(UserApproved, "user.approved", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.username.is_empty() || self.approved_by.is_empty() {
            return Err(ContractViolation::new("username and approved_by must not be empty"));
        }
        if self.role != "merchant" {
            return Err(ContractViolation::new("only merchants are approved"));
        }
        Ok(())
    }
});
