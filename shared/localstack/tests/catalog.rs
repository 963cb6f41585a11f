//! The catalog pipeline on the local stack: three truths (master data, price, stock) merged
//! into listings, and the search index derived from them.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bazaar_localstack::gateway::HttpRequest;
use common::{TestStack, bearer, stack};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

async fn put(s: &TestStack, merchant: &str, path: &str, body: Value) {
    let r = s
        .stack
        .http(
            HttpRequest::json("PUT", path, &body)
                .header("authorization", &bearer(merchant, "merchant")),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "PUT {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

fn master(title: &str, description: &str, category: &str) -> Value {
    json!({ "title": title, "description": description, "category": category, "images": ["https://img.example/1.jpg"] })
}

async fn search(s: &TestStack, query: &str) -> Value {
    let r = s
        .stack
        .http(HttpRequest::get(&format!("/search?{query}")))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Every sku a search returns, following `next` to the end.
async fn search_all(s: &TestStack, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = search(s, &format!("{query}&limit={limit}&cursor={cursor}")).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        out.extend(items.iter().map(|i| i["sku"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => {
                assert!(!items.is_empty(), "a page with a next cursor is not empty");
                cursor = next.to_string();
            }
            None => return out,
        }
    }
}

#[tokio::test]
async fn five_hundred_products_updated_out_of_order_index_exactly_the_complete_ones() {
    let s = stack();
    s.stack.engine().set_chaos_at_most(2, 500);
    let mut rng = SmallRng::seed_from_u64(500);
    // The final truth of each sku, as the merchants last gave it.
    let mut truth: BTreeMap<String, (Option<Value>, Option<i64>, i64)> = BTreeMap::new();
    for i in 0..500 {
        let sku = format!("SKU-{i:03}");
        let merchant = if i % 2 == 0 {
            "merchant-1"
        } else {
            "merchant-2"
        };
        let (mut m, mut p, mut a) = (None, None, 0);
        // Up to three changes of each truth, interleaved at random; some truths never come.
        let mut steps: Vec<u8> = Vec::new();
        for kind in 0..3u8 {
            let n = match rng.random_range(0..10) {
                0 => 0,
                1..6 => 1,
                _ => rng.random_range(2..=3),
            };
            steps.extend(std::iter::repeat_n(kind, n));
        }
        for k in (1..steps.len()).rev() {
            steps.swap(k, rng.random_range(0..=k));
        }
        for step in steps {
            match step {
                0 => {
                    let body = master(
                        &format!("Product {i} v{}", rng.random_range(0..100)),
                        "Made to last.",
                        ["home", "garden", "toys"][i % 3],
                    );
                    put(&s, merchant, &format!("/products/{sku}"), body.clone()).await;
                    m = Some(body);
                }
                1 => {
                    let cents = rng.random_range(100..10_000);
                    put(
                        &s,
                        merchant,
                        &format!("/products/{sku}/price"),
                        json!({ "amount_cents": cents, "currency": "EUR" }),
                    )
                    .await;
                    p = Some(cents);
                }
                _ => {
                    let available = rng.random_range(0..4);
                    put(
                        &s,
                        merchant,
                        &format!("/inventory/{sku}"),
                        json!({ "available": available }),
                    )
                    .await;
                    a = available;
                }
            }
        }
        truth.insert(sku, (m, p, a));
    }
    s.stack.settle().await;

    let index =
        search_indexer::entries(s.stack.table_of("SearchIndexerFunction").unwrap().as_ref())
            .await
            .unwrap();
    let indexed: BTreeMap<String, bazaar_contracts::catalog::Listing> = index
        .into_iter()
        .filter_map(|e| e.listing.map(|l| (e.sku.to_string(), l)))
        .collect();
    let complete: BTreeSet<&String> = truth
        .iter()
        .filter(|(_, (m, p, a))| m.is_some() && p.is_some() && *a > 0)
        .map(|(sku, _)| sku)
        .collect();
    assert_eq!(
        indexed.keys().collect::<BTreeSet<_>>(),
        complete,
        "exactly the complete products are indexed"
    );
    for (sku, listing) in &indexed {
        let (m, p, _) = &truth[sku];
        let m = m.as_ref().unwrap();
        assert_eq!(
            listing.master.title, m["title"],
            "{sku}: the newest master data"
        );
        assert_eq!(
            listing.price.amount_cents,
            p.unwrap(),
            "{sku}: the newest price"
        );
    }
    assert!(
        complete.len() > 100 && complete.len() < 500,
        "a real mix: {}",
        complete.len()
    );

    let found: BTreeSet<String> = search_all(&s, "q=", 100).await.into_iter().collect();
    assert_eq!(
        found.iter().collect::<BTreeSet<_>>(),
        complete,
        "exactly the complete products are searchable"
    );
    for dlq in ["CatalogMergerDLQ", "SearchIndexerDLQ", "InventoryWorkerDLQ"] {
        assert!(
            s.stack.engine().peek(&s.queue(dlq)).unwrap().is_empty(),
            "{dlq} stays empty"
        );
    }
}

#[tokio::test]
async fn search_matches_words_case_insensitively_filters_by_category_and_pages_exactly_once() {
    let s = stack();
    for i in 0..30 {
        let sku = format!("MUG-{i:02}");
        let (title, description) = if i % 2 == 0 {
            (format!("Red Mug {i}"), "Stoneware, dishwasher safe.")
        } else {
            (format!("Blue mug {i}"), "A CERAMIC cup for tea.")
        };
        put(
            &s,
            "merchant-1",
            &format!("/products/{sku}"),
            master(&title, description, "kitchen"),
        )
        .await;
        put(
            &s,
            "merchant-1",
            &format!("/products/{sku}/price"),
            json!({ "amount_cents": 900, "currency": "EUR" }),
        )
        .await;
        put(
            &s,
            "merchant-1",
            &format!("/inventory/{sku}"),
            json!({ "available": 5 }),
        )
        .await;
    }
    put(
        &s,
        "merchant-2",
        "/products/LAMP-01",
        master("Red lamp", "Ceramic base.", "lighting"),
    )
    .await;
    put(
        &s,
        "merchant-2",
        "/products/LAMP-01/price",
        json!({ "amount_cents": 4500, "currency": "EUR" }),
    )
    .await;
    put(
        &s,
        "merchant-2",
        "/inventory/LAMP-01",
        json!({ "available": 2 }),
    )
    .await;
    // Complete but for its stock: never found.
    put(
        &s,
        "merchant-2",
        "/products/LAMP-02",
        master("Red lamp two", "", "lighting"),
    )
    .await;
    put(
        &s,
        "merchant-2",
        "/products/LAMP-02/price",
        json!({ "amount_cents": 4500, "currency": "EUR" }),
    )
    .await;
    s.stack.settle().await;

    let all = search_all(&s, "q=", 7).await;
    assert_eq!(all.len(), 31, "every published listing once: {all:?}");
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        31,
        "no duplicates across pages"
    );
    assert_eq!(
        search_all(&s, "q=MUG", 4).await.len(),
        30,
        "case-insensitive title words"
    );
    assert_eq!(
        search_all(&s, "q=ceramic", 100).await.len(),
        16,
        "description words too"
    );
    assert_eq!(
        search_all(&s, "q=red+ceramic", 100).await,
        ["LAMP-01"],
        "every word must match"
    );
    assert_eq!(
        search_all(&s, "q=red&category=lighting", 100).await,
        ["LAMP-01"]
    );
    assert_eq!(search_all(&s, "q=red&category=kitchen", 5).await.len(), 15);
    assert!(
        search_all(&s, "q=mu", 100).await.is_empty(),
        "whole words only"
    );
    let first = search(&s, "q=lamp").await;
    assert_eq!(
        first["items"][0]["price"],
        json!({ "amount_cents": 4500, "currency": "EUR" })
    );
    assert_eq!(first["next"], Value::Null);

    let bad = s.stack.http(HttpRequest::get("/search?limit=0")).await;
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (400, Some("limit"))
    );
    let product = s
        .stack
        .http(HttpRequest::get("/products/LAMP-02"))
        .await
        .json();
    assert_eq!(
        (
            product["published"].as_bool(),
            product["price"]["amount_cents"].as_i64()
        ),
        (Some(false), Some(4500))
    );
    let listed = s
        .stack
        .http(HttpRequest::get("/products/LAMP-01"))
        .await
        .json();
    assert_eq!(
        (listed["published"].as_bool(), listed["available"].as_i64()),
        (Some(true), Some(2))
    );
    assert_eq!(
        s.stack
            .http(HttpRequest::get("/products/NOPE"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn products_are_merchant_owned_and_validated() {
    let s = stack();
    put(
        &s,
        "merchant-1",
        "/products/MUG-01",
        master("Mug", "", "kitchen"),
    )
    .await;
    let as_other = |path: &str, body: Value, who: &str, role: &str| {
        HttpRequest::json("PUT", path, &body).header("authorization", &bearer(who, role))
    };
    let r = s
        .stack
        .http(as_other(
            "/products/MUG-01",
            master("Mine", "", "kitchen"),
            "merchant-2",
            "merchant",
        ))
        .await;
    assert_eq!(r.status, 404, "another merchant's product is not found");
    let r = s
        .stack
        .http(as_other(
            "/products/MUG-01/price",
            json!({ "amount_cents": 1, "currency": "EUR" }),
            "merchant-2",
            "merchant",
        ))
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .stack
        .http(as_other(
            "/products/MUG-02",
            master("Mug", "", "kitchen"),
            "customer-1",
            "customer",
        ))
        .await;
    assert_eq!(r.status, 403, "customers do not describe products");
    let r = s
        .stack
        .http(HttpRequest::json(
            "PUT",
            "/products/MUG-02",
            &master("Mug", "", "kitchen"),
        ))
        .await;
    assert_eq!(r.status, 401);
    for (body, field) in [
        (master("", "", "kitchen"), "title"),
        (master("Mug", "", "Kitchen!"), "category"),
        (
            json!({ "title": "Mug", "category": "kitchen", "images": ["http://insecure"] }),
            "images",
        ),
    ] {
        let r = s
            .stack
            .http(as_other("/products/MUG-01", body, "merchant-1", "merchant"))
            .await;
        assert_eq!((r.status, r.json()["field"].as_str()), (422, Some(field)));
    }
    let r = s
        .stack
        .http(as_other(
            "/products/MUG-01/price",
            json!({ "amount_cents": -5, "currency": "EUR" }),
            "merchant-1",
            "merchant",
        ))
        .await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("amount_cents"))
    );
    let r = s
        .stack
        .http(as_other(
            "/products/MUG-01/price",
            json!({ "amount_cents": 5, "currency": "euro" }),
            "merchant-1",
            "merchant",
        ))
        .await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("currency"))
    );
}

#[tokio::test]
async fn an_order_is_priced_at_the_price_published_before_it() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let before = s
        .placed(
            "customer-1",
            "a",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
        )
        .await;
    s.set_price("MUG-01", 1250).await;
    // The new price is announced, but orders only learn it when the announcement arrives.
    let racing = s
        .placed(
            "customer-1",
            "b",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    s.stack.settle().await;
    let after = s
        .placed(
            "customer-1",
            "c",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
        )
        .await;
    s.stack.settle().await;

    let total = |o: Value| o["total"].clone();
    assert_eq!(
        total(s.order(&before).await),
        json!({ "amount_cents": 2000, "currency": "EUR" })
    );
    assert_eq!(
        total(s.order(&racing).await),
        json!({ "amount_cents": 1000, "currency": "EUR" })
    );
    assert_eq!(
        total(s.order(&after).await),
        json!({ "amount_cents": 2500, "currency": "EUR" })
    );
    let charged: BTreeMap<String, Option<i64>> = s
        .provider()
        .ledger()
        .into_iter()
        .map(|e| (e.reference, e.amount_cents))
        .collect();
    assert_eq!(
        charged[&before],
        Some(2000),
        "the customer pays what the order says"
    );
    assert_eq!(charged[&after], Some(2500));
    assert_eq!(s.order(&after).await["status"], "confirmed");
}

#[tokio::test]
async fn an_order_for_a_sku_that_is_not_for_sale_is_422() {
    let s = stack();
    s.set_stock("MUG-01", 1).await;
    // Described and priced, never stocked: not published.
    put(
        &s,
        "merchant-1",
        "/products/LAMP-01",
        master("Lamp", "", "lighting"),
    )
    .await;
    put(
        &s,
        "merchant-1",
        "/products/LAMP-01/price",
        json!({ "amount_cents": 100, "currency": "EUR" }),
    )
    .await;
    s.stack.settle().await;
    let r = s
        .place(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }, { "sku": "LAMP-01", "quantity": 1 }]),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("items[1].sku"))
    );
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("LAMP-01 is not for sale")
    );
    // Sold out: withdrawn, and orders refuse it once they know.
    s.placed(
        "customer-1",
        "k2",
        json!([{ "sku": "MUG-01", "quantity": 1 }]),
    )
    .await;
    s.stack.settle().await;
    let r = s
        .place(
            "customer-1",
            "k3",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
}
