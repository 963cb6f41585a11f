//! channels-webhook on the sample event of events/ (signed with the local agora secret at
//! 2026-01-10T09:30:00Z).

use bazaar_channels::agora::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use chrono::DateTime;
use serde_json::{Value, json};

const SECRET: &str = "local-agora-webhook-secret";
const SIGNED_AT: i64 = 1_768_037_400;

fn world() -> (Fixture, impl LambdaFunction) {
    let world = Fixture::new();
    world
        .clock
        .advance_to(DateTime::from_timestamp(SIGNED_AT + 10, 0).unwrap());
    let deps = world.deps_with_env(
        "channels-webhook",
        None,
        &["sale"],
        &[(
            "AGORA_WEBHOOK_SECRET_ARN",
            &world.secret("channels-webhook-secret", SECRET),
        )],
    );
    (
        world,
        channels_webhook::function(deps).expect("valid settings"),
    )
}

fn signed(body: &str, at: i64, secret: &str) -> Value {
    let mut e = event("channels-webhook.post-agora.json");
    e["body"] = json!(body);
    e["headers"][TIMESTAMP_HEADER] = json!(at.to_string());
    e["headers"][SIGNATURE_HEADER] = json!(sign(secret.as_bytes(), at, body.as_bytes()));
    e
}

#[tokio::test]
async fn the_sample_notification_becomes_sale_placed_once_whatever_the_repeats() {
    let (world, function) = world();
    let first = function
        .invoke(event("channels-webhook.post-agora.json"))
        .await
        .unwrap();
    assert_eq!(first["statusCode"], 202, "{first}");
    let sent = world.sent("sale");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_type, "sale.placed");
    assert_eq!(
        sent[0].data.value(),
        json!({
            "channel": "agora", "external_id": "agora-sample-1", "sku": "MUG-01", "quantity": 2,
            "unit_price": { "amount_cents": 1250, "currency": "EUR" },
            "placed_at": "2026-01-10T09:30:00Z"
        })
    );
    // agora sends it again: the same envelope, which consumers deduplicate.
    function
        .invoke(event("channels-webhook.post-agora.json"))
        .await
        .unwrap();
    let sent = world.sent("sale");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].id, sent[1].id);
}

#[tokio::test]
async fn forged_stale_and_unsigned_calls_are_refused_and_nothing_is_published() {
    let (world, function) = world();
    let body = event("channels-webhook.post-agora.json")["body"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = signed(&body, SIGNED_AT, "not-the-agora-secret");
    let stale = signed(&body, SIGNED_AT - 400, SECRET);
    let mut unsigned = event("channels-webhook.post-agora.json");
    unsigned["headers"]
        .as_object_mut()
        .unwrap()
        .remove(SIGNATURE_HEADER);
    let mut tampered = event("channels-webhook.post-agora.json");
    tampered["body"] = json!(body.replace("\"quantity\":2", "\"quantity\":20"));
    // A payment provider's signature is not agora's.
    let mut other_scheme = event("channels-webhook.post-agora.json");
    other_scheme["headers"][SIGNATURE_HEADER] = json!(bazaar_platform::webhook::sign(
        SECRET.as_bytes(),
        SIGNED_AT,
        body.as_bytes()
    ));
    for (name, e) in [
        ("forged", forged),
        ("stale", stale),
        ("unsigned", unsigned),
        ("tampered", tampered),
        ("other scheme", other_scheme),
    ] {
        let r = function.invoke(e).await.unwrap();
        assert_eq!(r["statusCode"], 401, "{name}: {r}");
    }
    assert!(world.sent("sale").is_empty(), "nothing published");
}

#[tokio::test]
async fn a_cancellation_becomes_sale_cancelled_and_a_bad_order_is_a_4xx() {
    let (world, function) = world();
    let cancelled = json!({
        "id": "evt-cancel-1", "type": "order.cancelled", "created_at": "2026-01-10T09:40:00Z",
        "order": { "id": "agora-sample-1", "sku": "MUG-01", "quantity": 2, "price_cents": 1250,
                   "currency": "EUR", "status": "cancelled", "created_at": "2026-01-10T09:30:00Z",
                   "answer_by": "2026-01-10T09:40:00Z" }
    })
    .to_string();
    let r = function
        .invoke(signed(&cancelled, SIGNED_AT, SECRET))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 202, "{r}");
    let sent = world.sent("sale");
    assert_eq!(
        (sent[0].message_type.as_str(), sent[0].data.value()),
        (
            "sale.cancelled",
            json!({ "channel": "agora", "external_id": "agora-sample-1" })
        )
    );
    for (bad, status) in [
        (cancelled.replace("order.cancelled", "order.shipped"), 400),
        (
            cancelled
                .replace("\"MUG-01\"", "\"mug 01\"")
                .replace("order.cancelled", "order.created"),
            422,
        ),
        (
            cancelled
                .replace("\"EUR\"", "\"XXX\"")
                .replace("order.cancelled", "order.created"),
            422,
        ),
        (
            cancelled
                .replace("\"quantity\":2", "\"quantity\":0")
                .replace("order.cancelled", "order.created"),
            422,
        ),
        ("{".to_string(), 400),
    ] {
        let r = function
            .invoke(signed(&bad, SIGNED_AT, SECRET))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], status, "{bad}: {r}");
    }
    assert_eq!(
        world.sent("sale").len(),
        1,
        "only the good one was published"
    );
}

#[tokio::test]
async fn a_missing_unreadable_or_short_secret_stops_init_without_printing_it() {
    let world = Fixture::new();
    let start = async |env: &[(&str, &str)]| {
        let deps = world.deps_with_env("channels-webhook", None, &["sale"], env);
        if let Err(e) = deps.secrets.warm().await {
            return Some(e.to_string());
        }
        channels_webhook::function(deps)
            .err()
            .map(|e| e.to_string())
    };
    let missing = "AGORA_WEBHOOK_SECRET_ARN is not set; expected the ARN of the secret agora signs its calls with";
    assert_eq!(start(&[]).await.as_deref(), Some(missing));
    let absent = start(&[(
        "AGORA_WEBHOOK_SECRET_ARN",
        "arn:aws:secretsmanager:local:000000000000:secret:absent",
    )])
    .await
    .unwrap();
    assert!(absent.contains("does not exist"), "{absent}");
    let short = world.secret("short-secret", "hunter2");
    let short = start(&[("AGORA_WEBHOOK_SECRET_ARN", &short)])
        .await
        .unwrap();
    assert!(
        short.contains("7 characters")
            && short.contains("at least 16")
            && !short.contains("hunter2"),
        "{short}"
    );
    let good = world.secret("good-secret", SECRET);
    assert_eq!(start(&[("AGORA_WEBHOOK_SECRET_ARN", &good)]).await, None);
    assert_eq!(
        start(&[("AGORA_WEBHOOK_SECRET", SECRET)]).await.as_deref(),
        Some(missing),
        "a secret in the environment is not read"
    );
}
