//! notifier on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_platform::LambdaFunction;
use serde_json::json;

#[tokio::test]
async fn a_cancellation_is_notified_once_even_when_re_sent_with_a_new_id() {
    let world = Fixture::new();
    let deps = world.deps("notifier", Some("notifications"), &[]);
    let function = notifier::function(deps.clone());

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
