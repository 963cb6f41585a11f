//! What the identity-api tests share: the function's world, the bodies of its answers, and
//! signing in.
#![allow(dead_code)] // each test file uses part of it

use std::sync::Arc;

use bazaar_contracts::Actor;
use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::jwt::{Expect, Jwks, validate};
use bazaar_platform::{Deps, LambdaFunction};
use serde_json::{Value, json};

/// The issuer the function is configured with.
pub const ISSUER: &str = "https://api.bazaar.test";

/// An in-memory world and identity-api's dependencies in it.
pub fn world() -> (Fixture, Arc<Deps>) {
    let world = Fixture::new();
    let deps = world.deps_with_env(
        "identity-api",
        Some("identity"),
        &["user"],
        &[("ISSUER", ISSUER)],
    );
    (world, deps)
}

/// The sample event `sample` (a `POST /users/{username}/<action>`) made into `action` of
/// `username`, by `token` (none: anonymous).
pub fn user_action(sample: &str, action: &str, username: &str, token: Option<String>) -> Value {
    let mut e = event(sample);
    let path = format!("/users/{username}/{action}");
    e["routeKey"] = json!(format!("POST /users/{{username}}/{action}"));
    e["requestContext"]["routeKey"] = e["routeKey"].clone();
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["pathParameters"] = json!({ "username": username });
    authorize(&mut e, token);
    e
}

/// The operator's token.
pub fn operator() -> Option<String> {
    Some(bazaar_embedded::identity::bearer("operator", &["operator"]))
}

/// Sets the sample event's `Authorization` header to `token` (a header value), or removes it
/// (anonymous).
pub fn authorize(e: &mut Value, token: Option<String>) {
    match token {
        Some(header) => e["headers"]["authorization"] = json!(header),
        None => {
            e["headers"]
                .as_object_mut()
                .unwrap()
                .remove("authorization");
        }
    }
}

/// The JSON body of an answer.
pub fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

/// The published key set.
pub async fn jwks(function: &impl LambdaFunction) -> Jwks {
    serde_json::from_value(body(
        &function
            .invoke(event("identity-api.get-jwks.json"))
            .await
            .unwrap(),
    ))
    .unwrap()
}

/// The sample sign-in with these credentials.
pub fn login(username: &str, password: &str) -> Value {
    let mut e = event("identity-api.post-token.json");
    e["body"] = json!(json!({ "username": username, "password": password }).to_string());
    e
}

/// Signs in (which must succeed) and returns the actor the token speaks for.
pub async fn actor_of(
    world: &Fixture,
    function: &impl LambdaFunction,
    username: &str,
    password: &str,
) -> Actor {
    let r = function.invoke(login(username, password)).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    validate(
        body(&r)["access_token"].as_str().unwrap(),
        &jwks(function).await,
        &Expect {
            issuer: ISSUER.into(),
            audience: "bazaar-api".into(),
        },
        bazaar_platform::clock::Clock::now(world.clock.as_ref()),
    )
    .unwrap()
    .actor()
}
