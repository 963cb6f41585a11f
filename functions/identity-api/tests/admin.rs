//! Operators deciding merchants' applications (`POST /users/{username}/approve`, `/refuse`) on
//! the sample event of events/.

mod common;

use common::{actor_of, body, login, operator, user_action, world};

use bazaar_contracts::Actor;
use bazaar_embedded::identity::bearer;
use bazaar_embedded::testing::event;
use bazaar_platform::LambdaFunction;
use serde_json::{Value, json};

const PASSWORD: &str = "wheel and kiln 1842";

/// The sample decision on `username`: `approve` or `refuse`, with the `Authorization` header
/// `token` (none: anonymous).
fn decide(decision: &str, username: &str, token: Option<String>) -> Value {
    user_action("identity-api.post-approve.json", decision, username, token)
}

async fn apply(function: &impl LambdaFunction, username: &str, role: &str) {
    let mut e = event("identity-api.post-users.json");
    e["body"] = json!(
        json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD, "role": role})
            .to_string()
    );
    let r = function.invoke(e).await.unwrap();
    assert_eq!(r["statusCode"], 201, "{r}");
}

#[tokio::test]
async fn an_operator_approves_a_merchant_once_and_its_next_token_carries_the_role() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    apply(&function, "potter", "merchant").await;

    let r = function
        .invoke(event("identity-api.post-approve.json"))
        .await
        .unwrap();

    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(
        body(&r),
        json!({"username": "potter", "email": "potter@example.com", "roles": ["merchant"],
               "status": "active", "created_at": "2026-01-01T00:00:00Z"})
    );
    let sent = world.sent("user");
    let approved: Vec<Value> = sent
        .iter()
        .filter(|e| e.message_type == "user.approved")
        .map(|e| e.data.value())
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(
        (
            &approved[0]["username"],
            &approved[0]["role"],
            &approved[0]["approved_by"]
        ),
        (&json!("potter"), &json!("merchant"), &json!("operator"))
    );
    assert_eq!(
        actor_of(&world, &function, "potter", PASSWORD).await,
        Actor::new("potter", &["merchant"])
    );

    for again in ["approve", "refuse"] {
        let r = function
            .invoke(decide(again, "potter", operator()))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], 409, "{again}: {r}");
    }
    assert_eq!(
        world
            .sent("user")
            .iter()
            .filter(|e| e.message_type == "user.approved")
            .count(),
        1,
        "decided once"
    );
}

#[tokio::test]
async fn a_refused_applicant_cannot_sign_in() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    apply(&function, "potter", "merchant").await;

    let r = function
        .invoke(decide("refuse", "potter", operator()))
        .await
        .unwrap();

    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body(&r)["status"], "refused");
    assert_eq!(body(&r)["roles"], json!([]));
    let r = function.invoke(login("potter", PASSWORD)).await.unwrap();
    assert_eq!(r["statusCode"], 403, "{r}");
    assert!(
        world
            .sent("user")
            .iter()
            .all(|e| e.message_type == "user.created"),
        "a refusal emits nothing"
    );
}

#[tokio::test]
async fn only_operators_decide_and_only_pending_applications() {
    let (world, deps) = world();
    let function = identity_api::function(deps).unwrap();
    apply(&function, "potter", "merchant").await;
    apply(&function, "ada", "customer").await;

    let cases = [
        (decide("approve", "potter", None), 401),
        (
            decide(
                "approve",
                "potter",
                Some(bearer("merchant-1", &["merchant"])),
            ),
            403,
        ),
        (
            decide("approve", "potter", Some(bearer("potter", &[]))),
            403,
        ),
        (
            decide("approve", "potter", Some(bearer("ada", &["customer"]))),
            403,
        ),
        (decide("approve", "nobody", operator()), 404),
        (decide("approve", "ada", operator()), 409),
        (decide("refuse", "ada", operator()), 409),
    ];
    for (request, status) in cases {
        let r = function.invoke(request.clone()).await.unwrap();
        assert_eq!(r["statusCode"], status, "{}: {r}", request["rawPath"]);
    }
    assert!(
        world
            .sent("user")
            .iter()
            .all(|e| e.message_type == "user.created")
    );
    // Still pending: a customer can still sign in as one, the applicant with no role.
    assert_eq!(
        actor_of(&world, &function, "potter", PASSWORD).await,
        Actor::new("potter", &[])
    );
    assert_eq!(
        actor_of(&world, &function, "ada", PASSWORD).await,
        Actor::new("ada", &["customer"])
    );
}
