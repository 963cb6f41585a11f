//! souk: items by batch feeds processed later, orders polled from a cursor.

use std::collections::BTreeMap;

use bazaar_channels::souk::{
    Ack, Feed, FeedAccepted, FeedReport, FeedStatus, Item, ItemOutcome, ItemPage, ItemResult,
    ItemStatus, MAX_FEED_ITEMS, Order, OrderPage, Price,
};
use bazaar_channels::{ACK_DEADLINE, Acknowledgement, BuyerListing, ChannelOrderStatus, Purchase};
use chrono::{DateTime, Utc};

use crate::{Call, FEED_DELAY, Reply, Switches};

/// The largest page of items or orders.
const MAX_PAGE: usize = 100;

#[derive(Debug, Clone)]
struct FeedState {
    ready_at: DateTime<Utc>,
    items: Vec<Item>,
    results: Option<Vec<ItemResult>>,
}

#[derive(Debug, Default)]
pub(crate) struct Souk {
    pub(crate) items: BTreeMap<String, Item>,
    feeds: BTreeMap<String, FeedState>,
    pub(crate) orders: BTreeMap<String, Order>,
    /// When each order was placed, for its deadline.
    deadlines: BTreeMap<String, DateTime<Utc>>,
    /// Every change to an order, in order: (sequence, order id). The cursor is a sequence.
    changes: Vec<(u64, String)>,
    seq: u64,
    /// The changes a duplicating souk has handed out twice already (each is, once).
    repeated: std::collections::BTreeSet<u64>,
}

impl Souk {
    pub(crate) fn listings(&self) -> Vec<BuyerListing> {
        self.items
            .values()
            .map(|i| BuyerListing {
                sku: i.sku.clone(),
                title: i.title.clone(),
                price_cents: i.price.cents().unwrap_or(0),
                currency: i.price.currency.clone(),
                quantity: i.stock,
                active: i.status == ItemStatus::Active,
            })
            .collect()
    }

    pub(crate) fn tamper(&mut self, sku: &str, edit: impl FnOnce(&mut BuyerListing)) -> bool {
        let Some(item) = self.items.get_mut(sku) else {
            return false;
        };
        let mut l = BuyerListing {
            sku: item.sku.clone(),
            title: item.title.clone(),
            price_cents: item.price.cents().unwrap_or(0),
            currency: item.price.currency.clone(),
            quantity: item.stock,
            active: item.status == ItemStatus::Active,
        };
        edit(&mut l);
        item.title = l.title;
        item.price = Price::of_cents(l.price_cents, &l.currency);
        item.stock = l.quantity;
        item.status = if l.active {
            ItemStatus::Active
        } else {
            ItemStatus::Inactive
        };
        true
    }

    /// Processes the feeds whose time has come, in the order they were posted.
    pub(crate) fn process_feeds(&mut self, now: DateTime<Utc>, reject: &[String]) {
        let mut ready: Vec<(DateTime<Utc>, String)> = self
            .feeds
            .iter()
            .filter(|(_, f)| f.results.is_none() && f.ready_at <= now)
            .map(|(id, f)| (f.ready_at, id.clone()))
            .collect();
        ready.sort();
        for (_, id) in ready {
            let Some(items) = self.feeds.get(&id).map(|f| f.items.clone()) else {
                continue;
            };
            let results = items
                .into_iter()
                .map(|item| {
                    let problem = if reject.contains(&item.sku) {
                        Some("rejected by review".to_string())
                    } else {
                        item.problem()
                    };
                    let sku = item.sku.clone();
                    match problem {
                        Some(why) => ItemResult {
                            sku,
                            outcome: ItemOutcome::Error,
                            message: Some(why),
                        },
                        None => {
                            self.items.insert(sku.clone(), item);
                            ItemResult {
                                sku,
                                outcome: ItemOutcome::Ok,
                                message: None,
                            }
                        }
                    }
                })
                .collect();
            if let Some(f) = self.feeds.get_mut(&id) {
                f.results = Some(results);
            }
        }
    }

    fn changed(&mut self, order_id: &str) {
        self.seq += 1;
        self.changes.push((self.seq, order_id.to_string()));
    }

    pub(crate) fn buy(
        &mut self,
        purchase: &Purchase,
        id: String,
        now: DateTime<Utc>,
    ) -> Result<String, String> {
        let item = self
            .items
            .get_mut(&purchase.sku)
            .filter(|i| i.status == ItemStatus::Active)
            .ok_or_else(|| format!("{} is not for sale on souk", purchase.sku))?;
        if item.stock < purchase.quantity {
            return Err(format!(
                "only {} of {} left on souk",
                item.stock, purchase.sku
            ));
        }
        item.stock -= purchase.quantity;
        let order = Order {
            order_id: id.clone(),
            sku: purchase.sku.clone(),
            quantity: purchase.quantity,
            unit_price: item.price.clone(),
            state: ChannelOrderStatus::Pending,
            placed_at: now,
            tracking: None,
        };
        self.orders.insert(id.clone(), order);
        self.deadlines.insert(id.clone(), now + ACK_DEADLINE);
        self.changed(&id);
        Ok(id)
    }

    fn restock(&mut self, sku: &str, quantity: u32) {
        if let Some(i) = self.items.get_mut(sku) {
            i.stock = i.stock.saturating_add(quantity);
        }
    }

    /// Cancels the orders not acknowledged by their deadline; they show in the next poll.
    pub(crate) fn expire(&mut self, now: DateTime<Utc>) {
        let late: Vec<String> = self
            .orders
            .values()
            .filter(|o| o.state == ChannelOrderStatus::Pending)
            .filter(|o| self.deadlines.get(&o.order_id).is_some_and(|d| *d <= now))
            .map(|o| o.order_id.clone())
            .collect();
        for id in late {
            let Some(order) = self.orders.get_mut(&id) else {
                continue;
            };
            order.state = ChannelOrderStatus::Cancelled;
            let (sku, quantity) = (order.sku.clone(), order.quantity);
            self.restock(&sku, quantity);
            self.changed(&id);
        }
    }

    /// The orders changed after `since`, each once at its latest state.
    fn poll(&mut self, since: u64, limit: usize, switches: &Switches) -> OrderPage {
        let mut latest: BTreeMap<&str, u64> = BTreeMap::new();
        for (seq, id) in &self.changes {
            latest.insert(id, *seq);
        }
        let mut page: Vec<(u64, &str)> = latest
            .into_iter()
            .filter(|(_, seq)| *seq > since)
            .map(|(id, seq)| (seq, id))
            .collect();
        page.sort();
        page.truncate(limit);
        let mut cursor = page.last().map_or(since, |(seq, _)| *seq);
        // A duplicating souk hands the page's last order out again on the next poll (once).
        if switches.duplicate && cursor > since && self.repeated.insert(cursor) {
            cursor -= 1;
        }
        let mut orders: Vec<Order> = page
            .iter()
            .filter_map(|(_, id)| self.orders.get(*id).cloned())
            .collect();
        if switches.reorder {
            orders.reverse();
        }
        OrderPage {
            orders,
            cursor: cursor.to_string(),
        }
    }

    /// Records the tracking of an accepted order.
    fn track(&mut self, id: &str, tracking: bazaar_channels::souk::Tracking) -> Reply {
        let Some(order) = self.orders.get_mut(id) else {
            return Reply::not_found(format!("no order {id}"));
        };
        if order.state != ChannelOrderStatus::Accepted {
            return Reply::error(
                409,
                "order_not_accepted",
                format!("order {id} is {}", order.state.as_str()),
            );
        }
        match &order.tracking {
            Some(t) if *t != tracking => Reply::error(
                409,
                "already_tracked",
                format!("order {id} is tracked as {}", t.tracking_number),
            ),
            _ => {
                order.tracking = Some(tracking);
                let order = order.clone();
                self.changed(id);
                Reply::ok(200, order)
            }
        }
    }

    fn ack(&mut self, id: &str, decision: Acknowledgement) -> Reply {
        let to = match decision {
            Acknowledgement::Accepted => ChannelOrderStatus::Accepted,
            Acknowledgement::Rejected => ChannelOrderStatus::Rejected,
        };
        let Some(order) = self.orders.get_mut(id) else {
            return Reply::not_found(format!("no order {id}"));
        };
        if order.state == to {
            return Reply::ok(200, order.clone());
        }
        // A seller may still withdraw an accepted order it has not sent.
        let withdrawn = order.state == ChannelOrderStatus::Accepted
            && to == ChannelOrderStatus::Rejected
            && order.tracking.is_none();
        if order.state != ChannelOrderStatus::Pending && !withdrawn {
            return Reply::error(
                409,
                "order_closed",
                format!("order {id} is {}", order.state.as_str()),
            );
        }
        order.state = to;
        let order = order.clone();
        if to == ChannelOrderStatus::Rejected {
            self.restock(&order.sku, order.quantity);
        }
        self.changed(id);
        Reply::ok(200, order)
    }
}

fn limit_of(call: &Call) -> Result<usize, Reply> {
    match call.query.get("limit").map(|l| l.parse::<usize>()) {
        None => Ok(MAX_PAGE),
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Reply::error(
            400,
            "bad_request",
            format!("limit must be 1 to {MAX_PAGE}"),
        )),
    }
}

/// A partner call to souk, admitted (authorised, under the rate limit).
pub(crate) fn partner(
    k: &mut Souk,
    method: &str,
    rest: &[&str],
    call: &Call,
    now: DateTime<Utc>,
    switches: &Switches,
    feed_id: String,
) -> Reply {
    k.process_feeds(now, &switches.reject);
    match (method, rest) {
        ("POST", ["feeds"]) => {
            let feed: Feed = match serde_json::from_slice(&call.body) {
                Ok(f) => f,
                Err(e) => return Reply::error(400, "bad_request", format!("feed: {e}")),
            };
            if feed.items.is_empty() || feed.items.len() > MAX_FEED_ITEMS {
                return Reply::error(
                    400,
                    "bad_request",
                    format!("a feed has 1 to {MAX_FEED_ITEMS} items"),
                );
            }
            k.feeds.insert(
                feed_id.clone(),
                FeedState {
                    ready_at: now + FEED_DELAY,
                    items: feed.items,
                    results: None,
                },
            );
            Reply::ok(202, FeedAccepted { feed_id })
        }
        ("GET", ["feeds", id]) => match k.feeds.get(*id) {
            Some(f) => Reply::ok(
                200,
                FeedReport {
                    feed_id: id.to_string(),
                    status: if f.results.is_some() {
                        FeedStatus::Done
                    } else {
                        FeedStatus::Processing
                    },
                    results: f.results.clone().unwrap_or_default(),
                },
            ),
            None => Reply::not_found(format!("no feed {id}")),
        },
        ("GET", ["items"]) => {
            let limit = match limit_of(call) {
                Ok(l) => l,
                Err(r) => return r,
            };
            let offset = match call.query.get("offset").map(|o| o.parse::<usize>()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => return Reply::error(400, "bad_request", "offset must be a number"),
            };
            let items: Vec<Item> = k.items.values().skip(offset).take(limit).cloned().collect();
            let next_offset =
                (offset.saturating_add(items.len()) < k.items.len()).then(|| offset + items.len());
            Reply::ok(200, ItemPage { items, next_offset })
        }
        ("GET", ["orders"]) => {
            let limit = match limit_of(call) {
                Ok(l) => l,
                Err(r) => return r,
            };
            let since = match call.query.get("since").map(|c| c.parse::<u64>()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    return Reply::error(400, "bad_request", "since must be a cursor souk gave");
                }
            };
            Reply::ok(200, k.poll(since, limit, switches))
        }
        ("GET", ["orders", id]) => match k.orders.get(*id) {
            Some(o) => Reply::ok(200, o.clone()),
            None => Reply::not_found(format!("no order {id}")),
        },
        ("PUT", ["orders", id, "tracking"]) => {
            match serde_json::from_slice::<bazaar_channels::souk::Tracking>(&call.body) {
                Ok(tracking) => k.track(id, tracking),
                Err(e) => Reply::error(
                    400,
                    "bad_request",
                    format!("expected {{\"carrier_name\": …, \"tracking_number\": …}}: {e}"),
                ),
            }
        }
        ("POST", ["orders", id, "ack"]) => match serde_json::from_slice::<Ack>(&call.body) {
            Ok(ack) => k.ack(id, ack.decision),
            Err(e) => Reply::error(
                400,
                "bad_request",
                format!("expected {{\"decision\": \"accepted\"|\"rejected\"}}: {e}"),
            ),
        },
        _ => Reply::not_found(format!("no route {method} {}", call.path)),
    }
}
