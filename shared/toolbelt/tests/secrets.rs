//! `bazaar secrets` on the local stack and on an AWS API (moto, started by `scripts/test`):
//! the template's secrets are listed without their values, and a new value put with the
//! toolbelt reaches the running function without a restart or a deploy, while calls signed
//! with the value before it still pass until the next rotation.

mod common;
use std::sync::Arc;

use bazaar_aws::testing;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel};
use bazaar_toolbelt::aws::AwsBackend;
use bazaar_toolbelt::{LocalBackend, Target, secrets};
use chrono::Duration;
use serde_json::json;

/// The provider's callback, signed with `secret` now: its status (202 accepted, 401 refused).
async fn callback(stack: &Stack, secret: &str, n: u32) -> u16 {
    let now = stack.engine().clock().now().timestamp();
    let body = json!({
        "id": format!("evt_rotation_{n}"), "type": "payment.succeeded", "payment_id": "pay_1",
        "order_id": "o-rotation", "amount_cents": 1250, "currency": "EUR",
    })
    .to_string();
    let signature = bazaar_platform::webhook::sign(secret.as_bytes(), now, body.as_bytes());
    let request = HttpRequest {
        method: "POST".into(),
        path: "/webhooks/payments".into(),
        body: body.into_bytes(),
        ..Default::default()
    }
    .header("content-type", "application/json")
    .header("x-payments-signature", &signature);
    stack.http(request).await.status
}

async fn secrets_rotate_without_a_restart(stack: &Stack, target: &Target) {
    let rows = secrets::list(target).await.unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.arn.is_some()),
        "every secret exists: {rows:?}"
    );
    let webhook = rows
        .iter()
        .find(|r| r.logical_id == "PaymentsWebhookSecret")
        .unwrap();
    assert_eq!(
        webhook.readers,
        [target.model.functions["PaymentsWebhookFunction"].name()]
    );
    let listed = serde_json::to_string(&rows).unwrap();
    assert!(
        !listed.contains("local-webhook-secret") && !listed.contains("sk_local_fake_provider"),
        "values are never listed: {listed}"
    );

    let first = StackModel::local_secret_value("PaymentsWebhookSecret");
    assert_eq!(
        callback(stack, &first, 1).await,
        202,
        "signed with the value in force"
    );

    let second = "second-webhook-secret-0002";
    let name = secrets::put(target, "PaymentsWebhookSecret", second)
        .await
        .unwrap();
    assert_eq!(name, webhook.name);
    // The function read the secret a moment ago: a call signed with the new value makes it
    // read the store again once 30 s have passed since (not on every forged call).
    stack.run_for(Duration::seconds(31)).await;
    assert_eq!(
        callback(stack, second, 2).await,
        202,
        "the new value is accepted without a restart"
    );
    assert_eq!(
        callback(stack, &first, 3).await,
        202,
        "the value before it still passes while the provider switches"
    );

    let third = "third-webhook-secret-00003";
    secrets::put(target, &webhook.name, third).await.unwrap();
    stack.run_for(Duration::minutes(5)).await;
    assert_eq!(
        callback(stack, third, 4).await,
        202,
        "read again after five minutes"
    );
    assert_eq!(
        callback(stack, &first, 5).await,
        401,
        "two rotations later the first value is refused"
    );

    let unknown = secrets::put(target, "NoSuchSecret", "whatever-value")
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("PaymentsWebhookSecret"), "{unknown}");
}

#[tokio::test]
async fn secrets_rotate_without_a_restart_on_the_local_stack() {
    let stack = Stack::build(common::model(None), common::options()).unwrap();
    let backend = Arc::new(LocalBackend::new(stack.engine().clone(), "test"));
    let target = Target::new(common::model(None), backend);
    secrets_rotate_without_a_restart(&stack, &target).await;
}

#[tokio::test]
async fn secrets_rotate_without_a_restart_on_aws_apis() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let model = common::model(Some(testing::unique("sec")));
    let stack = Stack::build_on_aws(model.clone(), common::options(), config.clone(), true)
        .await
        .unwrap();
    let target = Target::new(model, Arc::new(AwsBackend::new(&config)));
    secrets_rotate_without_a_restart(&stack, &target).await;
}
