//! What operators do with users: `POST /users/{username}/approve`, `/refuse`, `/disable` and
//! `/enable` ([`crate::accounts::change`]), and `GET /users`, the listing.
//!
//! Every change is conditional on the user record being the one read, so two operators
//! acting at once cannot both win: the second gets 409 and sees the new state when it looks
//! again. Approval gives the user the role applied for (its next token carries it) and emits
//! `user.approved`; a refused user cannot sign in; a disabled one cannot either, and its
//! tokens are refused everywhere within a minute (`user.disabled`); enabling lets it sign in
//! again with fresh tokens (`user.enabled`).

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::identity::UserStatus;
use bazaar_contracts::{Flags, Role};
use bazaar_platform::Work;
use bazaar_platform::http::{ApiError, Request, Response, Route};

use crate::Settings;
use crate::accounts::{self, Change, UserFilter};

/// `POST /users/{username}/{approve,refuse,disable,enable}`.
pub struct ChangeUser(pub Change, pub Arc<Settings>);

#[async_trait]
impl Route for ChangeUser {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let operator = request.actor_with_role(&[Role::Operator])?;
        let username = request.param("username").to_string();
        let summary =
            accounts::change(work, &username, self.0, &operator.subject, self.1.token_ttl).await?;
        Ok(Response::json(200, summary))
    }
}

/// `PUT /users/{username}/flags` with `{"flags": {"test-order": "true"}}`: the user's feature
/// flags, for operators. Names and values are words (letters, digits, `-`, `_`; values also
/// `.`), at most 16 flags; `{}` clears them.
pub struct SetFlags;

/// The body of `PUT /users/{username}/flags`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagsBody {
    flags: std::collections::BTreeMap<String, String>,
}

#[async_trait]
impl Route for SetFlags {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let operator = request.actor_with_role(&[Role::Operator])?;
        let username = request.param("username").to_string();
        let body: FlagsBody = request.json()?;
        // Read as the envelope reads them, so that what is stored always travels.
        let text = body
            .flags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let flags = if body
            .flags
            .iter()
            .any(|(k, v)| k.contains([',', '=']) || v.contains([',', '=']))
        {
            Err("a flag name or value holds , or =".to_string())
        } else {
            Flags::decode(&text).map_err(|e| e.to_string())
        }
        .map_err(|why| ApiError::unprocessable(Some("flags"), why))?;
        let summary = accounts::set_flags(work, &username, flags, &operator.subject).await?;
        Ok(Response::json(200, summary))
    }
}

/// The default page size of `GET /users`.
const DEFAULT_PAGE: u32 = 50;

/// `GET /users?status=&role=&limit=&cursor=`: users by name, for operators.
pub struct ListUsers;

#[async_trait]
impl Route for ListUsers {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        request.actor_with_role(&[Role::Operator])?;
        let status = match request.query.get("status").map(String::as_str) {
            None => None,
            Some("active") => Some(UserStatus::Active),
            Some("pending") => Some(UserStatus::Pending),
            Some("refused") => Some(UserStatus::Refused),
            Some("disabled") => Some(UserStatus::Disabled),
            Some(_) => {
                return Err(ApiError::bad_request(
                    Some("status"),
                    "status must be active, pending, refused or disabled",
                ));
            }
        };
        let role = match request.query.get("role").map(String::as_str) {
            None => None,
            Some(r @ ("customer" | "merchant" | "operator")) => Some(r.to_string()),
            Some(_) => {
                return Err(ApiError::bad_request(
                    Some("role"),
                    "role must be customer, merchant or operator",
                ));
            }
        };
        let limit = match request.query.get("limit") {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=accounts::MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(Some("limit"), "limit must be a number from 1 to 200")
                })?,
        };
        let cursor = match request.query.get("cursor") {
            None => None,
            // A cursor is a user name: anything else did not come from this listing.
            Some(c) if (1..=64).contains(&c.len()) && c.chars().all(|c| c.is_ascii_graphic()) => {
                Some(c.clone())
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    Some("cursor"),
                    "cursor must be a next_cursor this listing returned",
                ));
            }
        };
        let page = accounts::list_users(work.table()?, &UserFilter { status, role }, cursor, limit)
            .await?;
        Ok(Response::json(200, page))
    }
}
