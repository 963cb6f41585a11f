//! The local stack on the repository's template, in memory, on a simulated clock.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::telemetry::CollectedMetrics;
use serde_json::{Value, json};

/// `Authorization` header values, minted with the local signing key the stack installs.
pub fn bearer(subject: &str, role: &str) -> String {
    bazaar_embedded::identity::bearer(subject, &[role])
}

pub fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// The names of the functions a queue triggers, from the template.
pub fn consumers() -> Vec<String> {
    let model = StackModel::load_local(&template(), &BTreeMap::new()).expect("the template loads");
    model
        .functions
        .values()
        .filter(|f| f.consumes())
        .map(|f| f.name())
        .collect()
}

/// The names of every function of the template (HTTP, queue-triggered and scheduled).
pub fn functions() -> Vec<String> {
    let model = StackModel::load_local(&template(), &BTreeMap::new()).expect("the template loads");
    model.functions.values().map(|f| f.name()).collect()
}

pub struct TestStack {
    pub stack: Arc<Stack>,
    /// Skus given a catalog entry (master data and a price) by `set_stock`.
    pub catalogued: std::sync::Mutex<std::collections::BTreeSet<String>>,
    pub faults: Arc<ScriptedFaults>,
    pub metrics: Arc<CollectedMetrics>,
}

pub fn stack() -> TestStack {
    stack_with(|_| {})
}

/// [`stack`] with options changed by `configure` (faults, history, chaos, guarantees).
pub fn stack_with(configure: impl FnOnce(&mut StackOptions)) -> TestStack {
    let faults = Arc::new(ScriptedFaults::new());
    let metrics = Arc::new(CollectedMetrics::default());
    let model = StackModel::load_local(&template(), &BTreeMap::new()).expect("the template loads");
    let mut options = StackOptions::simulated(faults.clone(), metrics.clone());
    configure(&mut options);
    let stack = Stack::build(model, options).expect("the stack builds");
    TestStack {
        stack,
        catalogued: Default::default(),
        faults,
        metrics,
    }
}

impl TestStack {
    /// The carrier's callback, signed now with the local stack's carrier secret as the
    /// carrier signs it; the webhook's status.
    pub async fn carrier_says(&self, event_id: &str, code: &str, status: &str) -> u16 {
        let now = bazaar_platform::clock::Clock::now(self.stack.engine().clock().as_ref());
        let body = json!({ "id": event_id, "tracking_code": code, "status": status, "at": now })
            .to_string();
        let signature = bazaar_platform::webhook::sign(
            b"local-carrier-webhook-secret",
            now.timestamp(),
            body.as_bytes(),
        );
        let request = HttpRequest {
            method: "POST".into(),
            path: "/webhooks/carrier".into(),
            body: body.into_bytes(),
            ..Default::default()
        }
        .header("content-type", "application/json")
        .header("x-carrier-signature", &signature);
        self.stack.http(request).await.status
    }

    /// Stocks `sku` (20 units), gives it a category souk takes, lists it on agora and souk,
    /// and waits the two minutes their brokers take to list it.
    pub async fn listed_everywhere(&self, sku: &str) {
        self.set_stock(sku, 20).await;
        // A category souk knows (it refuses others).
        self.merchant_put(
            &format!("/products/{sku}"),
            json!({ "title": format!("Product {sku}"), "description": "For tests.", "category": "kitchen" }),
        )
        .await;
        self.list_on("agora", sku).await;
        self.list_on("souk", sku).await;
        self.stack.run_for(chrono::Duration::minutes(2)).await;
    }

    /// Lists a sku of merchant-1 on a channel (`agora`, `souk`), as merchant-1 asks it.
    pub async fn list_on(&self, channel: &str, sku: &str) {
        let r = self
            .stack
            .http(
                HttpRequest::json(
                    "PUT",
                    &format!("/channels/{channel}/listings/{sku}"),
                    &json!({}),
                )
                .header("authorization", &bearer("merchant-1", "merchant")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    /// The stack's fake payment provider.
    pub fn provider(&self) -> &bazaar_fake_provider::FakeProvider {
        self.stack
            .provider()
            .expect("a simulated stack runs the fake provider")
    }

    /// Takes the payment provider down: charges stay on their queue, orders stay reserved.
    pub fn provider_down(&self) {
        self.provider()
            .set_switches(bazaar_fake_provider::Switches {
                down: true,
                ..Default::default()
            });
    }

    /// Makes a sku orderable: master data and a price of 10.00 EUR the first time (as
    /// merchant-1), then `available` units; waits until the listing reached orders.
    pub async fn set_stock(&self, sku: &str, available: i64) {
        self.set_stock_as("merchant-1", sku, available).await;
    }

    /// [`TestStack::set_stock`] as `merchant`, who owns the sku from then on.
    pub async fn set_stock_as(&self, merchant: &str, sku: &str, available: i64) {
        if self.catalogued.lock().unwrap().insert(sku.to_string()) {
            self.put_as(
                merchant,
                &format!("/products/{sku}"),
                json!({ "title": format!("Product {sku}"), "description": "For tests.", "category": "test" }),
            )
            .await;
            self.put_as(
                merchant,
                &format!("/products/{sku}/price"),
                json!({ "amount_cents": 1000, "currency": "EUR" }),
            )
            .await;
        }
        self.put_as(
            merchant,
            &format!("/inventory/{sku}"),
            json!({ "available": available }),
        )
        .await;
        self.stack.settle().await;
    }

    /// Sets a sku's price (EUR cents), as merchant-1; the change reaches orders asynchronously.
    pub async fn set_price(&self, sku: &str, cents: i64) {
        self.merchant_put(
            &format!("/products/{sku}/price"),
            json!({ "amount_cents": cents, "currency": "EUR" }),
        )
        .await;
    }

    pub async fn merchant_put(&self, path: &str, body: Value) {
        self.put_as("merchant-1", path, body).await;
    }

    /// `PUT path` as `merchant`, which must answer 200.
    pub async fn put_as(&self, merchant: &str, path: &str, body: Value) {
        let r = self
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

    pub async fn place(&self, customer: &str, key: &str, items: Value) -> HttpResponse {
        self.place_paying(customer, key, items, "tok_ok").await
    }

    /// Places an order paid with the given card token.
    pub async fn place_paying(
        &self,
        customer: &str,
        key: &str,
        items: Value,
        token: &str,
    ) -> HttpResponse {
        self.place_as(&bearer(customer, "customer"), key, items, token)
            .await
    }

    /// Places an order with the `Authorization` header `authorization` (a token from a real
    /// sign-in), paid with the card `token`.
    pub async fn place_as(
        &self,
        authorization: &str,
        key: &str,
        items: Value,
        token: &str,
    ) -> HttpResponse {
        let body = json!({ "items": items, "payment": { "token": token } });
        self.stack
            .http(
                HttpRequest::json("POST", "/orders", &body)
                    .header("authorization", authorization)
                    .header("idempotency-key", key),
            )
            .await
    }

    /// Places an order that must be accepted (202); returns its id.
    pub async fn placed(&self, customer: &str, key: &str, items: Value) -> String {
        self.placed_paying(customer, key, items, "tok_ok").await
    }

    /// Places an order paid with `token` that must be accepted (202); returns its id.
    pub async fn placed_paying(
        &self,
        customer: &str,
        key: &str,
        items: Value,
        token: &str,
    ) -> String {
        let r = self.place_paying(customer, key, items, token).await;
        assert_eq!(
            r.status,
            202,
            "placing an order: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["order_id"]
            .as_str()
            .expect("an order id")
            .to_string()
    }

    pub async fn order(&self, id: &str) -> Value {
        let r = self
            .stack
            .http(
                HttpRequest::get(&format!("/orders/{id}"))
                    .header("authorization", &bearer("operator", "operator")),
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "get order {id}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    pub fn queue(&self, logical_id: &str) -> String {
        self.stack
            .name_of(logical_id)
            .unwrap_or_else(|| panic!("no resource {logical_id}"))
    }

    /// The stock record of a sku, read from inventory's table.
    /// Units of a sku sold for good (committed by confirmed orders).
    pub async fn committed(&self, sku: &str) -> i64 {
        let table = self.stack.table_of("InventoryWorkerFunction").unwrap();
        let item = table
            .get(&bazaar_platform::item::Key::new(
                format!("SKU#{sku}"),
                "STOCK",
            ))
            .await
            .unwrap()
            .expect("stock exists");
        item["committed"].as_i64().unwrap_or(0)
    }

    /// What a customer was told, by outcome name in name order (a repeat shows twice).
    pub async fn notified(&self, customer: &str) -> Vec<String> {
        let mut told: Vec<String> = notifier::notifications_of(
            self.stack.table_of("NotifierFunction").unwrap().as_ref(),
            customer,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.outcome.as_str().to_string())
        .collect();
        told.sort();
        told
    }

    /// `(available, reserved)` units of a sku.
    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        let table = self.stack.table_of("InventoryWorkerFunction").unwrap();
        let item = table
            .get(&bazaar_platform::item::Key::new(
                format!("SKU#{sku}"),
                "STOCK",
            ))
            .await
            .unwrap()
            .expect("stock exists");
        (
            item["available"].as_i64().unwrap(),
            item["reserved"].as_i64().unwrap(),
        )
    }
}
