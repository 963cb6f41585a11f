//! `orders-api`: `POST /orders` places an order (idempotent, emits `order.placed`);
//! `GET /orders/{id}` shows it to its customer or an operator; `GET /orders` lists a customer's
//! orders, newest first; `POST /orders/{id}/cancel` cancels one for its customer (or an
//! operator) while nothing has shipped, through the saga's own transition table (stock back
//! on sale, a capture refunded). Its schedule trigger sweeps the
//! outbox for messages a crashed request left behind.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bazaar_contracts::items::{Line, validate_lines};
use bazaar_contracts::orders::CancellationReason;
use bazaar_contracts::orders::OrderPlaced;
use bazaar_contracts::{Actor, Role};
use bazaar_orders::keys::OrderRef;
use bazaar_orders::{Order, PriceCopy, SagaInput, Status};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Condition, Key, parse, record};
use bazaar_platform::schedule::OutboxSweeper;
use bazaar_platform::settings::Env;
use bazaar_platform::{Deps, Function, SettingsError, Work};
use chrono::Duration;
use http::Method;
use serde::Deserialize;
use serde_json::json;

/// The default time an order has to reach a final state (configurable with
/// `ORDER_DEADLINE_SECONDS`).
pub const DEFAULT_DEADLINE: Duration = Duration::minutes(15);

/// The key of an order's record.
pub fn order_key(order_id: &str) -> Key {
    bazaar_orders::keys::order(order_id).into()
}

/// Stores orders' copy of a sku's published price (what `orders-prices` keeps; tools and
/// tests seed it with this).
pub async fn store_price_copy(
    table: &dyn bazaar_platform::ports::Table,
    copy: &PriceCopy,
) -> Result<(), bazaar_platform::HandlerError> {
    let key: Key = bazaar_orders::keys::price(&copy.sku).into();
    table.put(record(&key, copy), None).await?;
    Ok(())
}

/// Builds the function with its triggers.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let api = Api::new(deps.clone())
        .route(
            Method::POST,
            "/orders",
            Idempotency::Required,
            Arc::new(PlaceOrder(deps.settings()?)),
        )
        .route(
            Method::GET,
            "/orders/{id}",
            Idempotency::None,
            Arc::new(GetOrder),
        )
        .route(
            Method::GET,
            "/orders",
            Idempotency::None,
            Arc::new(ListOrders),
        )
        .route(
            Method::POST,
            "/orders/{id}/cancel",
            Idempotency::None,
            Arc::new(CancelOrder),
        );
    Ok(Function::new(deps)
        .http(api)
        .schedule(Arc::new(OutboxSweeper)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceOrderBody {
    items: Vec<Line>,
    payment: Payment,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payment {
    token: String,
}

/// What `orders-api` is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long an order has to reach a final state (`ORDER_DEADLINE_SECONDS`, 60 s to a
    /// week, as the template's parameter allows; 15 minutes when unset).
    pub deadline: Duration,
}

impl bazaar_platform::Settings for Settings {
    fn read(env: &Env<'_>) -> Result<Settings, SettingsError> {
        Ok(Settings {
            deadline: env.seconds_or("ORDER_DEADLINE_SECONDS", 60..=604_800, DEFAULT_DEADLINE)?,
        })
    }
}

/// `POST /orders`.
struct PlaceOrder(Settings);

#[async_trait]
impl Route for PlaceOrder {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = request.actor()?;
        if !actor.has_role(Role::Customer) {
            return Err(ApiError::forbidden("only customers place orders"));
        }
        let body: PlaceOrderBody = request.json()?;
        validate_lines("items", &body.items)
            .map_err(|v| ApiError::unprocessable(Some("items"), v.0))?;
        let token = body.payment.token.trim();
        if token.is_empty() || token.len() > 64 {
            return Err(ApiError::unprocessable(
                Some("payment.token"),
                "payment.token must be 1 to 64 characters",
            ));
        }
        let deadline_seconds = self.0.deadline;
        // Priced from orders' own copy of the published prices, never by asking catalog.
        let mut unit_prices = Vec::with_capacity(body.items.len());
        for (i, line) in body.items.iter().enumerate() {
            let copy: Option<PriceCopy> = work
                .table()?
                .get_as(&bazaar_orders::keys::price(&line.sku).into())
                .await?;
            match copy.and_then(|c| c.price) {
                Some(price) => unit_prices.push(price),
                None => {
                    return Err(ApiError::unprocessable(
                        Some(&format!("items[{i}].sku")),
                        format!("{} is not for sale (no published listing)", line.sku),
                    ));
                }
            }
        }
        let now = work.now();
        let mut order = Order::place(
            work.new_id(),
            actor.subject.clone(),
            body.items,
            token.to_string(),
            now,
            now + deadline_seconds,
        )
        .priced(unit_prices)
        .map_err(|e| ApiError::unprocessable(Some("items"), e.to_string()))?;
        // The order's flow is called by its id: `bazaar trace <order id>` finds it, and its
        // later steps join it.
        work.name_flow(order.order_id.clone());
        order.flow = Some(work.flow());
        work.put(
            record(&order_key(&order.order_id), &order),
            Some(Condition::NotExists),
        );
        // The customer's list of orders (GET /orders).
        let entry = OrderRef {
            order_id: order.order_id.clone(),
            flow: None,
        };
        work.put(
            record(
                &Key::new(
                    customer_orders(&order.customer),
                    format!(
                        "{}#{}",
                        bazaar_orders::keys::moment(order.placed_at),
                        order.order_id
                    ),
                ),
                &entry,
            ),
            None,
        );
        // The deadline entry lets orders-timeouts find the order when its time is up.
        let deadline_key: Key =
            bazaar_orders::keys::deadline(order.deadline, &order.order_id).into();
        work.put(
            record(
                &deadline_key,
                &OrderRef {
                    flow: order.flow.clone(),
                    ..entry
                },
            ),
            None,
        );
        work.send(&OrderPlaced {
            order_id: order.order_id.clone(),
            customer: order.customer.clone(),
            items: order.items.clone(),
            deadline: Some(order.deadline),
            source: None,
        })?;
        Ok(Response::json(
            202,
            json!({ "order_id": order.order_id, "status": Status::Pending, "total": order.total }),
        ))
    }
}

/// The order of the `{id}` path parameter, for a customer (its own) or an operator (any):
/// 403 for other roles, and 404 when it does not exist or is another customer's (as far as
/// the caller can tell, it does not exist).
async fn visible_order(request: &Request, work: &Work<'_>) -> Result<(Actor, Order), ApiError> {
    let actor = request.actor_with_role(&[Role::Customer, Role::Operator])?;
    let id = request.param("id");
    let not_found = || ApiError::not_found(format!("no order {id}"));
    let Some(item) = work.table()?.get(&order_key(id)).await? else {
        return Err(not_found());
    };
    let order: Order = parse(item)?;
    if !order.visible_to(&actor.subject, actor.has_role(Role::Operator)) {
        return Err(not_found());
    }
    Ok((actor, order))
}

/// `GET /orders/{id}`.
struct GetOrder;

#[async_trait]
impl Route for GetOrder {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let (_, order) = visible_order(request, work).await?;
        Ok(Response::json(200, view(&order)))
    }
}

/// `POST /orders/{id}/cancel`: the customer changes its mind. Until the order is confirmed,
/// cancelling releases its stock and a charge still in flight is refunded when its capture
/// arrives; a confirmed order's units go back on sale and its capture is refunded now. Asking
/// again answers the cancelled order (200); an order cancelled for another reason, or one of
/// whose merchants has shipped, is 409 with the reason. A channel's order is rejected at its channel while Bazaar
/// has not accepted it, and withdrawn there by its broker once accepted (nothing is charged
/// here: its buyer paid the channel).
struct CancelOrder;

#[async_trait]
impl Route for CancelOrder {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let (actor, order) = visible_order(request, work).await?;
        let id = &order.order_id;
        match (order.status, order.cancel_reason) {
            (Status::Cancelled, Some(CancellationReason::Customer)) => {
                return Ok(Response::json(200, view(&order)));
            }
            (Status::Cancelled, reason) => {
                let why = reason.map_or_else(|| "unknown".into(), wire_name);
                return Err(ApiError::conflict(format!(
                    "order {id} is already cancelled (reason: {why})"
                )));
            }
            (status, _) if status.has_shipped() => {
                return Err(ApiError::conflict(format!(
                    "order {id} is {}: a merchant has shipped it, so it can no longer be cancelled",
                    wire_name(status)
                )));
            }
            // A channel's order has no payment here: its buyer paid the channel.
            (Status::Confirmed, _) if order.payment_id.is_none() && order.source.is_none() => {
                return Err(ApiError::conflict(format!(
                    "order {id} was confirmed before payments were kept on orders: an operator must refund it with the provider"
                )));
            }
            _ => {}
        }
        let refund = order.refund_on_cancel();
        orders_saga::transition(work, &order, SagaInput::CustomerCancelled, None)?;
        if let Some(refund) = refund {
            work.send(&refund)?;
        }
        tracing::info!(order_id = %order.order_id, by = %actor.subject, from = ?order.status, "cancelled by request");
        let mut cancelled = order;
        cancelled.status = Status::Cancelled;
        cancelled.cancel_reason = Some(CancellationReason::Customer);
        Ok(Response::json(200, view(&cancelled)))
    }
}

/// A status or reason as the API and the events name it (its serde name), for messages.
fn wire_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// An order as callers see it.
fn view(order: &Order) -> serde_json::Value {
    let mut view = json!({
        "order_id": order.order_id,
        "customer": order.customer,
        "status": order.status,
        "cancel_reason": order.cancel_reason,
        "items": order.items,
        "unit_prices": order.unit_prices,
        "total": order.total,
        "placed_at": order.placed_at,
        "deadline": order.deadline,
    });
    // Only a channel's order has a source (and only operators see those).
    if let Some(source) = &order.source {
        view["source"] = json!(source);
    }
    view
}

/// The partition listing a customer's orders, newest last (sort key: placing time, then id).
fn customer_orders(customer: &str) -> String {
    format!("CUSTOMER#{customer}")
}

/// The position a `cursor` stands for (an opaque, URL-safe encoding of a sort key).
fn cursor_of(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(c) = request.query.get("cursor").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    B64.decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(Some("cursor"), "not a cursor of this list"))
}

/// Orders per page of `GET /orders` unless `limit` says.
pub const DEFAULT_PAGE: u32 = 20;

/// `GET /orders[?customer=&limit=&cursor=]`: a customer's own orders, newest first; an
/// operator names the customer.
struct ListOrders;

#[async_trait]
impl Route for ListOrders {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = request.actor_with_role(&[Role::Customer, Role::Operator])?;
        let customer = match request.query.get("customer") {
            Some(c) if actor.has_role(Role::Operator) => c.clone(),
            // A customer asking for someone else's list gets their own: nothing to probe.
            _ if actor.has_role(Role::Customer) => actor.subject.clone(),
            _ => {
                return Err(ApiError::bad_request(
                    Some("customer"),
                    "operators name the customer: GET /orders?customer=<subject>",
                ));
            }
        };
        let limit = match request.query.get("limit") {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ApiError::bad_request(Some("limit"), "limit must be 1 to 100"))?,
        };
        let mut query = bazaar_platform::item::Query::partition(customer_orders(&customer))
            .limit(limit)
            .start_after(cursor_of(request)?);
        query.forward = false;
        let table = work.table()?;
        let page = table.query(query).await?;
        let mut orders = Vec::with_capacity(page.items.len());
        for entry in &page.items {
            let entry: OrderRef = parse(entry.clone())?;
            if let Some(item) = table.get(&order_key(&entry.order_id)).await? {
                orders.push(view(&parse::<Order>(item)?));
            }
        }
        Ok(Response::json(
            200,
            json!({ "orders": orders, "next": page.last_sk.map(|sk| B64.encode(sk)) }),
        ))
    }
}
