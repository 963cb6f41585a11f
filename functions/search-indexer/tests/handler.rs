//! search-indexer on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_platform::LambdaFunction;
use serde_json::json;

#[tokio::test]
async fn a_withdrawal_is_not_undone_by_an_older_publication() {
    let world = Fixture::new();
    let deps = world.deps("search-indexer", Some("search"), &[]);
    let function = search_indexer::function(deps.clone()).expect("valid settings");

    function
        .invoke(event("search-indexer.product-published.sqs.json"))
        .await
        .unwrap();
    let entries = search_indexer::entries(deps.table().unwrap())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].listing.as_ref().unwrap().master.title, "Red mug");

    function
        .invoke(event("search-indexer.product-withdrawn.sqs.json"))
        .await
        .unwrap();
    let late = with_envelope(event("search-indexer.product-published.sqs.json"), |env| {
        env["id"] = json!("a-late-copy-of-version-3")
    });
    let r = function.invoke(late).await.unwrap();
    assert_eq!(r["batchItemFailures"], json!([]));
    let entries = search_indexer::entries(deps.table().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (entries[0].version, entries[0].listing.is_none()),
        (4, true),
        "a tombstone"
    );
}
