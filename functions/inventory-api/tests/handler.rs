//! inventory-api on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;

/// inventory-api's ports, with the sku registry it shares with catalog-api.
fn deps(world: &Fixture) -> std::sync::Arc<bazaar_platform::Deps> {
    world.deps_with_env(
        "inventory-api",
        Some("inventory"),
        &["inventory", "stock"],
        &[("TABLE_NAME_REGISTRY", "sku-registry")],
    )
}

#[tokio::test]
async fn the_sample_put_sets_the_stock_of_the_merchants_sku() {
    let world = Fixture::new();
    let deps = deps(&world);
    let function = inventory_api::function(deps.clone()).expect("valid settings");

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
        serde_json::json!({ "sku": "MUG-01", "merchant": "merchant-1", "available": 25, "version": 1 })
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
    let deps = deps(&world);
    let function = inventory_api::function(deps.clone()).expect("valid settings");
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
    let sku = bazaar_contracts::Sku::parse("MUG-01").unwrap();
    let stock = stored_stock(&deps, &sku).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["owner"].as_str()),
        (Some(25), Some("merchant-1")),
        "the owner's stock stands"
    );
    assert_eq!(
        world.sent("stock").len(),
        1,
        "only the owner's change was announced"
    );
}

#[tokio::test]
async fn a_sku_described_by_one_merchant_cannot_be_stocked_by_another() {
    let world = Fixture::new();
    let catalog = catalog_api_deps(&world);
    let described = catalog_api::function(catalog)
        .expect("valid settings")
        .invoke(event("catalog-api.put-product.json"))
        .await
        .unwrap();
    assert_eq!(described["statusCode"], 200, "{described}");
    let inventory = inventory_api::function(deps(&world)).expect("valid settings");

    let mut other = event("inventory-api.put-inventory.json");
    other["headers"]["authorization"] =
        bazaar_embedded::identity::bearer("merchant-2", &["merchant"]).into();
    let response = inventory.invoke(other).await.unwrap();

    assert_eq!(response["statusCode"], 404, "{response}");
    assert!(
        world.sent("stock").is_empty(),
        "no stock set by a non-owner"
    );
    let own = inventory
        .invoke(event("inventory-api.put-inventory.json"))
        .await
        .unwrap();
    assert_eq!(own["statusCode"], 200, "the owner still stocks it: {own}");
}

fn catalog_api_deps(world: &Fixture) -> std::sync::Arc<bazaar_platform::Deps> {
    world.deps_with_env(
        "catalog-api",
        Some("catalog"),
        &["product", "price"],
        &[("TABLE_NAME_REGISTRY", "sku-registry")],
    )
}
