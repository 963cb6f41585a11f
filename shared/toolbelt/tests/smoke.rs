//! `bazaar smoke`'s steps against the local stack, in process: the same code the command
//! line runs against a deployed stack over HTTPS, waiting here by settling the simulated clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::telemetry::CollectedMetrics;
use bazaar_toolbelt::smoke::{self, Settings, Transport};
use serde_json::Value;

const BASE: &str = "https://api.smoke.test";

struct InProcess(Arc<Stack>);

#[async_trait]
impl Transport for InProcess {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let path = url.strip_prefix(BASE).expect("a URL of the test API");
        let mut request = match body {
            Some(b) => HttpRequest::json(method, path, b),
            None => HttpRequest {
                method: method.into(),
                ..HttpRequest::get(path)
            },
        };
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = self.0.http(request).await;
        Ok((
            response.status,
            serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        ))
    }
}

async fn stack_with_users() -> Arc<Stack> {
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::new(),
    )
    .unwrap();
    let stack = Stack::build(
        model,
        StackOptions::simulated(
            Arc::new(ScriptedFaults::new()),
            Arc::new(CollectedMetrics::default()),
        ),
    )
    .unwrap();
    let identity = stack.table_of("IdentityApiFunction").unwrap();
    for (user, role) in [
        ("smoke-customer", "customer"),
        ("smoke-merchant", "merchant"),
    ] {
        identity_api::ensure_user(identity.as_ref(), user, "smoke-password", &[role])
            .await
            .unwrap();
    }
    // The smoke customer's orders are tests.
    let r = stack
        .http(
            HttpRequest::json(
                "PUT",
                "/users/smoke-customer/flags",
                &serde_json::json!({ "flags": { "test-order": "true" } }),
            )
            .header(
                "authorization",
                &bazaar_embedded::identity::bearer("ops-1", &["operator"]),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    stack
}

fn settings(card: &str) -> Settings {
    Settings {
        api: BASE.into(),
        identity: BASE.into(),
        customer: ("smoke-customer".into(), "smoke-password".into()),
        merchant: ("smoke-merchant".into(), "smoke-password".into()),
        card_token: card.into(),
        attempts: 20,
        run_id: "t1".into(),
    }
}

#[tokio::test]
async fn the_smoke_test_places_and_confirms_an_order() {
    let stack = stack_with_users().await;
    let settle = stack.clone();
    let mut wait = move || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let s = settle.clone();
        Box::pin(async move { s.settle().await })
    };
    let report = smoke::run(&InProcess(stack.clone()), &settings("tok_ok"), &mut wait)
        .await
        .unwrap();
    assert_eq!(report.sku, "SMOKE-T1");
    assert!(
        report.steps.last().unwrap().ends_with("confirmed"),
        "{:?}",
        report.steps
    );
    // A test order: charged in test mode, and nobody told.
    let ledger = stack.provider().unwrap().ledger();
    assert!(
        ledger.iter().all(|c| c.test) && !ledger.is_empty(),
        "{ledger:?}"
    );
}

#[tokio::test]
async fn the_smoke_test_will_not_order_for_a_customer_without_the_test_order_flag() {
    let stack = stack_with_users().await;
    let identity = stack.table_of("IdentityApiFunction").unwrap();
    identity_api::ensure_user(identity.as_ref(), "plain", "smoke-password", &["customer"])
        .await
        .unwrap();
    let mut wait = || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async {})
    };
    let mut plain = settings("tok_ok");
    plain.customer.0 = "plain".into();
    let err = smoke::run(&InProcess(stack.clone()), &plain, &mut wait)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("users flags plain test-order"),
        "{err}"
    );
    assert!(
        stack.provider().unwrap().ledger().is_empty(),
        "nothing charged"
    );
}

#[tokio::test]
async fn the_smoke_test_fails_with_the_reason_when_the_order_is_not_confirmed() {
    let stack = stack_with_users().await;
    let settle = stack.clone();
    let mut wait = move || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let s = settle.clone();
        Box::pin(async move { s.settle().await })
    };
    let err = smoke::run(
        &InProcess(stack.clone()),
        &settings("tok_declined"),
        &mut wait,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("payment_declined"), "{err}");
    let mut bad = settings("tok_ok");
    bad.customer.1 = "wrong".into();
    let err = smoke::run(&InProcess(stack), &bad, &mut wait)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("logging in as smoke-customer gave 401"),
        "{err}"
    );
}
