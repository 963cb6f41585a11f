//! agora: items one call at a time, orders pushed by a signed webhook.

use std::collections::BTreeMap;

use bazaar_channels::agora::{
    EventType, Item, ItemPage, ItemView, Notification, Order, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    sign,
};
use bazaar_channels::{ACK_DEADLINE, BuyerListing, ChannelOrderStatus, Purchase};
use chrono::{DateTime, Utc};

use crate::{Call, Delivery, Reply, Switches, WEBHOOK_PATH};

/// The largest page of items.
const MAX_PAGE: usize = 100;

#[derive(Debug, Clone)]
struct Pending {
    due: DateTime<Utc>,
    /// Queue order among calls due at the same time.
    seq: u64,
    delivery: Delivery,
}

#[derive(Debug, Default)]
pub(crate) struct Agora {
    pub(crate) items: BTreeMap<String, ItemView>,
    pub(crate) orders: BTreeMap<String, Order>,
    outbox: Vec<Pending>,
    seq: u64,
}

impl Agora {
    pub(crate) fn listings(&self) -> Vec<BuyerListing> {
        self.items
            .values()
            .map(|v| BuyerListing {
                sku: v.sku.clone(),
                title: v.item.title.clone(),
                price_cents: v.item.price_cents,
                currency: v.item.currency.clone(),
                quantity: v.item.quantity,
                active: v.item.active,
            })
            .collect()
    }

    pub(crate) fn tamper(
        &mut self,
        sku: &str,
        now: DateTime<Utc>,
        edit: impl FnOnce(&mut BuyerListing),
    ) -> bool {
        let Some(view) = self.items.get_mut(sku) else {
            return false;
        };
        let mut l = BuyerListing {
            sku: view.sku.clone(),
            title: view.item.title.clone(),
            price_cents: view.item.price_cents,
            currency: view.item.currency.clone(),
            quantity: view.item.quantity,
            active: view.item.active,
        };
        edit(&mut l);
        view.item.title = l.title;
        view.item.price_cents = l.price_cents;
        view.item.currency = l.currency;
        view.item.quantity = l.quantity;
        view.item.active = l.active;
        view.updated_at = now;
        true
    }

    fn notify(&mut self, kind: EventType, order: &Order, event_id: String, now: DateTime<Utc>) {
        let notification = Notification {
            id: event_id,
            kind,
            created_at: now,
            order: order.clone(),
        };
        let body = serde_json::to_string(&notification).unwrap_or_default();
        self.seq += 1;
        self.outbox.push(Pending {
            due: now,
            seq: self.seq,
            delivery: Delivery {
                path: WEBHOOK_PATH,
                headers: Vec::new(),
                body,
                event_id: notification.id,
            },
        });
    }

    pub(crate) fn buy(
        &mut self,
        purchase: &Purchase,
        id: String,
        event_id: String,
        now: DateTime<Utc>,
    ) -> Result<String, String> {
        let view = self
            .items
            .get_mut(&purchase.sku)
            .filter(|v| v.item.active)
            .ok_or_else(|| format!("{} is not for sale on agora", purchase.sku))?;
        if view.item.quantity < purchase.quantity {
            return Err(format!(
                "only {} of {} left on agora",
                view.item.quantity, purchase.sku
            ));
        }
        view.item.quantity -= purchase.quantity;
        let order = Order {
            id: id.clone(),
            sku: purchase.sku.clone(),
            quantity: purchase.quantity,
            price_cents: view.item.price_cents,
            currency: view.item.currency.clone(),
            status: ChannelOrderStatus::Pending,
            created_at: now,
            answer_by: now + ACK_DEADLINE,
            shipment: None,
        };
        self.notify(EventType::OrderCreated, &order, event_id, now);
        self.orders.insert(id.clone(), order);
        Ok(id)
    }

    /// Gives an order's units back to the listing (rejected or cancelled).
    fn restock(&mut self, sku: &str, quantity: u32) {
        if let Some(v) = self.items.get_mut(sku) {
            v.item.quantity = v.item.quantity.saturating_add(quantity);
        }
    }

    /// Cancels the orders not answered by their deadline, telling the seller.
    pub(crate) fn expire(&mut self, now: DateTime<Utc>) {
        let late: Vec<String> = self
            .orders
            .values()
            .filter(|o| o.status == ChannelOrderStatus::Pending && o.answer_by <= now)
            .map(|o| o.id.clone())
            .collect();
        for id in late {
            let Some(order) = self.orders.get_mut(&id) else {
                continue;
            };
            order.status = ChannelOrderStatus::Cancelled;
            let order = order.clone();
            self.restock(&order.sku, order.quantity);
            let event_id = format!("evt-cancel-{}", order.id);
            self.notify(EventType::OrderCancelled, &order, event_id, now);
        }
    }

    /// The webhook calls due by `now`, signed as they leave.
    pub(crate) fn take_due(
        &mut self,
        now: DateTime<Utc>,
        switches: &Switches,
        secret: &[u8],
    ) -> Vec<Delivery> {
        let (mut due, rest): (Vec<Pending>, Vec<Pending>) =
            self.outbox.drain(..).partition(|p| p.due <= now);
        self.outbox = rest;
        due.sort_by_key(|p| (p.due, p.seq));
        if switches.reorder {
            due.reverse();
        }
        let mut out = Vec::new();
        for p in due {
            let mut d = p.delivery;
            let ts = now.timestamp();
            d.headers = vec![
                (TIMESTAMP_HEADER, ts.to_string()),
                (SIGNATURE_HEADER, sign(secret, ts, d.body.as_bytes())),
            ];
            if switches.duplicate {
                out.push(d.clone());
            }
            out.push(d);
        }
        out
    }

    pub(crate) fn retry(&mut self, delivery: Delivery, at: DateTime<Utc>) {
        self.seq += 1;
        self.outbox.push(Pending {
            due: at,
            seq: self.seq,
            delivery,
        });
    }

    pub(crate) fn next_due(&self) -> Option<DateTime<Utc>> {
        let calls = self.outbox.iter().map(|p| p.due);
        let deadlines = self
            .orders
            .values()
            .filter(|o| o.status == ChannelOrderStatus::Pending)
            .map(|o| o.answer_by);
        calls.chain(deadlines).min()
    }

    /// Records the parcel of an accepted order.
    fn ship(&mut self, id: &str, shipment: bazaar_channels::agora::Shipment) -> Reply {
        let Some(order) = self.orders.get_mut(id) else {
            return Reply::not_found(format!("no order {id}"));
        };
        if order.status != ChannelOrderStatus::Accepted {
            return Reply::error(
                409,
                "order_not_accepted",
                format!("order {id} is {}", order.status.as_str()),
            );
        }
        match &order.shipment {
            Some(s) if *s != shipment => Reply::error(
                409,
                "already_shipped",
                format!("order {id} shipped with {} {}", s.carrier, s.tracking_code),
            ),
            _ => {
                order.shipment = Some(shipment);
                Reply::ok(200, order.clone())
            }
        }
    }

    fn answer(&mut self, id: &str, to: ChannelOrderStatus) -> Reply {
        let Some(order) = self.orders.get_mut(id) else {
            return Reply::not_found(format!("no order {id}"));
        };
        if order.status == to {
            return Reply::ok(200, order.clone());
        }
        // A seller may still withdraw an accepted order it has not sent.
        let withdrawn = order.status == ChannelOrderStatus::Accepted
            && to == ChannelOrderStatus::Rejected
            && order.shipment.is_none();
        if order.status != ChannelOrderStatus::Pending && !withdrawn {
            return Reply::error(
                409,
                "order_closed",
                format!("order {id} is {}", order.status.as_str()),
            );
        }
        order.status = to;
        let order = order.clone();
        if to == ChannelOrderStatus::Rejected {
            self.restock(&order.sku, order.quantity);
        }
        Reply::ok(200, order)
    }
}

/// A partner call to agora, admitted (authorised, under the rate limit).
pub(crate) fn partner(
    a: &mut Agora,
    method: &str,
    rest: &[&str],
    call: &Call,
    now: DateTime<Utc>,
    switches: &Switches,
) -> Reply {
    match (method, rest) {
        ("PUT", ["items", sku]) => {
            let item: Item = match serde_json::from_slice(&call.body) {
                Ok(i) => i,
                Err(e) => return Reply::error(400, "bad_request", format!("item: {e}")),
            };
            if switches.reject.iter().any(|r| r == sku) {
                return Reply::error(422, "invalid_item", "rejected by review");
            }
            if let Some(why) = item.problem() {
                return Reply::error(422, "invalid_item", why);
            }
            let view = ItemView {
                sku: sku.to_string(),
                item,
                updated_at: now,
            };
            a.items.insert(sku.to_string(), view.clone());
            Reply::ok(200, view)
        }
        ("GET", ["items", sku]) => match a.items.get(*sku) {
            Some(v) => Reply::ok(200, v),
            None => Reply::not_found(format!("no item {sku}")),
        },
        ("GET", ["items"]) => {
            let limit = match call.query.get("limit").map(|l| l.parse::<usize>()) {
                None => 50,
                Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
                Some(_) => {
                    return Reply::error(
                        400,
                        "bad_request",
                        format!("limit must be 1 to {MAX_PAGE}"),
                    );
                }
            };
            let after = call.query.get("page").cloned().unwrap_or_default();
            let mut items: Vec<ItemView> = a
                .items
                .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(limit + 1)
                .map(|(_, v)| v.clone())
                .collect();
            let next_page = (items.len() > limit).then(|| {
                items.truncate(limit);
                items.last().map(|v| v.sku.clone()).unwrap_or_default()
            });
            Reply::ok(200, ItemPage { items, next_page })
        }
        ("GET", ["orders", id]) => match a.orders.get(*id) {
            Some(o) => Reply::ok(200, o),
            None => Reply::not_found(format!("no order {id}")),
        },
        ("POST", ["orders", id, "accept"]) => a.answer(id, ChannelOrderStatus::Accepted),
        ("POST", ["orders", id, "reject"]) => a.answer(id, ChannelOrderStatus::Rejected),
        ("POST", ["orders", id, "shipment"]) => {
            match serde_json::from_slice::<bazaar_channels::agora::Shipment>(&call.body) {
                Ok(shipment) => a.ship(id, shipment),
                Err(e) => Reply::error(
                    400,
                    "bad_request",
                    format!("expected {{\"carrier\": …, \"tracking_code\": …}}: {e}"),
                ),
            }
        }
        _ => Reply::not_found(format!("no route {method} {}", call.path)),
    }
}
