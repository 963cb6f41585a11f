//! `inventory-api`: `PUT /inventory/{sku}` sets how many units of a sku can be reserved. The
//! first merchant to describe, price or stock a sku owns it, for inventory and catalog alike
//! (one registry, `TABLE_NAME_REGISTRY`, decides); for other merchants it does not exist (404,
//! as catalog answers them), and callers who are not merchants get 403. Its schedule trigger
//! sweeps the outbox.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::Role;
use bazaar_contracts::Sku;
use bazaar_contracts::catalog::StockUpdated;
use bazaar_inventory::Stock;
use bazaar_platform::claims;
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Key, Update, unchanged};
use bazaar_platform::schedule::OutboxSweeper;
use bazaar_platform::{Deps, Function, SettingsError, Work};
use http::Method;
use serde::Deserialize;
use serde_json::json;

/// The most units one sku may hold.
pub const MAX_AVAILABLE: i64 = 1_000_000_000;

/// The key of a sku's stock record.
pub fn stock_key(sku: &Sku) -> Key {
    bazaar_inventory::keys::stock(sku).into()
}

/// Builds the function with its triggers.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let api = Api::new(deps.clone()).route(
        Method::PUT,
        "/inventory/{sku}",
        Idempotency::Optional,
        Arc::new(SetStock),
    );
    Ok(Function::new(deps)
        .http(api)
        .schedule(Arc::new(OutboxSweeper)))
}

/// Who owns `sku`: the registry's answer; else the owner the stock record named before the
/// registry (`current`), or else `caller`, claimed in the registry for good.
async fn owner(
    work: &Work<'_>,
    sku: &Sku,
    current: Option<&Stock>,
    caller: &str,
) -> Result<String, ApiError> {
    let registry = work.deps().table_named(bazaar_catalog::keys::REGISTRY)?;
    let reg_key: Key = bazaar_catalog::keys::registry(sku).into();
    if let Some(owner) = claims::owner(registry, &reg_key).await? {
        return Ok(owner);
    }
    let claimant = bazaar_catalog::claimant(current.map(|s| s.owner.as_str()), caller);
    Ok(claims::claim(
        registry,
        &reg_key,
        claimant,
        &work.deps().function,
        work.now(),
    )
    .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStockBody {
    available: i64,
}

/// `PUT /inventory/{sku}`.
struct SetStock;

#[async_trait]
impl Route for SetStock {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = request.actor()?;
        if !actor.has_role(Role::Merchant) {
            return Err(ApiError::forbidden("only merchants set stock"));
        }
        let sku = Sku::parse(request.param("sku"))
            .map_err(|v| ApiError::bad_request(Some("sku"), v.0))?;
        let body: SetStockBody = request.json()?;
        if !(0..=MAX_AVAILABLE).contains(&body.available) {
            return Err(ApiError::unprocessable(
                Some("available"),
                format!("available must be 0 to {MAX_AVAILABLE}"),
            ));
        }
        let key = stock_key(&sku);
        let current: Option<Stock> = work.table()?.get_as(&key).await?;
        let owner = owner(work, &sku, current.as_ref(), &actor.subject).await?;
        if bazaar_catalog::Standing::of(&owner, &actor.subject)
            == bazaar_catalog::Standing::Stranger
        {
            // Another merchant's sku does not exist, as far as this caller can tell.
            return Err(ApiError::not_found(format!("no sku {sku} of yours")));
        }
        let read_version = current.as_ref().map(|s| s.version).unwrap_or(0);
        // The registry decides the owner; the stock record's copy is written with every
        // change (it names the merchant in `stock.updated`), guarded by the version read.
        let unchanged = unchanged(current.as_ref().map(|s| s.version));
        work.update(
            key,
            Update::new()
                .set("sku", sku.as_str())
                .set("owner", actor.subject.as_str())
                .set("available", body.available)
                .add("reserved", 0)
                .add("committed", 0)
                .set("version", read_version + 1),
            Some(unchanged),
        );
        work.send(&StockUpdated {
            sku: sku.clone(),
            merchant: Some(actor.subject.clone()),
            available: body.available,
            version: read_version + 1,
        })?;
        let reserved = current.map(|s| s.reserved).unwrap_or(0);
        Ok(Response::json(
            200,
            json!({ "sku": sku, "available": body.available, "reserved": reserved }),
        ))
    }
}
