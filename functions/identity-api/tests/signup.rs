//! Sign-up (`POST /users`) on the sample event of events/, on the simulated clock.

mod common;

use common::{actor_of, body, world};

use bazaar_contracts::Actor;
use bazaar_embedded::testing::event;
use bazaar_platform::LambdaFunction;
use chrono::Duration;
use serde_json::{Value, json};

/// The sample sign-up with `fields` changed, from `source`.
fn sign_up(fields: Value, source: &str) -> Value {
    let mut e = event("identity-api.post-users.json");
    let mut b: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
    for (k, v) in fields.as_object().unwrap() {
        b[k] = v.clone();
    }
    e["body"] = json!(b.to_string());
    e["requestContext"]["http"]["sourceIp"] = json!(source);
    e
}

#[tokio::test]
async fn a_customer_signs_up_and_signs_in_as_a_customer() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();

    let r = function
        .invoke(event("identity-api.post-users.json"))
        .await
        .unwrap();

    assert_eq!(r["statusCode"], 201, "{r}");
    assert_eq!(
        body(&r),
        json!({"username": "ada", "email": "ada@example.com", "roles": ["customer"], "status": "active"})
    );
    let created = world.sent("user");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].message_type, "user.created");
    assert_eq!(
        created[0].data.value(),
        json!({"username": "ada", "role": "customer", "status": "active", "created_at": created[0].data.value()["created_at"]})
    );
    let wire = created[0].to_json();
    assert!(
        !wire.contains("analytical") && !wire.contains("example.com"),
        "neither the password nor the address travels: {wire}"
    );
    assert_eq!(
        actor_of(&world, &function, "ada", "analytical engine notes").await,
        Actor::new("ada", &["customer"])
    );
}

#[tokio::test]
async fn a_merchant_applies_and_signs_in_with_no_role_while_pending() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();

    let r = function
        .invoke(sign_up(
            json!({"username": "potter", "email": "potter@example.com", "role": "merchant"}),
            "203.0.113.7",
        ))
        .await
        .unwrap();

    assert_eq!(r["statusCode"], 201, "{r}");
    assert_eq!(body(&r)["status"], "pending");
    assert_eq!(body(&r)["roles"], json!([]));
    assert_eq!(world.sent("user")[0].data.value()["role"], "merchant");
    assert_eq!(
        actor_of(&world, &function, "potter", "analytical engine notes").await,
        Actor::new("potter", &[]),
        "a pending merchant holds no role"
    );
}

#[tokio::test]
async fn a_taken_name_and_a_taken_address_get_the_same_409() {
    let (world, deps) = world();
    identity_api::ensure_user(
        deps.table().unwrap(),
        "customer-1",
        "bazaar-local",
        &["customer"],
    )
    .await
    .unwrap();
    let function = identity_api::function(deps).unwrap();
    let first = function
        .invoke(sign_up(json!({}), "203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(first["statusCode"], 201);

    let same_name = function
        .invoke(sign_up(
            json!({"email": "other@example.com"}),
            "203.0.113.8",
        ))
        .await
        .unwrap();
    let same_address = function
        .invoke(sign_up(
            json!({"username": "lovelace", "email": "ADA@Example.com"}),
            "203.0.113.9",
        ))
        .await
        .unwrap();
    let demo_user = function
        .invoke(sign_up(
            json!({"username": "customer-1", "email": "c1@example.com"}),
            "203.0.113.10",
        ))
        .await
        .unwrap();

    for r in [&same_name, &same_address, &demo_user] {
        assert_eq!(r["statusCode"], 409, "{r}");
        assert_eq!(body(r)["detail"], body(&same_name)["detail"]);
    }
    assert_eq!(world.sent("user").len(), 1, "only the first made a user");
    // The first user's password still works: nothing was overwritten.
    actor_of(&world, &function, "ada", "analytical engine notes").await;
}

#[tokio::test]
async fn weak_passwords_are_refused_naming_the_field() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    let weak = [
        ("short pass", "at least 12"),
        ("password1234", "too common"),
        ("qwerty123456", "too common"),
        ("Dragon2024!!!", "too common"),
        ("ada123456789", "username"),
    ];
    for (i, (password, why)) in weak.iter().enumerate() {
        let r = function
            .invoke(sign_up(
                json!({"username": if *why == "username" { "ada" } else { "adalovelace" }, "password": password}),
                &format!("198.51.100.{i}"),
            ))
            .await
            .unwrap();
        let b = body(&r);
        assert_eq!(r["statusCode"], 400, "{password}: {r}");
        assert_eq!(b["field"], "password", "{password}");
        assert!(
            b["detail"].as_str().unwrap().contains(why),
            "{password}: {b}"
        );
    }
    assert!(world.sent("user").is_empty());
}

#[tokio::test]
async fn bad_names_addresses_and_roles_are_400_naming_the_field() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    let cases = [
        (json!({"username": "Ada"}), "username"),
        (json!({"username": "ad"}), "username"),
        (json!({"username": "channel:agora"}), "username"),
        (json!({"username": "-ada"}), "username"),
        (json!({"username": "system"}), "username"),
        (json!({"email": "ada"}), "email"),
        (json!({"email": "ada@localhost"}), "email"),
        (json!({"email": "a da@example.com"}), "email"),
        (json!({"role": "operator"}), "role"),
    ];
    for (fields, field) in cases {
        let r = function
            .invoke(sign_up(fields.clone(), "203.0.113.7"))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], 400, "{fields}: {r}");
        assert_eq!(body(&r)["field"], field, "{fields}");
    }
    let unknown = function
        .invoke(sign_up(json!({"roles": ["operator"]}), "203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(unknown["statusCode"], 400, "unknown fields are refused");
    assert!(world.sent("user").is_empty());
}

#[tokio::test]
async fn sign_ups_are_throttled_per_source_and_the_wait_passes() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    let attempt = |n: usize, source: &str| {
        sign_up(
            json!({"username": format!("user{n}"), "email": format!("user{n}@example.com")}),
            source,
        )
    };
    for n in 0..5 {
        let r = function.invoke(attempt(n, "192.0.2.1")).await.unwrap();
        assert_eq!(r["statusCode"], 201, "{n}: {r}");
    }
    // A taken name counts like any other attempt.
    let r = function.invoke(attempt(0, "192.0.2.1")).await.unwrap();
    assert_eq!(r["statusCode"], 429, "{r}");
    assert!(r["headers"]["retry-after"].as_str().is_some(), "{r}");

    let elsewhere = function.invoke(attempt(6, "192.0.2.2")).await.unwrap();
    assert_eq!(
        elsewhere["statusCode"], 201,
        "other sources are not touched"
    );

    world.clock.advance(Duration::seconds(3));
    let r = function.invoke(attempt(7, "192.0.2.1")).await.unwrap();
    assert_eq!(r["statusCode"], 201, "after the wait: {r}");
    let r = function.invoke(attempt(8, "192.0.2.1")).await.unwrap();
    assert_eq!(r["statusCode"], 429, "the next wait is longer: {r}");
    world.clock.advance(Duration::minutes(16));
    let r = function.invoke(attempt(9, "192.0.2.1")).await.unwrap();
    assert_eq!(
        r["statusCode"], 201,
        "forgotten after a quarter of an hour: {r}"
    );
}
