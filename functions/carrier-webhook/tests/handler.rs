//! carrier-webhook on the sample event of events/ (signed with the local secret at
//! 2026-01-10T09:30:00Z).

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use bazaar_platform::webhook::sign;
use chrono::DateTime;
use serde_json::{Value, json};

const SECRET: &str = "local-carrier-webhook-secret";
const SIGNED_AT: i64 = 1_768_037_400;

fn world(now: i64) -> (Fixture, impl LambdaFunction) {
    let world = Fixture::new();
    world
        .clock
        .advance_to(DateTime::from_timestamp(now, 0).unwrap());
    let deps = world.deps_with_env(
        "carrier-webhook",
        None,
        &["tasks"],
        &[(
            "WEBHOOK_SECRET_ARN",
            &world.secret("carrier-webhook-secret", SECRET),
        )],
    );
    (
        world,
        carrier_webhook::function(deps).expect("valid settings"),
    )
}

fn with(body: &Value, signature: Option<String>) -> Value {
    let mut e = event("carrier-webhook.post-callback.json");
    e["body"] = json!(body.to_string());
    match signature {
        Some(s) => e["headers"][carrier_webhook::SIGNATURE_HEADER] = json!(s),
        None => {
            e["headers"]
                .as_object_mut()
                .unwrap()
                .remove(carrier_webhook::SIGNATURE_HEADER);
        }
    }
    e
}

#[tokio::test]
async fn a_signed_callback_goes_to_the_fulfilment_worker_once_per_carrier_event() {
    let (world, function) = world(SIGNED_AT + 10);

    let first = function
        .invoke(event("carrier-webhook.post-callback.json"))
        .await
        .unwrap();
    let again = function
        .invoke(event("carrier-webhook.post-callback.json"))
        .await
        .unwrap();

    assert_eq!(
        (first["statusCode"].as_i64(), again["statusCode"].as_i64()),
        (Some(202), Some(202))
    );
    let sent = world.sent("tasks");
    assert_eq!(sent.len(), 2, "published twice, as the same envelope");
    assert_eq!(sent[0].id, sent[1].id);
    assert_eq!(sent[0].message_type, "fulfilment.parcel.track");
    assert_eq!(
        sent[0].data.value(),
        json!({
            "carrier": "fake-carrier",
            "tracking_code": "TRK-SAMPLE-0001",
            "status": "delivered",
            "carrier_event": "trk_evt_0001",
            "at": "2026-01-10T09:30:00Z"
        })
    );
}

#[tokio::test]
async fn forged_unsigned_and_stale_callbacks_get_401_and_publish_nothing() {
    let body = json!({ "id": "e-1", "tracking_code": "TRK-1", "status": "delivered", "at": "2026-01-10T09:30:00Z" });
    let now = SIGNED_AT + 10;
    let (world, function) = world(now);
    let cases = [
        ("unsigned", with(&body, None)),
        (
            "another secret",
            with(
                &body,
                Some(sign(
                    b"not-the-carrier-secret!",
                    now,
                    body.to_string().as_bytes(),
                )),
            ),
        ),
        (
            "a body other than the one signed",
            with(
                &json!({ "id": "e-1", "tracking_code": "TRK-2", "status": "delivered", "at": "2026-01-10T09:30:00Z" }),
                Some(sign(SECRET.as_bytes(), now, body.to_string().as_bytes())),
            ),
        ),
        (
            "signed six minutes ago (a replay)",
            with(
                &body,
                Some(sign(
                    SECRET.as_bytes(),
                    now - 360,
                    body.to_string().as_bytes(),
                )),
            ),
        ),
        (
            "the smallest timestamp there is",
            with(&body, Some(format!("t={},v1=00", i64::MIN))),
        ),
    ];
    for (what, request) in cases {
        let response = function.invoke(request).await.unwrap();
        assert_eq!(response["statusCode"], 401, "{what}: {response}");
    }
    assert!(world.sent("tasks").is_empty());
}

#[tokio::test]
async fn a_signed_callback_that_is_not_a_tracking_event_is_422() {
    let (world, function) = world(SIGNED_AT);
    for body in [
        json!({ "id": "e-1", "tracking_code": "TRK-1", "status": "lost", "at": "2026-01-10T09:30:00Z" }),
        json!({ "id": "e-1", "tracking_code": "trk 1", "status": "delivered", "at": "2026-01-10T09:30:00Z" }),
        json!({ "id": "", "tracking_code": "TRK-1", "status": "delivered", "at": "2026-01-10T09:30:00Z" }),
    ] {
        let signature = sign(SECRET.as_bytes(), SIGNED_AT, body.to_string().as_bytes());
        let response = function.invoke(with(&body, Some(signature))).await.unwrap();
        assert_eq!(response["statusCode"], 422, "{body}: {response}");
    }
    assert!(world.sent("tasks").is_empty());
}
