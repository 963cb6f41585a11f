//! notifier on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_platform::LambdaFunction;
use serde_json::json;

#[tokio::test]
async fn a_cancellation_is_notified_once_even_when_re_sent_with_a_new_id() {
    let world = Fixture::new();
    let deps = world.deps("notifier", Some("notifications"), &[]);
    let function = notifier::function(deps.clone()).expect("valid settings");

    function.invoke(event("notifier.sqs.json")).await.unwrap();
    let resent = with_envelope(event("notifier.sqs.json"), |env| {
        env["id"] = json!("a-new-envelope-for-the-same-fact")
    });
    let response = function.invoke(resent).await.unwrap();

    assert_eq!(response["batchItemFailures"], json!([]));
    let notes = notifier::notifications_of(deps.table().unwrap(), "customer-1")
        .await
        .unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].order_id.as_str(), notes[0].outcome.as_str()),
        ("o-sample", "cancelled")
    );
    assert!(
        notes[0].text.contains("could not be completed in time"),
        "{}",
        notes[0].text
    );
}

/// A channel that counts what it sends, and can be down.
#[derive(Default)]
struct Counting {
    sent: std::sync::Mutex<Vec<(String, String)>>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl notifier::Channel for Counting {
    async fn send(
        &self,
        key: &str,
        note: &notifier::Notification,
    ) -> Result<(), notifier::ChannelError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(notifier::ChannelError::Unavailable("down".into()));
        }
        self.sent
            .lock()
            .unwrap()
            .push((key.to_string(), note.order_id.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn the_channel_sends_once_per_order_and_outcome_and_a_down_channel_is_retried() {
    let world = Fixture::new();
    let deps = world.deps("notifier", Some("notifications"), &[]);
    let channel = std::sync::Arc::new(Counting::default());
    let function = notifier::function_with(deps, channel.clone());

    channel
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = function.invoke(event("notifier.sqs.json")).await.unwrap();
    assert_eq!(
        r["batchItemFailures"].as_array().unwrap().len(),
        1,
        "left on the queue while the channel is down"
    );
    channel
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    function.invoke(event("notifier.sqs.json")).await.unwrap();
    let resent = with_envelope(event("notifier.sqs.json"), |env| {
        env["id"] = json!("the-same-fact-again")
    });
    function.invoke(resent).await.unwrap();

    let sent = channel.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1, "o-sample");
    assert!(sent[0].0.contains("o-sample#cancelled"), "{}", sent[0].0);
}

#[tokio::test]
async fn each_step_after_the_confirmation_is_notified_once_and_a_channels_buyer_not_at_all() {
    let world = Fixture::new();
    let deps = world.deps("notifier", Some("notifications"), &[]);
    let function = notifier::function(deps.clone()).expect("valid settings");
    let step = |id: &str, kind: &str| {
        let (id, kind) = (id.to_string(), kind.to_string());
        with_envelope(event("notifier.order-shipped.sqs.json"), move |env| {
            env["id"] = json!(id);
            env["type"] = json!(kind);
        })
    };

    for (id, kind) in [
        ("a-1", "order.shipped"),
        ("a-2", "order.shipped"),
        ("a-3", "order.delivered"),
        ("a-4", "order.delivered"),
    ] {
        let out = function.invoke(step(id, kind)).await.unwrap();
        assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    }
    let channel = with_envelope(event("notifier.order-shipped.sqs.json"), |env| {
        env["id"] = json!("a-5");
        env["data"]["order_id"] = json!("o-channel");
        env["data"]["source"] = json!({ "channel": "agora", "external_id": "ag-1" });
    });
    function.invoke(channel).await.unwrap();

    let notes = notifier::notifications_of(deps.table().unwrap(), "customer-1")
        .await
        .unwrap();
    let steps: Vec<(&str, &str)> = notes
        .iter()
        .map(|n| (n.order_id.as_str(), n.outcome.as_str()))
        .collect();
    assert_eq!(steps, [("o-sample", "delivered"), ("o-sample", "shipped")]);
    assert!(notes[1].text.contains("has shipped"), "{}", notes[1].text);
}
