//! identity-api on the sample events of events/.

mod common;

use common::{ISSUER, body, jwks, login, world};

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use bazaar_platform::jwt::{Expect, Jwks, validate};
use chrono::Duration;
use serde_json::{Value, json};

#[tokio::test]
async fn a_user_gets_a_token_that_the_published_keys_verify() {
    let (world, deps) = world();
    identity_api::ensure_user(
        deps.table().unwrap(),
        "customer-1",
        "bazaar-local",
        &["customer"],
    )
    .await
    .unwrap();
    let function = identity_api::function(deps).expect("valid settings");

    let response = function
        .invoke(event("identity-api.post-token.json"))
        .await
        .unwrap();

    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["headers"]["cache-control"], "no-store");
    let token = body(&response);
    assert_eq!(
        (token["token_type"].as_str(), token["expires_in"].as_i64()),
        (Some("Bearer"), Some(900))
    );
    let claims = validate(
        token["access_token"].as_str().unwrap(),
        &jwks(&function).await,
        &Expect {
            issuer: ISSUER.into(),
            audience: "bazaar-api".into(),
        },
        bazaar_platform::clock::Clock::now(world.clock.as_ref()),
    )
    .unwrap();
    assert_eq!(
        claims.actor(),
        bazaar_contracts::Actor::new("customer-1", &["customer"])
    );
    let authed = world.sent("user");
    assert_eq!(authed.len(), 1);
    assert_eq!(
        (
            authed[0].message_type.as_str(),
            authed[0].data.value()["subject"].as_str()
        ),
        ("user.authed", Some("customer-1"))
    );
    assert!(
        !authed[0].to_json().contains("bazaar-local"),
        "no secret travels"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let (world, deps) = world();
    identity_api::ensure_user(
        deps.table().unwrap(),
        "customer-1",
        "bazaar-local",
        &["customer"],
    )
    .await
    .unwrap();
    let function = identity_api::function(deps).expect("valid settings");

    let wrong = function.invoke(login("customer-1", "guess")).await.unwrap();
    let unknown = function.invoke(login("nobody", "guess")).await.unwrap();

    assert_eq!(wrong["statusCode"], 401);
    assert_eq!(unknown["statusCode"], 401);
    assert_eq!(body(&wrong)["detail"], body(&unknown)["detail"]);
    assert!(world.sent("user").is_empty());
}

#[tokio::test]
async fn malformed_credentials_are_400_naming_the_field() {
    let (_world, deps) = world();
    let function = identity_api::function(deps).expect("valid settings");
    let mut e = event("identity-api.post-token.json");
    e["body"] = json!(json!({ "username": "customer-1" }).to_string());
    let r = function.invoke(e).await.unwrap();
    assert_eq!(
        (r["statusCode"].as_i64(), body(&r)["field"].as_str()),
        (Some(400), Some("password"))
    );
}

#[tokio::test]
async fn keys_rotate_and_the_old_key_stays_published_until_its_tokens_expire() {
    let (world, deps) = world();
    identity_api::ensure_user(
        deps.table().unwrap(),
        "customer-1",
        "bazaar-local",
        &["customer"],
    )
    .await
    .unwrap();
    let function = identity_api::function(deps).expect("valid settings");
    let kid_of = |r: &Value| {
        use base64::Engine;
        let header = body(r)["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_string();
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let first = kid_of(
        &function
            .invoke(login("customer-1", "bazaar-local"))
            .await
            .unwrap(),
    );
    world
        .clock
        .advance(identity_api::KEY_LIFETIME + Duration::seconds(1));
    let second = kid_of(
        &function
            .invoke(login("customer-1", "bazaar-local"))
            .await
            .unwrap(),
    );

    assert_ne!(
        first, second,
        "a new key signs after the old one's lifetime"
    );
    let kids = |j: Jwks| j.keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    let published = kids(jwks(&function).await);
    assert!(
        published.contains(&first) && published.contains(&second),
        "both published while old tokens live: {published:?}"
    );
    world.clock.advance(identity_api::DEFAULT_TOKEN_TTL);
    assert_eq!(
        kids(jwks(&function).await),
        [second],
        "the old key goes once its last token expired"
    );
}

#[tokio::test]
async fn discovery_names_the_issuer_and_its_keys() {
    let (_world, deps) = world();
    let function = identity_api::function(deps).expect("valid settings");
    let mut e = event("identity-api.get-jwks.json");
    e["rawPath"] = json!("/.well-known/openid-configuration");
    let config = body(&function.invoke(e).await.unwrap());
    assert_eq!(config["issuer"], ISSUER);
    assert_eq!(
        config["jwks_uri"],
        format!("{ISSUER}/.well-known/jwks.json")
    );
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
}

#[tokio::test]
async fn a_key_record_without_its_public_half_is_still_published() {
    // Key records written before the public half was stored beside the private key.
    let (world, deps) = world();
    let table = deps.table().unwrap();
    let key = bazaar_platform::jwt::SigningKey::generate("k-old").unwrap();
    identity_api::install_key(table, &key, 0, 4_000_000_000)
        .await
        .unwrap();
    let at = bazaar_platform::item::Key::new("KEY", "k-old");
    let mut item = table.get(&at).await.unwrap().expect("the key record");
    assert!(
        item.remove("public").is_some(),
        "new records keep the public half: {item:?}"
    );
    table.put(item, None).await.unwrap();

    let published = identity_api::published_keys(
        table,
        bazaar_platform::clock::Clock::now(world.clock.as_ref()),
        Duration::minutes(15),
    )
    .await
    .unwrap();

    assert_eq!(published.keys, vec![key.jwk()]);
}

#[test]
fn a_bad_setting_stops_init_naming_the_variable_and_what_it_expects() {
    let world = Fixture::new();
    let start = |env: &[(&str, &str)]| {
        identity_api::function(world.deps_with_env(
            "identity-api",
            Some("identity"),
            &["user"],
            env,
        ))
        .err()
        .map(|e| e.to_string())
    };
    assert_eq!(
        start(&[]).as_deref(),
        Some(
            "ISSUER is not set; expected the issuer's base URL (https://...), where the JWKS is served"
        )
    );
    assert_eq!(
        start(&[("ISSUER", "api.bazaar.test")]).as_deref(),
        Some(
            "ISSUER is \"api.bazaar.test\"; expected the issuer's base URL (https://...), where the JWKS is served"
        )
    );
    assert_eq!(
        start(&[("ISSUER", ISSUER), ("TOKEN_TTL_SECONDS", "15m")]).as_deref(),
        Some("TOKEN_TTL_SECONDS is \"15m\"; expected a whole number of seconds from 60 to 86400")
    );
    assert_eq!(
        start(&[("ISSUER", ISSUER), ("TOKEN_TTL_SECONDS", "0")]).as_deref(),
        Some("TOKEN_TTL_SECONDS is \"0\"; expected a whole number of seconds from 60 to 86400")
    );
    assert_eq!(
        start(&[("ISSUER", ISSUER), ("TOKEN_TTL_SECONDS", "600")]),
        None
    );
}
