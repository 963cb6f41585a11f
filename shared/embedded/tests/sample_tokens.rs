//! The tokens in `events/` are the local stack's own ([`identity::token`]): signed with its
//! key and carrying the demo user's session, so that they verify on the local stack and stop
//! working there when that user is disabled or changes its password. Run with
//! `BAZAAR_WRITE_EVENTS=1` to rewrite them after the claims change.

use bazaar_embedded::identity;
use bazaar_platform::jwt::{Expect, validate};
use serde_json::Value;

#[test]
fn the_sample_events_carry_the_local_stacks_current_tokens() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let rewrite = std::env::var_os("BAZAAR_WRITE_EVENTS").is_some();
    let mut seen = 0;
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        let Some(header) = event["headers"]["authorization"].as_str() else {
            continue;
        };
        seen += 1;
        let token = header.strip_prefix("Bearer ").expect("a bearer token");
        let claims = validate(
            token,
            &identity::local_jwks(),
            &Expect {
                issuer: identity::LOCAL_ISSUER.into(),
                audience: identity::LOCAL_AUDIENCE.into(),
            },
            chrono::Utc::now(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let roles: Vec<&str> = claims.roles.iter().map(String::as_str).collect();
        let current = identity::token(&claims.sub, &roles);
        if current != token {
            if rewrite {
                std::fs::write(&path, text.replace(token, &current)).unwrap();
            }
            stale.push(path.display().to_string());
        }
    }
    assert!(
        seen >= 8,
        "the HTTP sample events carry tokens ({seen} found)"
    );
    assert!(
        rewrite || stale.is_empty(),
        "tokens not minted by identity::token (rewrite with BAZAAR_WRITE_EVENTS=1): {stale:?}"
    );
}
