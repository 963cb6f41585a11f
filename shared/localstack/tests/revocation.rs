//! A disabled user's tokens, and tokens older than a password change, are refused on every
//! route behind the authorizer within a minute (on the simulated clock): the functions read
//! the issuer's revoked sessions, at most 30 seconds old.

mod common;

use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use chrono::Duration;
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

/// A request for every route behind the JWT authorizer, with a plausible body, so that the
/// answer before revocation is the route's own (never 401).
fn every_protected_route(s: &TestStack) -> Vec<HttpRequest> {
    let routes = s.stack.routes().to_vec();
    let protected: Vec<_> = routes.iter().filter(|r| r.authorizer.is_some()).collect();
    assert!(
        protected.len() >= 15,
        "{} protected routes",
        protected.len()
    );
    protected
        .into_iter()
        .enumerate()
        .map(|(i, route)| {
            let path = route
                .path
                .split('/')
                .map(|part| match part {
                    "{sku}" => "MUG-01".to_string(),
                    "{channel}" => "agora".to_string(),
                    "{username}" => "customer-2".to_string(),
                    p if p.starts_with('{') => "0b7e6a4c-2f1d-4c3e-9a53-6d2b1f0e8c71".to_string(),
                    p => p.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/");
            match route.method.as_str() {
                "GET" | "DELETE" => HttpRequest {
                    method: route.method.clone(),
                    ..HttpRequest::get(&path)
                },
                method => HttpRequest::json(method, &path, &json!({}))
                    .header("idempotency-key", &format!("revocation-test-{i}")),
            }
        })
        .collect()
}

async fn answers(
    s: &TestStack,
    requests: &[HttpRequest],
    token: &str,
) -> Vec<(String, HttpResponse)> {
    let mut out = Vec::new();
    for request in requests {
        let name = format!("{} {}", request.method, request.path);
        out.push((
            name,
            s.stack
                .http(request.clone().header("authorization", token))
                .await,
        ));
    }
    out
}

async fn operator_does(s: &TestStack, what: &str, username: &str) {
    let r = s
        .stack
        .http(
            HttpRequest::json("POST", &format!("/users/{username}/{what}"), &json!({}))
                .header("authorization", &bearer("operator", "operator")),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "{what} {username}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

async fn demo_users(s: &TestStack) {
    let identity = s.stack.table_of("IdentityApiFunction").unwrap();
    for (user, role) in [
        ("customer-1", "customer"),
        ("merchant-2", "merchant"),
        ("operator", "operator"),
    ] {
        identity_api::ensure_user(identity.as_ref(), user, "bazaar-local", &[role])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_disabled_users_tokens_are_refused_on_every_route_within_a_minute() {
    let s = stack();
    demo_users(&s).await;
    s.set_stock("MUG-01", 10).await;
    let requests = every_protected_route(&s);
    let customer = bearer("customer-1", "customer");
    let merchant = bearer("merchant-2", "merchant");
    for token in [&customer, &merchant] {
        for (route, r) in answers(&s, &requests, token).await {
            assert_ne!(
                r.status,
                401,
                "before: {route}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    operator_does(&s, "disable", "customer-1").await;
    operator_does(&s, "disable", "merchant-2").await;
    s.stack.run_for(Duration::seconds(60)).await;

    for token in [&customer, &merchant] {
        for (route, r) in answers(&s, &requests, token).await {
            assert_eq!(
                r.status,
                401,
                "after: {route}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let problem: Value = r.json();
            assert!(
                problem["detail"].as_str().unwrap_or("").contains("revoked"),
                "{route}: {problem}"
            );
        }
    }
    // Other users are untouched.
    for (route, r) in answers(&s, &requests, &bearer("customer-2", "customer")).await {
        assert_ne!(r.status, 401, "customer-2: {route}");
    }

    // Enabled again, the user signs in afresh; the old tokens stay refused.
    operator_does(&s, "enable", "customer-1").await;
    let signed_in = s
        .stack
        .http(HttpRequest::json(
            "POST",
            "/auth/token",
            &json!({ "username": "customer-1", "password": "bazaar-local" }),
        ))
        .await;
    assert_eq!(signed_in.status, 200);
    let fresh = format!(
        "Bearer {}",
        signed_in.json()["access_token"].as_str().unwrap()
    );
    s.stack.run_for(Duration::seconds(60)).await;
    let orders = HttpRequest::get("/orders");
    assert_eq!(
        s.stack
            .http(orders.clone().header("authorization", &fresh))
            .await
            .status,
        200
    );
    assert_eq!(
        s.stack
            .http(orders.header("authorization", &customer))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn tokens_older_than_a_password_change_are_refused_within_a_minute() {
    let s = stack();
    demo_users(&s).await;
    let old = bearer("customer-1", "customer");
    let r = s
        .stack
        .http(
            HttpRequest::json(
                "PUT",
                "/users/me/password",
                &json!({ "old_password": "bazaar-local", "new_password": "copper kettle 2026 harbour" }),
            )
            .header("authorization", &old),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let fresh = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());

    s.stack.run_for(Duration::seconds(60)).await;
    let orders = HttpRequest::get("/orders");
    assert_eq!(
        s.stack
            .http(orders.clone().header("authorization", &old))
            .await
            .status,
        401
    );
    assert_eq!(
        s.stack
            .http(orders.header("authorization", &fresh))
            .await
            .status,
        200
    );
}
