//! `bazaar users` on the local stack and on an AWS API (moto, started by `scripts/test`): the
//! toolbelt makes the first operator, who then signs in and works through the API; it
//! approves an application, disables a user (whose token is then refused within a minute)
//! and lists users.

mod common;
use std::sync::Arc;

use bazaar_aws::testing;
use bazaar_contracts::identity::{SignUpRole, UserStatus};
use bazaar_localstack::Stack;
use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use bazaar_toolbelt::aws::AwsBackend;
use bazaar_toolbelt::{LocalBackend, Target, users};
use chrono::Duration;
use identity_api::accounts::{Change, UserFilter};
use serde_json::json;

const PASSWORD: &str = "wheel and kiln 1842";

async fn sign_in(stack: &Stack, username: &str, password: &str) -> HttpResponse {
    stack
        .http(HttpRequest::json(
            "POST",
            "/auth/token",
            &json!({ "username": username, "password": password }),
        ))
        .await
}

async fn token(stack: &Stack, username: &str) -> String {
    let r = sign_in(stack, username, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    format!("Bearer {}", r.json()["access_token"].as_str().unwrap())
}

/// What the toolbelt does to users, the same on any backend.
async fn operators_manage_users(stack: &Stack, target: &Target) {
    // A fresh stage has no operator: the toolbelt makes the first.
    let made = users::create(
        target,
        "ops-ada",
        "Ada@Example.com",
        PASSWORD,
        SignUpRole::Operator,
    )
    .await
    .unwrap();
    assert_eq!(
        (made.status, made.roles.clone(), made.email.as_deref()),
        (
            UserStatus::Active,
            vec!["operator".to_string()],
            Some("ada@example.com")
        )
    );
    let again = users::create(
        target,
        "ops-ada2",
        "ada@example.com",
        PASSWORD,
        SignUpRole::Operator,
    )
    .await
    .unwrap_err();
    assert!(
        format!("{again:#}").contains("already registered"),
        "{again:#}"
    );
    let weak = users::create(
        target,
        "ops-bob",
        "bob@example.com",
        "password1",
        SignUpRole::Operator,
    )
    .await
    .unwrap_err();
    assert!(format!("{weak:#}").contains("password"), "{weak:#}");

    // The operator signs in and works through the API.
    let operator = token(stack, "ops-ada").await;
    let listed = stack
        .http(HttpRequest::get("/users").header("authorization", &operator))
        .await;
    assert_eq!(
        listed.status,
        200,
        "{}",
        String::from_utf8_lossy(&listed.body)
    );
    assert_eq!(listed.json()["users"][0]["username"], "ops-ada");

    // A merchant applies; the toolbelt sees the application and approves it.
    let applied = stack
        .http(HttpRequest::json(
            "POST",
            "/users",
            &json!({"username": "potter", "email": "potter@example.com", "password": PASSWORD, "role": "merchant"}),
        ))
        .await;
    assert_eq!(
        applied.status,
        201,
        "{}",
        String::from_utf8_lossy(&applied.body)
    );
    let pending = users::list(
        target,
        &UserFilter {
            status: Some(UserStatus::Pending),
            role: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["potter"]
    );
    let approved = users::change(target, "potter", Change::Approve)
        .await
        .unwrap();
    assert_eq!(approved.roles, vec!["merchant".to_string()]);
    let potter = token(stack, "potter").await;
    let stocked = stack
        .http(
            HttpRequest::json("PUT", "/inventory/WHEEL-01", &json!({"available": 2}))
                .header("authorization", &potter),
        )
        .await;
    assert_eq!(stocked.status, 200, "the approved merchant works as one");

    // Disabled from the toolbelt: the token is refused within a minute; enabled again, a new
    // sign-in works.
    let disabled = users::change(target, "potter", Change::Disable)
        .await
        .unwrap();
    assert_eq!(disabled.status, UserStatus::Disabled);
    assert_eq!(sign_in(stack, "potter", PASSWORD).await.status, 403);
    stack.run_for(Duration::seconds(60)).await;
    let refused = stack
        .http(
            HttpRequest::json("PUT", "/inventory/WHEEL-01", &json!({"available": 3}))
                .header("authorization", &potter),
        )
        .await;
    assert_eq!(
        refused.status,
        401,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let err = users::change(target, "nobody", Change::Disable)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("no user"), "{err:#}");
    users::change(target, "potter", Change::Enable)
        .await
        .unwrap();
    token(stack, "potter").await;

    let all = users::list(target, &UserFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
        ["ops-ada", "potter"]
    );
    let merchants = users::list(
        target,
        &UserFilter {
            status: None,
            role: Some("merchant".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(merchants.len(), 1);
    let table = users::render(&all);
    assert!(
        table.contains("ops-ada") && table.contains("2 user(s)"),
        "{table}"
    );
}

#[tokio::test]
async fn operators_manage_users_on_the_local_stack() {
    let stack = Stack::build(common::model(None), common::options()).unwrap();
    let backend = Arc::new(LocalBackend::new(stack.engine().clone(), "test"));
    let target = Target::new(common::model(None), backend);
    operators_manage_users(&stack, &target).await;
}

#[tokio::test]
async fn operators_manage_users_on_aws_apis() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let stage = testing::unique("usr");
    let model = common::model(Some(stage));
    let stack = Stack::build_on_aws(model.clone(), common::options(), config.clone(), true)
        .await
        .unwrap();
    let target = Target::new(model, Arc::new(AwsBackend::new(&config)));
    operators_manage_users(&stack, &target).await;
}
