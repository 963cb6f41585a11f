//! channels-api on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;

fn deps(world: &Fixture) -> std::sync::Arc<bazaar_platform::Deps> {
    world.deps_with_env(
        "channels-api",
        Some("channels"),
        &[],
        &[("TABLE_NAME_REGISTRY", "sku-registry")],
    )
}

/// merchant-1 owns MUG-01, as catalog or inventory would have claimed it.
async fn owned_by_merchant_1(deps: &bazaar_platform::Deps) {
    let sku = bazaar_contracts::Sku::parse("MUG-01").unwrap();
    bazaar_platform::claims::claim(
        deps.table_named("registry").unwrap(),
        &bazaar_catalog::keys::registry(&sku).into(),
        "merchant-1",
        "inventory-api",
        chrono::DateTime::UNIX_EPOCH,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_sample_put_lists_the_merchants_sku_on_agora_pending() {
    let world = Fixture::new();
    let deps = deps(&world);
    owned_by_merchant_1(&deps).await;
    let function = channels_api::function(deps.clone()).expect("valid settings");

    let response = function
        .invoke(event("channels-api.put-listing.json"))
        .await
        .unwrap();

    assert_eq!(response["statusCode"], 200, "{response}");
    let stored: bazaar_channels::listing::ChannelListing = deps
        .table()
        .unwrap()
        .get_as(&channels_api::listing_key(
            bazaar_channels::ChannelId::Agora,
            "merchant-1",
            "MUG-01",
        ))
        .await
        .unwrap()
        .expect("the listing is stored");
    assert_eq!(
        (stored.listed, stored.buffer, stored.status, stored.version),
        (true, 2, bazaar_channels::listing::SyncStatus::Pending, 1)
    );

    let listed = function
        .invoke(event("channels-api.get-listings.json"))
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(listed["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["listings"][0]["sku"], "MUG-01", "{body}");
}

#[tokio::test]
async fn the_sample_put_of_a_sku_nobody_owns_is_not_found() {
    let world = Fixture::new();
    let function = channels_api::function(deps(&world)).expect("valid settings");
    let response = function
        .invoke(event("channels-api.put-listing.json"))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 404, "{response}");
}
