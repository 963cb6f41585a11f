//! catalog-merger on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_platform::LambdaFunction;
use serde_json::json;

#[tokio::test]
async fn three_truths_publish_a_listing_and_selling_out_withdraws_it() {
    let world = Fixture::new();
    let function =
        catalog_merger::function(world.deps("catalog-merger", Some("catalog"), &["product"]))
            .expect("valid settings");

    // Out of order: stock first, then price, then master data (twice).
    for sample in [
        "catalog-merger.stock-updated.sqs.json",
        "catalog-merger.price-updated.sqs.json",
        "catalog-merger.product-updated.sqs.json",
        "catalog-merger.product-updated.sqs.json",
    ] {
        let r = function.invoke(event(sample)).await.unwrap();
        assert_eq!(r["batchItemFailures"], json!([]), "{sample}");
    }
    let sent = world.sent("product");
    assert_eq!(sent.len(), 1, "published once");
    assert_eq!(sent[0].message_type, "product.published");
    assert_eq!(sent[0].data.value()["version"], 3);
    assert_eq!(
        sent[0].data.value()["listing"]["price"]["amount_cents"],
        1250
    );

    let sold_out = with_envelope(event("catalog-merger.stock-updated.sqs.json"), |env| {
        env["id"] = json!("stock-v2");
        env["data"]["available"] = json!(0);
        env["data"]["version"] = json!(2);
    });
    function.invoke(sold_out).await.unwrap();
    let stale = with_envelope(event("catalog-merger.stock-updated.sqs.json"), |env| {
        env["id"] = json!("stock-v1-again");
    });
    function.invoke(stale).await.unwrap();
    let sent = world.sent("product");
    assert_eq!(
        sent.len(),
        2,
        "withdrawn once; the stale stock changes nothing"
    );
    assert_eq!(
        (
            sent[1].message_type.as_str(),
            sent[1].data.value()["version"].as_u64()
        ),
        ("product.withdrawn", Some(4))
    );
}
