//! `fulfilment-api`: merchants see and ship their shares of orders. `GET /fulfilments` lists a
//! merchant's own fulfilments (oldest first, `?status=` to filter; an operator names the
//! merchant), `GET /fulfilments/{id}` shows one to its merchant, the order's customer or an
//! operator (404 for anyone else: as far as they can tell it does not exist), and
//! `POST /fulfilments/{id}/ship` hands it to a carrier with a tracking code (its merchant
//! only). Shipping goes through the worker's [`fulfilment_worker::apply`], the one place
//! fulfilments change, so it announces `fulfilment.shipped` with where the whole order stands.
//! Its schedule trigger sweeps the outbox for messages a crashed request left behind.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bazaar_contracts::fulfilment::validate_parcel;
use bazaar_contracts::{Actor, Role};
use bazaar_fulfilment::keys::FulfilmentRef;
use bazaar_fulfilment::{Fulfilment, Input, OrderFulfilments, Status};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Query, parse};
use bazaar_platform::schedule::OutboxSweeper;
use bazaar_platform::{Deps, Function, SettingsError, Work};
use fulfilment_worker::{Applied, Parcel};
use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// Builds the function with its triggers.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let api = Api::new(deps.clone())
        .route(
            Method::GET,
            "/fulfilments",
            Idempotency::None,
            Arc::new(ListFulfilments),
        )
        .route(
            Method::GET,
            "/fulfilments/{id}",
            Idempotency::None,
            Arc::new(GetFulfilment),
        )
        .route(
            Method::POST,
            "/fulfilments/{id}/ship",
            Idempotency::None,
            Arc::new(Ship),
        );
    Ok(Function::new(deps)
        .http(api)
        .schedule(Arc::new(OutboxSweeper)))
}

/// A fulfilment as callers see it.
fn view(order: &OrderFulfilments, f: &Fulfilment) -> Value {
    json!({
        "fulfilment_id": f.fulfilment_id,
        "order_id": order.order_id,
        "merchant": f.merchant,
        "status": f.status,
        "lines": f.lines,
        "carrier": f.carrier,
        "tracking_code": f.tracking_code,
        "shipped_at": f.shipped_at,
        "updated_at": f.updated_at,
    })
}

/// The fulfilment of the `{id}` path parameter with its order's record, when `actor` may see
/// it: its merchant, the order's customer or an operator. Anyone else gets the same 404 as for
/// a fulfilment that does not exist.
async fn visible(
    request: &Request,
    work: &Work<'_>,
    actor: &Actor,
) -> Result<(OrderFulfilments, Fulfilment), ApiError> {
    let id = request.param("id");
    let not_found = || ApiError::not_found(format!("no fulfilment {id}"));
    if bazaar_contracts::fulfilment::validate_fulfilment_id(id).is_err() {
        return Err(not_found());
    }
    let Some(order) = fulfilment_worker::load_fulfilment(work.table()?, id).await? else {
        return Err(not_found());
    };
    let Some(f) = order.get(id).cloned() else {
        return Err(not_found());
    };
    let allowed = actor.has_role(Role::Operator)
        || (actor.has_role(Role::Merchant) && f.merchant == actor.subject)
        || (actor.has_role(Role::Customer) && order.customer == actor.subject);
    if !allowed {
        return Err(not_found());
    }
    Ok((order, f))
}

/// `GET /fulfilments/{id}`.
struct GetFulfilment;

#[async_trait]
impl Route for GetFulfilment {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = request.actor_with_role(&[Role::Merchant, Role::Customer, Role::Operator])?;
        let (order, f) = visible(request, work, &actor).await?;
        Ok(Response::json(200, view(&order, &f)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipBody {
    carrier: String,
    tracking_code: String,
}

/// `POST /fulfilments/{id}/ship`.
struct Ship;

#[async_trait]
impl Route for Ship {
    /// Asking again with the same carrier and tracking code answers the shipped fulfilment
    /// (200): a merchant's retry after a lost answer is not an error. Another tracking code
    /// for a shipped fulfilment, a code already used for another parcel, or a cancelled order
    /// is 409 with the reason.
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = request.actor_with_role(&[Role::Merchant])?;
        let (order, f) = visible(request, work, &actor).await?;
        let body: ShipBody = request.json()?;
        let tracking_code = body.tracking_code.trim().to_string();
        validate_parcel(&body.carrier, &tracking_code).map_err(|v| {
            let field = if v.0.starts_with("carrier") {
                "carrier"
            } else {
                "tracking_code"
            };
            ApiError::unprocessable(Some(field), v.0)
        })?;
        let parcel = Parcel {
            carrier: body.carrier,
            tracking_code,
        };
        if f.status.has_shipped()
            && f.carrier.as_deref() == Some(parcel.carrier.as_str())
            && f.tracking_code.as_deref() == Some(parcel.tracking_code.as_str())
        {
            return Ok(Response::json(200, view(&order, &f)));
        }
        let used: Option<FulfilmentRef> = work
            .table()?
            .get_as(&bazaar_fulfilment::keys::parcel(&parcel.carrier, &parcel.tracking_code).into())
            .await?;
        if used.is_some() {
            return Err(ApiError::conflict(format!(
                "{} tracking code {} was used for another parcel",
                parcel.carrier, parcel.tracking_code
            )));
        }
        match fulfilment_worker::apply(work, &order, &f.fulfilment_id, Input::Ship, Some(&parcel))?
        {
            Applied::Moved(shipped) => {
                tracing::info!(fulfilment_id = %f.fulfilment_id, order_id = %order.order_id, merchant = %actor.subject, "shipped");
                Ok(Response::json(200, view(&order, &shipped)))
            }
            Applied::Refused(why) | Applied::Ignored(why) => Err(ApiError::conflict(format!(
                "fulfilment {} cannot ship: {why}",
                f.fulfilment_id
            ))),
        }
    }
}

/// Fulfilments per page of `GET /fulfilments` unless `limit` says.
pub const DEFAULT_PAGE: usize = 20;
/// The most a page holds.
pub const MAX_PAGE: usize = 100;
/// List entries read per request at most, so that a filter matching little cannot make one
/// request read a merchant's whole history: the answer's `next` continues from there.
const MAX_READ: usize = 500;

/// `GET /fulfilments[?status=&merchant=&limit=&cursor=]`.
struct ListFulfilments;

#[async_trait]
impl Route for ListFulfilments {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = request.actor_with_role(&[Role::Merchant, Role::Operator])?;
        let merchant = match request.query.get("merchant") {
            Some(m) if actor.has_role(Role::Operator) => m.clone(),
            // A merchant naming another merchant gets its own list: nothing to probe.
            _ if actor.has_role(Role::Merchant) => actor.subject.clone(),
            _ => {
                return Err(ApiError::bad_request(
                    Some("merchant"),
                    "operators name the merchant: GET /fulfilments?merchant=<subject>",
                ));
            }
        };
        let status = match request.query.get("status").map(String::as_str) {
            None => None,
            Some(s) => Some(
                Status::ALL
                    .into_iter()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            Some("status"),
                            "status must be open, shipped, in_transit, delivered, returned or cancelled",
                        )
                    })?,
            ),
        };
        let limit = match request.query.get("limit") {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| ApiError::bad_request(Some("limit"), "limit must be 1 to 100"))?,
        };
        let cursor = match request.query.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(
                B64.decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(Some("cursor"), "not a cursor of this list")
                    })?,
            ),
        };
        let table = work.table()?;
        let mut found = Vec::new();
        let mut after = cursor;
        let mut read = 0;
        let mut more = true;
        while found.len() < limit && read < MAX_READ && more {
            let page_size = (limit - found.len()).max(10).min(MAX_READ - read);
            let query = Query::partition(bazaar_fulfilment::keys::merchant(&merchant))
                .limit(u32::try_from(page_size).unwrap_or(10))
                .start_after(after.clone());
            let page = table.query(query).await?;
            more = page.last_sk.is_some();
            for entry in page.items {
                read += 1;
                let sk = entry.get("sk").and_then(Value::as_str).map(String::from);
                let pointer: FulfilmentRef = parse(entry)?;
                if let Some(order) = fulfilment_worker::load(table, &pointer.order_id).await?
                    && let Some(f) = order.get(&pointer.fulfilment_id)
                    && status.is_none_or(|s| s == f.status)
                {
                    found.push(view(&order, f));
                }
                after = sk;
                if found.len() == limit {
                    more = true;
                    break;
                }
            }
        }
        let next = if more {
            after.map(|sk| B64.encode(sk))
        } else {
            None
        };
        Ok(Response::json(
            200,
            json!({ "fulfilments": found, "next": next }),
        ))
    }
}
