//! inventory-api on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;

#[tokio::test]
async fn the_sample_put_sets_the_stock_of_the_merchants_sku() {
    let world = Fixture::new();
    let deps = world.deps("inventory-api", Some("inventory"), &["inventory", "stock"]);
    let function = inventory_api::function(deps.clone());

    let response = function
        .invoke(event("inventory-api.put-inventory.json"))
        .await
        .unwrap();

    assert_eq!(response["statusCode"], 200, "{response}");
    let sku = bazaar_contracts::Sku::parse("MUG-01").unwrap();
    let stock = stored_stock(&deps, &sku).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["owner"].as_str()),
        (Some(25), Some("merchant-1"))
    );
    let sent = world.sent("stock");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].data.value(),
        serde_json::json!({ "sku": "MUG-01", "available": 25, "version": 1 })
    );
}

async fn stored_stock(
    deps: &bazaar_platform::Deps,
    sku: &bazaar_contracts::Sku,
) -> serde_json::Map<String, serde_json::Value> {
    deps.table()
        .unwrap()
        .get(&inventory_api::stock_key(sku))
        .await
        .unwrap()
        .expect("stock stored")
}

#[tokio::test]
async fn another_merchant_cannot_change_the_sku() {
    let world = Fixture::new();
    let function = inventory_api::function(world.deps(
        "inventory-api",
        Some("inventory"),
        &["inventory", "stock"],
    ));
    function
        .invoke(event("inventory-api.put-inventory.json"))
        .await
        .unwrap();

    let mut other = event("inventory-api.put-inventory.json");
    other["headers"]["authorization"] =
        bazaar_embedded::identity::bearer("merchant-2", &["merchant"]).into();
    let response = function.invoke(other).await.unwrap();

    assert_eq!(
        response["statusCode"], 404,
        "another merchant's sku does not exist for this caller"
    );
}
