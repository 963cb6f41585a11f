//! Sign-up: `POST /users` makes a customer at once, or a merchant's application (a pending
//! user with no role until an operator approves it).
//!
//! - User names: 3 to 64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or
//!   a digit. Lower case only, so that `Alice` and `alice` cannot be two people.
//! - E-mail addresses: one per user (a claim record beside the user, written in the same
//!   transaction), compared in lower case.
//! - Passwords ([`check_password`]): at least 12 characters; not the user name; not one of
//!   the 10,000 most common passwords shipped with the service, nor one of them followed by
//!   digits or symbols. Stored as Argon2id, as every password is.
//! - A name or an address already registered gets the same 409, whichever it is, and sign-ups
//!   are throttled per source address like sign-ins ([`crate::throttle::admit_signup`]): a
//!   sign-up can only tell whether an account exists as slowly as a sign-in can.

use std::collections::HashSet;
use std::sync::OnceLock;

use async_trait::async_trait;
use bazaar_contracts::identity::{SignUpRole, UserCreated, UserStatus};
use bazaar_platform::Work;
use bazaar_platform::http::{ApiError, Request, Response, Route};
use bazaar_platform::item::{Condition, Key, record};
use serde::Deserialize;
use serde_json::json;

use crate::{UserRecord, hash_password, throttle, user_key};

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most bytes a password may have (Argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The common passwords, one per line, lower case (see the file's header).
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Why a password is refused, said to the person choosing it.
pub fn check_password(username: &str, password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("password must be at least 12 characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err("password must be at most 1024 bytes");
    }
    let lower = password.to_lowercase();
    // What is left once trailing digits and symbols are taken off: `dragon2024!!` is `dragon`.
    let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
    if lower == username.to_lowercase() || stem == username.to_lowercase() {
        return Err("password must not be the username");
    }
    let common = common_passwords();
    if common.contains(lower.as_str()) || (stem.chars().count() >= 3 && common.contains(stem)) {
        return Err("password is too common: it is one of the most used passwords");
    }
    Ok(())
}

/// Why a user name is refused.
pub fn check_username(username: &str) -> Result<(), &'static str> {
    let ok_len = (3..=64).contains(&username.len());
    let mut chars = username.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !(ok_len && first_ok && rest_ok) {
        return Err(
            "username must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or a digit",
        );
    }
    if RESERVED_USERNAMES.contains(&username) {
        return Err("username is reserved");
    }
    Ok(())
}

/// Subjects the platform itself speaks as (scheduled work and the tools act as `system`) or
/// that read as staff in logs and traces: nobody signs up as one of them.
const RESERVED_USERNAMES: &[&str] = &["system", "operator", "admin", "root", "bazaar"];

/// The address in the form it is compared in (lower case), or why it is refused. A light
/// check: one `@`, a local part, a domain with a dot, no spaces or control characters; whether
/// the address receives mail is for a confirmation message to tell.
pub fn normalise_email(email: &str) -> Result<String, &'static str> {
    const WHY: &str = "email must be an address like name@example.com (at most 254 characters)";
    if email.len() > 254 || !email.chars().all(|c| c.is_ascii_graphic()) {
        return Err(WHY);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(WHY);
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !domain.contains("..");
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(WHY);
    }
    Ok(email.to_ascii_lowercase())
}

fn email_key(email: &str) -> Key {
    Key::new(format!("EMAIL#{email}"), "CLAIM")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUpRequest {
    username: String,
    email: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /users`.
pub struct SignUp;

#[async_trait]
impl Route for SignUp {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let body: SignUpRequest = request.json()?;
        check_username(&body.username)
            .map_err(|why| ApiError::bad_request(Some("username"), why))?;
        let email = normalise_email(&body.email)
            .map_err(|why| ApiError::bad_request(Some("email"), why))?;
        let role = match body.role.as_deref() {
            None | Some("customer") => SignUpRole::Customer,
            Some("merchant") => SignUpRole::Merchant,
            Some(_) => {
                return Err(ApiError::bad_request(
                    Some("role"),
                    "role must be customer or merchant (operators are made by operators)",
                ));
            }
        };
        check_password(&body.username, &body.password)
            .map_err(|why| ApiError::bad_request(Some("password"), why))?;

        // Counted before anything is looked up, so that probing for taken names costs as
        // much as creating accounts.
        let source = if request.source_ip.is_empty() {
            "unknown"
        } else {
            request.source_ip.as_str()
        };
        throttle::admit_signup(work.table()?, source, work.now())
            .await
            .map_err(|r| throttle::refusal(r, "sign-ups from this address"))?;

        let user = register(
            work,
            Registration {
                username: body.username,
                email,
                password: body.password,
                role,
                created_by: None,
            },
        )
        .await?;
        Ok(Response::json(
            201,
            json!({
                "username": user.username,
                "email": user.email,
                "roles": user.roles,
                "status": user.status,
            }),
        ))
    }
}

/// A user to make, checked already (name, address, password).
pub(crate) struct Registration {
    pub username: String,
    /// Normalised ([`normalise_email`]).
    pub email: String,
    pub password: String,
    pub role: SignUpRole,
    /// The operator making it, when it is not signing up itself: then it starts active
    /// whatever its role.
    pub created_by: Option<String>,
}

/// Makes a user: 409 when its name or address is taken (the same answer for both), else the
/// record, its listing line and its address's claim in one transaction (two people taking
/// the same name or address at once: one wins, the other's commit fails), and `user.created`.
pub(crate) async fn register(
    work: &mut Work<'_>,
    new: Registration,
) -> Result<crate::accounts::UserSummary, ApiError> {
    let table = work.table()?;
    let taken = table.get(&user_key(&new.username)).await?.is_some()
        || table.get(&email_key(&new.email)).await?.is_some();
    if taken {
        return Err(ApiError::conflict(
            "this username or email is already registered",
        ));
    }
    let password = new.password;
    let password_hash = crate::off_the_workers(move || hash_password(&password)).await??;
    let now = work.now();
    let (roles, status, applied_for) = match (new.role, new.created_by.is_some()) {
        (SignUpRole::Merchant, false) => (Vec::new(), UserStatus::Pending, Some("merchant")),
        (role, _) => (vec![role.as_str().to_string()], UserStatus::Active, None),
    };
    let mut user = UserRecord {
        username: new.username.clone(),
        password_hash,
        roles,
        email: Some(new.email.clone()),
        status,
        applied_for: applied_for.map(String::from),
        created_at: Some(now),
        version: 0,
        session: work.new_id(),
        session_until: None,
        flags: Default::default(),
    };
    crate::accounts::save(work, &mut user, None);
    work.put(
        record(&email_key(&new.email), &json!({ "username": new.username })),
        Some(Condition::NotExists),
    );
    work.send(&UserCreated {
        username: new.username,
        role: new.role,
        status,
        created_at: now,
        created_by: new.created_by,
    })?;
    Ok(crate::accounts::UserSummary::from(&user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_at_the_ends_of_their_range() {
        assert!(check_username(&"a".repeat(64)).is_ok());
        assert!(check_username(&"a".repeat(65)).is_err());
        assert!(check_username("abc").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username("1st.user_x-y").is_ok());
        assert!(check_username("ünïcode").is_err());
        assert_eq!(check_username("system"), Err("username is reserved"));
        assert!(check_username("systems").is_ok());
    }

    #[test]
    fn addresses_are_compared_in_lower_case_and_bounded() {
        assert_eq!(
            normalise_email("Ada@Example.COM"),
            Ok("ada@example.com".to_string())
        );
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(185));
        assert_eq!(long.len(), 254);
        assert!(normalise_email(&long).is_ok());
        assert!(normalise_email(&format!("a{long}")).is_err());
        for bad in [
            "a@b@c.com",
            "@example.com",
            "ada@.com",
            "ada@example.",
            "ada@ex..com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        // Twelve characters, 24 bytes.
        assert!(check_password("ada", "ééééééééééé1").is_ok());
        assert!(check_password("ada", "éééééééééé1").is_err());
        assert!(check_password("ada", &"x".repeat(1025)).is_err());
    }

    #[test]
    fn the_shipped_list_is_read_whole() {
        assert_eq!(common_passwords().len(), 10_000);
        assert!(common_passwords().contains("123456"));
    }
}
