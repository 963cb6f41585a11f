//! catalog-api on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use serde_json::{Value, json};

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

/// catalog-api's ports, with the sku registry it shares with inventory-api.
fn deps(world: &Fixture) -> std::sync::Arc<bazaar_platform::Deps> {
    world.deps_with_env(
        "catalog-api",
        Some("catalog"),
        &["product", "price"],
        &[("TABLE_NAME_REGISTRY", "sku-registry")],
    )
}

#[tokio::test]
async fn the_samples_describe_price_and_show_a_product() {
    let world = Fixture::new();
    let function = catalog_api::function(deps(&world)).expect("valid settings");

    let described = function
        .invoke(event("catalog-api.put-product.json"))
        .await
        .unwrap();
    assert_eq!(described["statusCode"], 200, "{described}");
    let priced = function
        .invoke(event("catalog-api.put-price.json"))
        .await
        .unwrap();
    assert_eq!(priced["statusCode"], 200, "{priced}");
    let again = function
        .invoke(event("catalog-api.put-price.json"))
        .await
        .unwrap();
    assert_eq!(body(&again)["version"], 2, "each change is a new version");

    let product = world.sent("product");
    assert_eq!(product.len(), 1);
    assert_eq!(product[0].message_type, "product.updated");
    assert_eq!(product[0].data.value()["version"], 1);
    assert_eq!(product[0].data.value()["master"]["title"], "Red mug");
    let price = world.sent("price");
    assert_eq!(
        price
            .iter()
            .map(|e| e.data.value()["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );

    let shown = function
        .invoke(event("catalog-api.get-product.json"))
        .await
        .unwrap();
    assert_eq!(shown["statusCode"], 200);
    let shown = body(&shown);
    assert_eq!(
        (
            shown["merchant"].clone(),
            shown["price"].clone(),
            shown["published"].clone()
        ),
        (
            json!("merchant-1"),
            json!({ "amount_cents": 1250, "currency": "EUR" }),
            json!(false)
        )
    );
}
