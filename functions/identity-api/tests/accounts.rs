//! Operators disabling, enabling and listing users, users changing their password, and the
//! revoked sessions the functions read: on the sample events of events/.

mod common;

use common::{ISSUER, authorize, body, jwks, login, operator, user_action, world};

use bazaar_embedded::identity::bearer;
use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use bazaar_platform::jwt::{Claims, Expect, validate};
use serde_json::{Value, json};

const PASSWORD: &str = "wheel and kiln 1842";
const NEW_PASSWORD: &str = "copper kettle 2026 harbour";

/// The sample `POST /users/customer-2/disable`, as `change` of `username` by `token`.
fn change(change: &str, username: &str, token: Option<String>) -> Value {
    user_action("identity-api.post-disable.json", change, username, token)
}

/// The sample listing with this query.
fn list(query: &str, token: Option<String>) -> Value {
    let mut e = event("identity-api.get-users.json");
    e["rawQueryString"] = json!(query);
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), json!(v))
        })
        .collect();
    e["queryStringParameters"] = Value::Object(params);
    authorize(&mut e, token);
    e
}

/// The sample password change with this body, by `token`.
fn change_password(old: &str, new: &str, token: Option<String>) -> Value {
    let mut e = event("identity-api.put-password.json");
    e["body"] = json!(json!({ "old_password": old, "new_password": new }).to_string());
    authorize(&mut e, token);
    e
}

async fn sign_up(function: &impl LambdaFunction, username: &str, role: &str) {
    let mut e = event("identity-api.post-users.json");
    e["body"] = json!(
        json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD, "role": role})
            .to_string()
    );
    let r = function.invoke(e).await.unwrap();
    assert_eq!(r["statusCode"], 201, "{r}");
}

/// Signs in (which must succeed): the token's header value and its claims.
async fn sign_in(
    world: &Fixture,
    function: &impl LambdaFunction,
    username: &str,
    password: &str,
) -> (String, Claims) {
    let r = function.invoke(login(username, password)).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    let token = body(&r)["access_token"].as_str().unwrap().to_string();
    let claims = claims_of(world, function, &token).await;
    (format!("Bearer {token}"), claims)
}

async fn claims_of(world: &Fixture, function: &impl LambdaFunction, token: &str) -> Claims {
    validate(
        token,
        &jwks(function).await,
        &Expect {
            issuer: ISSUER.into(),
            audience: "bazaar-api".into(),
        },
        bazaar_platform::clock::Clock::now(world.clock.as_ref()),
    )
    .unwrap()
}

async fn revoked(function: &impl LambdaFunction) -> Vec<String> {
    let r = function
        .invoke(event("identity-api.get-revoked-sessions.json"))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    serde_json::from_value(body(&r)["sessions"].clone()).unwrap()
}

fn events_of(world: &Fixture, message_type: &str) -> Vec<Value> {
    world
        .sent("user")
        .iter()
        .filter(|e| e.message_type == message_type)
        .map(|e| e.data.value())
        .collect()
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_and_its_session_is_revoked_until_its_tokens_expire() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    sign_up(&function, "ada", "customer").await;
    let (_, before) = sign_in(&world, &function, "ada", PASSWORD).await;
    assert!(!before.sid.is_empty(), "tokens carry a session");
    assert!(revoked(&function).await.is_empty());

    let r = function
        .invoke(change("disable", "ada", operator()))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body(&r)["status"], "disabled");
    assert_eq!(revoked(&function).await, vec![before.sid.clone()]);
    let disabled = events_of(&world, "user.disabled");
    assert_eq!(disabled.len(), 1);
    assert_eq!(
        (&disabled[0]["username"], &disabled[0]["disabled_by"]),
        (&json!("ada"), &json!("operator"))
    );
    let r = function.invoke(login("ada", PASSWORD)).await.unwrap();
    assert_eq!(r["statusCode"], 403, "a disabled user cannot sign in: {r}");

    // Again: nothing more happens.
    let r = function
        .invoke(change("disable", "ada", operator()))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(events_of(&world, "user.disabled").len(), 1);

    let r = function
        .invoke(change("enable", "ada", operator()))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body(&r)["status"], "active");
    assert_eq!(events_of(&world, "user.enabled").len(), 1);
    let (_, after) = sign_in(&world, &function, "ada", PASSWORD).await;
    assert_ne!(after.sid, before.sid, "a new session");
    assert_eq!(
        revoked(&function).await,
        vec![before.sid.clone()],
        "the old tokens stay refused after enabling"
    );

    // Once no token of the old session can be valid, the list forgets it.
    world.clock.advance(chrono::Duration::minutes(15));
    assert_eq!(revoked(&function).await, vec![before.sid.clone()]);
    world.clock.advance(chrono::Duration::seconds(1));
    assert!(revoked(&function).await.is_empty());
}

#[tokio::test]
async fn who_may_change_whom() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    sign_up(&function, "ada", "customer").await;
    sign_up(&function, "potter", "merchant").await;
    let r = function
        .invoke(change("refuse", "potter", operator()))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");

    let cases = [
        (change("disable", "ada", None), 401),
        (
            change("disable", "ada", Some(bearer("merchant-1", &["merchant"]))),
            403,
        ),
        (
            change("disable", "ada", Some(bearer("ada", &["customer"]))),
            403,
        ),
        (
            change("enable", "ada", Some(bearer("ada", &["customer"]))),
            403,
        ),
        (change("disable", "nobody", operator()), 404),
        (change("disable", "operator", operator()), 409),
        (change("disable", "potter", operator()), 409),
        (change("enable", "potter", operator()), 409),
    ];
    for (request, status) in cases {
        let r = function.invoke(request.clone()).await.unwrap();
        assert_eq!(
            r["statusCode"], status,
            "{} by {:?}: {r}",
            request["rawPath"], request["headers"]["authorization"]
        );
    }
    assert!(events_of(&world, "user.disabled").is_empty());
}

#[tokio::test]
async fn a_pending_merchant_disabled_and_enabled_is_pending_again() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    sign_up(&function, "potter", "merchant").await;
    for (what, status) in [("disable", "disabled"), ("enable", "pending")] {
        let r = function
            .invoke(change(what, "potter", operator()))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], 200, "{r}");
        assert_eq!(body(&r)["status"], status);
    }
    let r = function
        .invoke(change("approve", "potter", operator()))
        .await
        .unwrap();
    assert_eq!(body(&r)["roles"], json!(["merchant"]), "{r}");
    let (_, claims) = sign_in(&world, &function, "potter", PASSWORD).await;
    assert_eq!(claims.roles, vec!["merchant".to_string()]);
}

#[tokio::test]
async fn operators_list_users_by_name_in_pages_and_by_status_or_role() {
    let (_world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    for (name, role) in [
        ("dora", "customer"),
        ("bea", "merchant"),
        ("ada", "customer"),
        ("cyd", "merchant"),
        ("eve", "customer"),
    ] {
        sign_up(&function, name, role).await;
    }
    let r = function
        .invoke(change("approve", "cyd", operator()))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200);

    let names = |r: &Value| -> Vec<String> {
        body(r)["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    // Every user, two at a time, by name.
    let mut all = Vec::new();
    let mut query = "limit=2".to_string();
    for _ in 0..5 {
        let r = function.invoke(list(&query, operator())).await.unwrap();
        assert_eq!(r["statusCode"], 200, "{r}");
        all.extend(names(&r));
        match body(&r)["next_cursor"].as_str() {
            Some(c) => query = format!("limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all, ["ada", "bea", "cyd", "dora", "eve"]);

    let r = function
        .invoke(list("status=pending", operator()))
        .await
        .unwrap();
    assert_eq!(names(&r), ["bea"]);
    let r = function
        .invoke(list("role=merchant", operator()))
        .await
        .unwrap();
    assert_eq!(names(&r), ["bea", "cyd"], "applicants and merchants");
    let r = function
        .invoke(list("status=active&role=customer", operator()))
        .await
        .unwrap();
    assert_eq!(names(&r), ["ada", "dora", "eve"]);
    let first = &body(&r)["users"][0];
    assert_eq!(first["email"], "ada@example.com");
    assert!(first.get("password_hash").is_none(), "{first}");

    for (query, token, status) in [
        ("", None, 401),
        ("", Some(bearer("ada", &["customer"])), 403),
        ("", Some(bearer("bea", &["merchant"])), 403),
        ("status=sleeping", operator(), 400),
        ("role=system", operator(), 400),
        ("limit=0", operator(), 400),
        ("limit=201", operator(), 400),
        ("limit=x", operator(), 400),
    ] {
        let r = function.invoke(list(query, token.clone())).await.unwrap();
        assert_eq!(r["statusCode"], status, "{query} by {token:?}: {r}");
    }
}

#[tokio::test]
async fn a_password_change_needs_the_old_password_and_revokes_older_tokens() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    sign_up(&function, "ada", "customer").await;
    let (_, before) = sign_in(&world, &function, "ada", PASSWORD).await;
    // The function checks tokens with the local stack's key (the world's key source).
    let token = bearer("ada", &["customer"]);

    for (old, new, status) in [
        ("not the password", NEW_PASSWORD, 403),
        (PASSWORD, "short", 400),
        (PASSWORD, "password1234", 400),
        (PASSWORD, PASSWORD, 400),
        ("", NEW_PASSWORD, 400),
    ] {
        let r = function
            .invoke(change_password(old, new, Some(token.clone())))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], status, "{old} -> {new}: {r}");
    }
    let r = function
        .invoke(change_password(PASSWORD, NEW_PASSWORD, None))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 401, "{r}");
    assert!(revoked(&function).await.is_empty(), "nothing changed yet");

    let r = function
        .invoke(change_password(PASSWORD, NEW_PASSWORD, Some(token.clone())))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    let fresh = claims_of(
        &world,
        &function,
        body(&r)["access_token"].as_str().unwrap(),
    )
    .await;
    assert_ne!(
        fresh.sid, before.sid,
        "the answer's token is of the new session"
    );
    assert_eq!(revoked(&function).await, vec![before.sid.clone()]);
    assert_eq!(events_of(&world, "user.password_changed").len(), 1);
    let r = function.invoke(login("ada", PASSWORD)).await.unwrap();
    assert_eq!(r["statusCode"], 401, "the old password is gone: {r}");
    sign_in(&world, &function, "ada", NEW_PASSWORD).await;
}

#[tokio::test]
async fn guessing_the_old_password_with_a_stolen_token_is_throttled() {
    let (_world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    sign_up(&function, "ada", "customer").await;
    let stolen = Some(bearer("ada", &["customer"]));
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = function
            .invoke(change_password(
                &format!("guess number {i}"),
                NEW_PASSWORD,
                stolen.clone(),
            ))
            .await
            .unwrap();
        statuses.push(r["statusCode"].as_u64().unwrap());
    }
    assert_eq!(statuses[..5], [403; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn the_sample_password_change_of_a_demo_user_revokes_the_local_tokens() {
    let (world, deps) = world();
    let table = deps.table.clone().unwrap();
    identity_api::ensure_user(table.as_ref(), "customer-1", "bazaar-local", &["customer"])
        .await
        .unwrap();
    let function = identity_api::function(deps).unwrap();

    let r = function
        .invoke(event("identity-api.put-password.json"))
        .await
        .unwrap();

    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(
        revoked(&function).await,
        vec![bazaar_embedded::identity::local_session("customer-1")],
        "the tokens of events/ and tests are of the demo user's session"
    );
    // They stay refused as long as they could be valid (the local key signs them until 2100).
    world.clock.advance(chrono::Duration::days(365));
    assert_eq!(revoked(&function).await.len(), 1);
}

#[tokio::test]
async fn users_kept_from_before_sessions_get_one_and_a_listing_line() {
    let (world, deps) = world();
    let table = deps.table.clone().unwrap();
    // Records as an older identity service wrote them: no version, session nor listing line.
    let hash = {
        // Any Argon2id hash of PASSWORD: make one through a user made now, then copy it.
        identity_api::ensure_user(table.as_ref(), "template", PASSWORD, &["customer"])
            .await
            .unwrap();
        let item = table
            .get(&bazaar_platform::item::Key::new("USER#template", "PROFILE"))
            .await
            .unwrap()
            .unwrap();
        item["password_hash"].as_str().unwrap().to_string()
    };
    for (name, email) in [("customer-1", None), ("ada", Some("ada@example.com"))] {
        let mut old = json!({
            "username": name, "password_hash": hash, "roles": ["customer"], "status": "active",
        });
        if let Some(e) = email {
            old["email"] = json!(e);
        }
        table
            .put(
                bazaar_platform::item::item(
                    &bazaar_platform::item::Key::new(format!("USER#{name}"), "PROFILE"),
                    old,
                ),
                None,
            )
            .await
            .unwrap();
    }
    // The local stack seeds its demo users again: theirs get the local session.
    identity_api::ensure_user(table.as_ref(), "customer-1", "ignored", &["customer"])
        .await
        .unwrap();
    let function = identity_api::function(deps).unwrap();
    let (_, claims) = sign_in(&world, &function, "customer-1", PASSWORD).await;
    assert_eq!(
        claims.sid,
        bazaar_embedded::identity::local_session("customer-1")
    );
    // A user who signed up before gets a session at its next sign-in.
    let (_, claims) = sign_in(&world, &function, "ada", PASSWORD).await;
    assert!(!claims.sid.is_empty());
    let (_, again) = sign_in(&world, &function, "ada", PASSWORD).await;
    assert_eq!(again.sid, claims.sid, "and keeps it");
    let r = function.invoke(list("", operator())).await.unwrap();
    let names: Vec<String> = body(&r)["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["ada", "customer-1", "template"]);
}
