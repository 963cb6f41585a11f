//! payments-webhook on the sample event of events/ (signed with the local secret at
//! 2026-01-10T09:30:00Z).

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use bazaar_platform::webhook::sign;
use chrono::{DateTime, Duration};
use serde_json::{Value, json};

const SECRET: &str = "local-webhook-secret";
const SIGNED_AT: i64 = 1_768_037_400;

fn world() -> (Fixture, impl LambdaFunction) {
    let world = Fixture::new();
    world
        .clock
        .advance_to(DateTime::from_timestamp(SIGNED_AT + 10, 0).unwrap());
    let deps = world.deps_with_env(
        "payments-webhook",
        None,
        &["tasks"],
        &[(
            "WEBHOOK_SECRET_ARN",
            &world.secret("payments-webhook-secret", SECRET),
        )],
    );
    (
        world,
        payments_webhook::function(deps).expect("valid settings"),
    )
}

fn with(body: &Value, signature: Option<String>) -> Value {
    let mut e = event("payments-webhook.post-notification.json");
    e["body"] = json!(body.to_string());
    match signature {
        Some(s) => e["headers"]["x-payments-signature"] = json!(s),
        None => {
            e["headers"]
                .as_object_mut()
                .unwrap()
                .remove("x-payments-signature");
        }
    }
    e
}

#[tokio::test]
async fn a_signed_notification_goes_to_the_payments_worker_once_per_provider_event() {
    let (world, function) = world();

    let first = function
        .invoke(event("payments-webhook.post-notification.json"))
        .await
        .unwrap();
    let again = function
        .invoke(event("payments-webhook.post-notification.json"))
        .await
        .unwrap();

    assert_eq!(
        (first["statusCode"].as_i64(), again["statusCode"].as_i64()),
        (Some(202), Some(202))
    );
    let sent = world.sent("tasks");
    assert_eq!(
        sent.len(),
        2,
        "the provider retried; the edge stores nothing"
    );
    assert_eq!(
        sent[0].message_type, "payments.payment.settle",
        "the worker checks it before anyone believes it"
    );
    assert_eq!(
        sent[0].data.value(),
        json!({ "order_id": "o-sample", "payment_id": "pay_0001", "outcome": "succeeded",
                "amount": { "amount_cents": 2500, "currency": "EUR" }, "provider_event": "evt_0001" })
    );
    assert_eq!(
        sent[0].id, sent[1].id,
        "the same provider event makes the same envelope: the worker deduplicates it"
    );
}

#[tokio::test]
async fn unsigned_wrongly_signed_and_stale_calls_get_401_and_publish_nothing() {
    let (world, function) = world();
    let body = json!({ "id": "evt_2", "type": "payment.failed", "payment_id": "pay_2", "order_id": "o-2", "reason": "insufficient_funds" });
    let now = SIGNED_AT + 10;
    let cases = [
        ("unsigned", None),
        (
            "wrong secret",
            Some(sign(b"not-the-secret", now, body.to_string().as_bytes())),
        ),
        ("garbage", Some("t=abc,v1=zz".to_string())),
        (
            "stale",
            Some(sign(
                SECRET.as_bytes(),
                now - 301,
                body.to_string().as_bytes(),
            )),
        ),
        (
            "from the future",
            Some(sign(
                SECRET.as_bytes(),
                now + 301,
                body.to_string().as_bytes(),
            )),
        ),
    ];
    for (name, signature) in cases {
        let r = function.invoke(with(&body, signature)).await.unwrap();
        assert_eq!(r["statusCode"], 401, "{name}: {r}");
    }
    // A genuine call captured and replayed ten minutes later: stale.
    world.clock.advance(Duration::minutes(10));
    let replayed = function
        .invoke(event("payments-webhook.post-notification.json"))
        .await
        .unwrap();
    assert_eq!(replayed["statusCode"], 401, "replayed");
    assert!(world.sent("tasks").is_empty(), "nothing was published");
}

#[tokio::test]
async fn a_signed_but_unusable_notification_is_a_4xx_not_a_5xx() {
    let (world, function) = world();
    for body in [
        json!({ "id": "e", "type": "payment.refunded", "payment_id": "p", "order_id": "o-1" }),
        json!({ "id": "e", "type": "payment.succeeded" }),
        json!({ "id": "e", "type": "payment.succeeded", "payment_id": "p", "order_id": "" }),
        json!({ "id": "e", "type": "payment.succeeded", "payment_id": "p", "order_id": "o-1", "amount_cents": 1 }),
        json!({ "id": "e", "type": "payment.succeeded", "payment_id": "p", "order_id": "o-1", "amount_cents": 1, "currency": "XXX" }),
        json!({ "id": "e", "type": "payment.succeeded", "payment_id": "p", "order_id": "o-1", "amount_cents": 1e308, "currency": "EUR" }),
    ] {
        let signature = sign(
            SECRET.as_bytes(),
            SIGNED_AT + 10,
            body.to_string().as_bytes(),
        );
        let r = function.invoke(with(&body, Some(signature))).await.unwrap();
        let status = r["statusCode"].as_i64().unwrap();
        assert!((400..500).contains(&status), "{body}: {r}");
    }
    assert!(world.sent("tasks").is_empty());
}

#[tokio::test]
async fn a_timestamp_at_the_end_of_the_number_range_is_401_not_a_panic() {
    let (world, function) = world();
    for t in ["-9223372036854775808", "9223372036854775807", "-1", "0"] {
        let mut e = event("payments-webhook.post-notification.json");
        e["headers"]["x-payments-signature"] = json!(format!("t={t},v1=00"));
        let r = function.invoke(e).await.unwrap();
        assert_eq!(r["statusCode"], 401, "t={t}: {r}");
    }
    assert!(world.sent("tasks").is_empty());
}

#[tokio::test]
async fn a_missing_unreadable_or_short_secret_stops_init_without_printing_it() {
    let world = Fixture::new();
    let start = async |env: &[(&str, &str)]| {
        let deps = world.deps_with_env("payments-webhook", None, &["tasks"], env);
        if let Err(e) = deps.secrets.warm().await {
            return Some(e.to_string());
        }
        payments_webhook::function(deps)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        start(&[]).await.as_deref(),
        Some(
            "WEBHOOK_SECRET_ARN is not set; expected the ARN of the secret the payment provider signs its calls with"
        )
    );
    let absent = start(&[(
        "WEBHOOK_SECRET_ARN",
        "arn:aws:secretsmanager:local:000000000000:secret:absent",
    )])
    .await
    .unwrap();
    assert!(absent.contains("does not exist"), "{absent}");
    let short = world.secret("short-secret", "hunter2");
    let short = start(&[("WEBHOOK_SECRET_ARN", &short)]).await.unwrap();
    assert!(
        short.contains("7 characters")
            && short.contains("at least 16")
            && !short.contains("hunter2"),
        "{short}"
    );
    let good = world.secret("good-secret", SECRET);
    assert_eq!(start(&[("WEBHOOK_SECRET_ARN", &good)]).await, None);
    assert_eq!(
        start(&[("WEBHOOK_SECRET", SECRET)]).await.as_deref(),
        Some(
            "WEBHOOK_SECRET_ARN is not set; expected the ARN of the secret the payment provider signs its calls with"
        ),
        "a secret in the environment is not read"
    );
}
