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

/// What a user is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignUpRole {
    /// A customer: active at once.
    Customer,
    /// A merchant: pending until an operator approves the application (active at once when
    /// an operator makes it).
    Merchant,
    /// An operator: only ever made by another operator's tools (`bazaar users create`).
    Operator,
}

impl SignUpRole {
    /// The role as tokens carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            SignUpRole::Customer => "customer",
            SignUpRole::Merchant => "merchant",
            SignUpRole::Operator => "operator",
        }
    }
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
    /// Switched off by an operator: cannot sign in, and its tokens are refused everywhere
    /// within a minute. An operator can enable it again.
    Disabled,
}

impl UserStatus {
    /// The status as text, as the API and events carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Pending => "pending",
            UserStatus::Refused => "refused",
            UserStatus::Disabled => "disabled",
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
    /// The operator who made the user with the toolbelt; none when the user signed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

crate::event!(UserCreated, "user.created", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.username.is_empty() || self.username.len() > 64 {
            return Err(ContractViolation::new("username must be 1 to 64 characters"));
        }
        let consistent = match &self.created_by {
            None => matches!(
                (self.role, self.status),
                (SignUpRole::Customer, UserStatus::Active)
                    | (SignUpRole::Merchant, UserStatus::Pending)
            ),
            Some(by) => !by.is_empty() && self.status == UserStatus::Active,
        };
        if !consistent {
            return Err(ContractViolation::new(
                "a user who signs up starts active as a customer or pending as a merchant; one an operator makes starts active",
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

/// `user.disabled`: an operator disabled a user. Its tokens are refused from now on (every
/// function learns of it within a minute) and it cannot sign in until it is enabled again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDisabled {
    /// The user name.
    pub username: String,
    /// The operator who disabled it.
    pub disabled_by: String,
    /// When.
    pub disabled_at: DateTime<Utc>,
}

crate::event!(UserDisabled, "user.disabled", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.username.is_empty() || self.disabled_by.is_empty() {
            return Err(ContractViolation::new("username and disabled_by must not be empty"));
        }
        Ok(())
    }
});

/// `user.enabled`: an operator enabled a disabled user again. Tokens issued before it was
/// disabled stay refused: it signs in afresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEnabled {
    /// The user name.
    pub username: String,
    /// The operator who enabled it.
    pub enabled_by: String,
    /// When.
    pub enabled_at: DateTime<Utc>,
}

crate::event!(UserEnabled, "user.enabled", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.username.is_empty() || self.enabled_by.is_empty() {
            return Err(ContractViolation::new("username and enabled_by must not be empty"));
        }
        Ok(())
    }
});

/// `user.password_changed`: a user changed its password; every token issued before is
/// refused from now on (what a user does when it fears its password or a token leaked).
/// Carries no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPasswordChanged {
    /// The user name.
    pub username: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

crate::event!(UserPasswordChanged, "user.password_changed", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.username.is_empty() {
            return Err(ContractViolation::new("username must not be empty"));
        }
        Ok(())
    }
});
