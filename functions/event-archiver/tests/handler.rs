//! event-archiver on the sample event of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use serde_json::json;

#[tokio::test]
async fn any_envelope_is_archived_once_by_type_and_by_flow() {
    let world = Fixture::new();
    let deps = world.deps("event-archiver", Some("ops"), &[]);
    let function = event_archiver::function(deps.clone()).expect("valid settings");

    for _ in 0..2 {
        let r = function
            .invoke(event("event-archiver.sqs.json"))
            .await
            .unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    let table = deps.table().unwrap();
    assert_eq!(
        event_archiver::archived_types(table).await.unwrap(),
        ["product.published"]
    );
    let archived = event_archiver::archived(table, &["product.published".into()])
        .await
        .unwrap();
    assert_eq!(archived.len(), 1, "once, whatever the deliveries");
    assert_eq!(archived[0].data.value()["listing"]["sku"], "MUG-01");
    let flow = event_archiver::flow(table, "JKJaXmPLvHcESHA=")
        .await
        .unwrap();
    assert_eq!(flow.len(), 1);
    assert_eq!(flow[0]["type"], "product.published");
}
