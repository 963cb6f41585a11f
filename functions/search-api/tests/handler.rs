//! search-api on the sample events of events/, over an index search-indexer filled.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use serde_json::{Value, json};

#[tokio::test]
async fn the_sample_search_finds_the_published_mug() {
    let world = Fixture::new();
    let indexer = search_indexer::function(world.deps("search-indexer", Some("search"), &[]))
        .expect("valid settings");
    indexer
        .invoke(event("search-indexer.product-published.sqs.json"))
        .await
        .unwrap();
    let search = search_api::function(world.deps("search-api", Some("search"), &[]))
        .expect("valid settings");

    let r = search
        .invoke(event("search-api.search.json"))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["items"][0]["sku"], "MUG-01");
    assert_eq!(body["next"], Value::Null);

    let mut other = event("search-api.search.json");
    other["queryStringParameters"] = json!({ "q": "blue" });
    other["rawQueryString"] = json!("q=blue");
    let r = search.invoke(other).await.unwrap();
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["items"], json!([]));
}
