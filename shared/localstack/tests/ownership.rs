//! One owner per sku, for catalog and inventory alike: whoever first describes, prices or
//! stocks it. Reproductions of the takeovers found from outside, in both orders, and first
//! claims made at the same moment from both sides.

mod common;

use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

async fn put(s: &TestStack, merchant: &str, path: &str, body: Value) -> HttpResponse {
    s.stack
        .http(
            HttpRequest::json("PUT", path, &body)
                .header("authorization", &bearer(merchant, "merchant")),
        )
        .await
}

fn master(title: &str) -> Value {
    json!({ "title": title, "description": "Stoneware.", "category": "kitchen" })
}

fn price(cents: i64) -> Value {
    json!({ "amount_cents": cents, "currency": "EUR" })
}

async fn product(s: &TestStack, sku: &str) -> Value {
    let r = s
        .stack
        .http(HttpRequest::get(&format!("/products/{sku}")))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test]
async fn another_merchant_cannot_stock_a_product_it_did_not_describe() {
    let s = stack();
    assert_eq!(
        put(&s, "merchant-1", "/products/A", master("Mug"))
            .await
            .status,
        200
    );
    assert_eq!(
        put(&s, "merchant-1", "/products/A/price", price(2000))
            .await
            .status,
        200
    );

    let taken = put(
        &s,
        "merchant-2",
        "/inventory/A",
        json!({ "available": 1000 }),
    )
    .await;
    assert_eq!(
        taken.status,
        404,
        "{}",
        String::from_utf8_lossy(&taken.body)
    );
    let own = put(&s, "merchant-1", "/inventory/A", json!({ "available": 5 })).await;
    assert_eq!(
        own.status,
        200,
        "the owner stocks its product: {}",
        String::from_utf8_lossy(&own.body)
    );
    s.stack.settle().await;
    assert_eq!(s.stock("A").await, (5, 0), "the owner's stock, not 1000");

    let withdraw = put(&s, "merchant-2", "/inventory/A", json!({ "available": 0 })).await;
    assert_eq!(withdraw.status, 404);
    s.stack.settle().await;
    let shown = product(&s, "A").await;
    assert_eq!(
        (shown["merchant"].clone(), shown["published"].clone()),
        (json!("merchant-1"), json!(true))
    );

    let order = s
        .placed("customer-1", "a-1", json!([{ "sku": "A", "quantity": 2 }]))
        .await;
    s.stack.settle().await;
    let order = s.order(&order).await;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(
        order["total"],
        json!({ "amount_cents": 4000, "currency": "EUR" })
    );
    assert_eq!(
        s.stock("A").await,
        (3, 0),
        "charged against the owner's units"
    );
}

#[tokio::test]
async fn another_merchant_cannot_describe_or_price_a_sku_it_did_not_stock() {
    let s = stack();
    assert_eq!(
        put(&s, "merchant-1", "/inventory/B", json!({ "available": 10 }))
            .await
            .status,
        200
    );

    let described = put(&s, "merchant-2", "/products/B", master("Cheap mug")).await;
    assert_eq!(
        described.status,
        404,
        "{}",
        String::from_utf8_lossy(&described.body)
    );
    let priced = put(&s, "merchant-2", "/products/B/price", price(1)).await;
    assert_eq!(priced.status, 404);
    s.stack.settle().await;
    let shown = product(&s, "B").await;
    assert_eq!(
        shown["merchant"], "merchant-1",
        "stocked only, but owned: {shown}"
    );
    assert_eq!(
        (
            shown["master"].clone(),
            shown["price"].clone(),
            shown["published"].clone()
        ),
        (Value::Null, Value::Null, json!(false))
    );
    let refused = s
        .place("customer-1", "b-1", json!([{ "sku": "B", "quantity": 2 }]))
        .await;
    assert_eq!(refused.status, 422, "nothing to buy at 1 cent");

    assert_eq!(
        put(&s, "merchant-1", "/products/B", master("Mug"))
            .await
            .status,
        200
    );
    assert_eq!(
        put(&s, "merchant-1", "/products/B/price", price(1500))
            .await
            .status,
        200
    );
    s.stack.settle().await;
    let shown = product(&s, "B").await;
    assert_eq!(
        (shown["merchant"].clone(), shown["published"].clone()),
        (json!("merchant-1"), json!(true))
    );
}

#[tokio::test]
async fn a_sku_is_one_sku_whatever_its_letters_case() {
    let s = stack();
    assert_eq!(
        put(&s, "merchant-1", "/products/MUG-01", master("Mug"))
            .await
            .status,
        200
    );
    let lower = put(&s, "merchant-2", "/products/mug-01", master("Mug")).await;
    assert_eq!(
        lower.status,
        400,
        "{}",
        String::from_utf8_lossy(&lower.body)
    );
    assert_eq!(lower.json()["field"], "sku");
    let lower = put(
        &s,
        "merchant-2",
        "/inventory/mug-01",
        json!({ "available": 1 }),
    )
    .await;
    assert_eq!(lower.status, 400);
}

/// First claims of the same skus from both services at the same moment, on several threads:
/// each sku ends with exactly one owner, the loser gets the 404 any other merchant gets, and
/// no truth is ever set by the loser.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_claims_from_catalog_and_inventory_leave_one_owner() {
    let s = std::sync::Arc::new(stack());
    let mut tasks = Vec::new();
    for i in 0..60 {
        let sku = format!("RACE-{i:02}");
        // Half the skus: merchant-1 describes while merchant-2 stocks; the other half the
        // other way round.
        let (describer, stocker) = if i % 2 == 0 {
            ("merchant-1", "merchant-2")
        } else {
            ("merchant-2", "merchant-1")
        };
        let (a, b) = (s.clone(), s.clone());
        let (sku_a, sku_b) = (sku.clone(), sku.clone());
        let described = tokio::spawn(async move {
            put(
                &a,
                describer,
                &format!("/products/{sku_a}"),
                master("Raced"),
            )
            .await
            .status
        });
        let stocked = tokio::spawn(async move {
            put(
                &b,
                stocker,
                &format!("/inventory/{sku_b}"),
                json!({ "available": 7 }),
            )
            .await
            .status
        });
        tasks.push((sku, describer, stocker, described, stocked));
    }
    let mut winners = [0, 0];
    for (sku, describer, stocker, described, stocked) in tasks {
        let (d, st) = (described.await.unwrap(), stocked.await.unwrap());
        let mut statuses = [d, st];
        statuses.sort();
        assert_eq!(statuses, [200, 404], "{sku}: described {d}, stocked {st}");
        let owner = if d == 200 { describer } else { stocker };
        winners[usize::from(d != 200)] += 1;
        let shown = product(&s, &sku).await;
        assert_eq!(shown["merchant"], owner, "{sku}");
        // The loser's truth was never set.
        if d == 200 {
            assert_eq!(
                shown["available"],
                Value::Null,
                "{sku}: no stock from the loser"
            );
        } else {
            assert_eq!(
                shown["master"],
                Value::Null,
                "{sku}: no master data from the loser"
            );
        }
    }
    println!(
        "described first: {}, stocked first: {}",
        winners[0], winners[1]
    );
}

/// Text that should not be stored is refused with a 4xx problem naming the field.
#[tokio::test]
async fn control_characters_direction_overrides_markup_and_unknown_currencies_are_refused() {
    let s = stack();
    let cases = [
        (
            "title",
            json!({ "title": "Mug\u{0}", "category": "kitchen" }),
        ),
        (
            "title",
            json!({ "title": "Ring\u{7}ing", "category": "kitchen" }),
        ),
        (
            "title",
            json!({ "title": "gpj\u{202e}exe.mug", "category": "kitchen" }),
        ),
        (
            "title",
            json!({ "title": "<b>Mug</b>", "category": "kitchen" }),
        ),
        (
            "description",
            json!({ "title": "Mug", "description": "Nice\u{202e}", "category": "kitchen" }),
        ),
        (
            "description",
            json!({ "title": "Mug", "description": "<script>alert(1)</script>", "category": "kitchen" }),
        ),
        (
            "description",
            json!({ "title": "Mug", "description": "bell\u{7}", "category": "kitchen" }),
        ),
    ];
    for (field, body) in cases {
        let r = put(&s, "merchant-1", "/products/TEXT-01", body.clone()).await;
        assert_eq!(
            r.status,
            422,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["field"], field, "{body}");
    }
    let fine = json!({ "title": "Mug – 40 cl", "description": "Line one.\nLine two,\ttabbed; 2 < 3.", "category": "kitchen" });
    assert_eq!(
        put(&s, "merchant-1", "/products/TEXT-01", fine)
            .await
            .status,
        200
    );
    for currency in ["XXX", "XTS", "ABC", "eur"] {
        let r = put(
            &s,
            "merchant-1",
            "/products/TEXT-01/price",
            json!({ "amount_cents": 100, "currency": currency }),
        )
        .await;
        assert_eq!(r.status, 422, "{currency}");
        assert_eq!(r.json()["field"], "currency");
    }
    assert_eq!(
        put(&s, "merchant-1", "/products/TEXT-01/price", price(100))
            .await
            .status,
        200
    );
}
