//! orders-prices on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_orders::PriceCopy;
use bazaar_platform::LambdaFunction;
use bazaar_platform::item::parse;
use serde_json::json;

#[tokio::test]
async fn a_published_price_is_copied_and_a_withdrawal_takes_it_off_sale() {
    let world = Fixture::new();
    let deps = world.deps("orders-prices", Some("orders"), &[]);
    let function = orders_prices::function(deps.clone()).expect("valid settings");
    let sku = bazaar_contracts::Sku::parse("MUG-01").unwrap();
    let copy = || async {
        let item = deps
            .table()
            .unwrap()
            .get(&orders_prices::price_key(&sku))
            .await
            .unwrap();
        parse::<PriceCopy>(item.unwrap()).unwrap()
    };

    function
        .invoke(event("orders-prices.product-published.sqs.json"))
        .await
        .unwrap();
    assert_eq!(copy().await.price.unwrap().amount_cents, 1250);

    let withdrawn = with_envelope(event("orders-prices.product-published.sqs.json"), |env| {
        env["id"] = json!("withdrawn-v4");
        env["type"] = json!("product.withdrawn");
        env["data"] = json!({ "sku": "MUG-01", "version": 4 });
    });
    let mut withdrawn = withdrawn;
    withdrawn["Records"][0]["messageAttributes"]["type"]["stringValue"] =
        json!("product.withdrawn");
    function.invoke(withdrawn).await.unwrap();
    let late = with_envelope(event("orders-prices.product-published.sqs.json"), |env| {
        env["id"] = json!("late-v3")
    });
    function.invoke(late).await.unwrap();
    let c = copy().await;
    assert_eq!(
        (c.price, c.version),
        (None, 4),
        "off sale; the older publication is ignored"
    );
}
