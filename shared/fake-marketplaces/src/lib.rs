//! Two fake marketplaces, `agora` and `souk`, for the local stack and tests: the outside
//! channels Bazaar sells on, with partner APIs that differ the way real ones do (see
//! `bazaar_channels`), a buyer's side, counters, and switches that make them misbehave.
//!
//! - Partner API: agora per item (`/agora/api/...`, at most 5 calls a second per key, orders
//!   pushed by a signed webhook), souk by batch feeds (`/souk/api/...`, processed
//!   [`FEED_DELAY`] later, orders polled from a cursor). Both want `Authorization: Bearer
//!   <partner key>` and cancel an order the seller has not answered within
//!   `bazaar_channels::ACK_DEADLINE`.
//! - Buyer's side, for people and tests: `GET /{channel}/listings` (what buyers see),
//!   `POST /{channel}/buy {"sku","quantity"}` (places an order, answers its id),
//!   `GET /{channel}/orders/{id}`, and `GET /{channel}/stats` (partner calls, 429s, the most
//!   calls in any one second).
//! - `GET`/`PUT /switches`: per channel `down` (503 to every partner call), `slow` (the work
//!   is done, the answer comes [`Switches::slow_ms`] late; in process the caller sees it as
//!   late), `rate_limit` (calls a second; agora's is 5 unless set), `duplicate` and `reorder`
//!   (order notifications sent twice, or out of order; souk's polls repeat and reverse), and
//!   `reject` (skus refused with "rejected by review").
//!
//! Every call goes through [`Marketplaces::handle`], in process on a simulated clock or over
//! HTTP ([`serve`]) for `scripts/dev`, so both behave the same. agora's webhook calls are not
//! sent by the fake: whoever runs it takes the due ones ([`Marketplaces::take_due_deliveries`])
//! and delivers them, as the local stack does through its API Gateway emulator. Ids are random
//! (seeded by the operating system), so a restarted run never meets an earlier run's ids.
#![forbid(unsafe_code)]

mod agora;
mod http;
mod souk;

pub use http::serve;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bazaar_channels::client::{HttpCall, HttpReply, Transport};
use bazaar_channels::{BuyerListing, ChannelId, ChannelStats, ErrorBody, Purchase};
use bazaar_platform::clock::Clock;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long after it is posted a souk feed is processed.
pub const FEED_DELAY: Duration = Duration::seconds(5);
/// How long before a webhook call that was not accepted is sent again.
pub const DELIVERY_RETRY: Duration = Duration::seconds(30);
/// Where agora sends its webhook calls (a path of Bazaar's API).
pub const WEBHOOK_PATH: &str = "/webhooks/agora";

/// A channel's misbehaviour switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Switches {
    /// Answer 503 to every partner call, doing nothing.
    pub down: bool,
    /// Do the work, but answer late.
    pub slow: bool,
    /// How late a slow answer comes over HTTP, in milliseconds.
    pub slow_ms: u64,
    /// Partner calls a second per key; `None`: the channel's own (agora 5, souk none).
    pub rate_limit: Option<u32>,
    /// Send every order notification twice (souk: repeat the last order of each poll).
    pub duplicate: bool,
    /// Send due order notifications newest first (souk: each poll's page reversed).
    pub reorder: bool,
    /// Skus the channel refuses, with "rejected by review".
    pub reject: Vec<String>,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            down: false,
            slow: false,
            slow_ms: 15_000,
            rate_limit: None,
            duplicate: false,
            reorder: false,
            reject: Vec::new(),
        }
    }
}

/// The switches of both channels, as `GET /switches` shows them; `PUT /switches` replaces
/// the channels it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllSwitches {
    /// agora's.
    #[serde(default)]
    pub agora: Option<Switches>,
    /// souk's.
    #[serde(default)]
    pub souk: Option<Switches>,
}

/// The partner accounts: what each channel accepts and signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// agora's partner key.
    pub agora_key: String,
    /// The secret agora signs its webhook calls with.
    pub agora_webhook_secret: String,
    /// souk's partner key.
    pub souk_key: String,
}

impl Default for Accounts {
    /// The local stack's accounts (the template's local parameter values).
    fn default() -> Self {
        Accounts {
            agora_key: "local-agora-key".into(),
            agora_webhook_secret: "local-agora-webhook-secret".into(),
            souk_key: "local-souk-key".into(),
        }
    }
}

/// One call, as either transport hands it over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    /// `GET`, `PUT`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's parameters, decoded.
    pub query: BTreeMap<String, String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Call {
    /// A call with no query, authorisation or body.
    pub fn new(method: &str, path: &str) -> Call {
        Call {
            method: method.to_string(),
            path: path.to_string(),
            ..Call::default()
        }
    }

    /// With a bearer token.
    pub fn bearer(mut self, key: &str) -> Call {
        self.authorization = Some(format!("Bearer {key}"));
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: &impl Serialize) -> Call {
        self.body = serde_json::to_vec(body).unwrap_or_default();
        self
    }

    /// With a query parameter.
    pub fn query(mut self, name: &str, value: &str) -> Call {
        self.query.insert(name.to_string(), value.to_string());
        self
    }
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, in seconds (429 and 503).
    pub retry_after: Option<u64>,
    /// The JSON body.
    pub body: Value,
    /// The work is done but the answer comes late (the `slow` switch): over HTTP it is
    /// held back, in process the caller should treat it as a timeout.
    pub late: bool,
}

impl Reply {
    fn ok(status: u16, body: impl Serialize) -> Reply {
        Reply {
            status,
            retry_after: None,
            body: serde_json::to_value(body).unwrap_or(Value::Null),
            late: false,
        }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        Reply::ok(status, ErrorBody::new(code, message))
    }

    fn not_found(what: impl Into<String>) -> Reply {
        Reply::error(404, "not_found", what)
    }

    /// The body as `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.body.clone())
    }
}

/// A webhook call due to be delivered to the seller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Where (a path of Bazaar's API: [`WEBHOOK_PATH`]).
    pub path: &'static str,
    /// The headers to send (agora's timestamp and signature).
    pub headers: Vec<(&'static str, String)>,
    /// The body, as signed.
    pub body: String,
    /// The event it carries.
    pub event_id: String,
}

/// The marketplaces as a broker's [`Transport`], in process: a late answer (the `slow`
/// switch) is a timeout, as the caller's deadline would make it, after the work is done.
#[derive(Clone)]
pub struct InProcess(pub Arc<Marketplaces>);

#[async_trait::async_trait]
impl Transport for InProcess {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, String> {
        let reply = self.0.handle(&Call {
            method: call.method.to_string(),
            path: percent_encoding::percent_decode_str(&call.path)
                .decode_utf8_lossy()
                .into_owned(),
            query: call.query.into_iter().collect(),
            authorization: Some(format!("Bearer {}", call.bearer)),
            body: call.body.unwrap_or_default(),
        });
        if reply.late {
            return Err("no answer within the deadline".into());
        }
        Ok(HttpReply {
            status: reply.status,
            retry_after: reply.retry_after,
            body: serde_json::to_vec(&reply.body).unwrap_or_default(),
        })
    }
}

/// Partner traffic of one channel.
#[derive(Debug, Default)]
struct Traffic {
    stats: ChannelStats,
    /// The second being counted and the calls received in it.
    second: i64,
    in_second: u64,
}

impl Traffic {
    /// Counts a call received at `now`; whether it is over `limit` calls this second.
    fn count(&mut self, now: DateTime<Utc>, limit: Option<u32>) -> bool {
        self.stats.requests += 1;
        let s = now.timestamp();
        if s != self.second {
            self.second = s;
            self.in_second = 0;
        }
        self.in_second += 1;
        self.stats.max_per_second = self.stats.max_per_second.max(self.in_second);
        let over = limit.is_some_and(|l| self.in_second > u64::from(l));
        if over {
            self.stats.throttled += 1;
        }
        over
    }
}

struct State {
    switches: BTreeMap<ChannelId, Switches>,
    traffic: BTreeMap<ChannelId, Traffic>,
    agora: agora::Agora,
    souk: souk::Souk,
    ids: SmallRng,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        format!("{prefix}-{:020x}", self.ids.random::<u128>() >> 48)
    }

    fn switches(&self, channel: ChannelId) -> Switches {
        self.switches.get(&channel).cloned().unwrap_or_default()
    }

    /// What buyers see at a channel at `now`: cancellations and processed feeds applied.
    fn listings(&mut self, channel: ChannelId, now: DateTime<Utc>) -> Vec<BuyerListing> {
        match channel {
            ChannelId::Agora => {
                self.agora.expire(now);
                self.agora.listings()
            }
            ChannelId::Souk => {
                self.souk.expire(now);
                let reject = self.switches(ChannelId::Souk).reject;
                self.souk.process_feeds(now, &reject);
                self.souk.listings()
            }
        }
    }
}

/// Both fake marketplaces.
pub struct Marketplaces {
    clock: Arc<dyn Clock>,
    accounts: Accounts,
    state: Mutex<State>,
}

impl Marketplaces {
    /// Both channels on `clock`, with the given partner accounts.
    pub fn new(clock: Arc<dyn Clock>, accounts: Accounts) -> Self {
        Marketplaces {
            clock,
            accounts,
            state: Mutex::new(State {
                switches: BTreeMap::new(),
                traffic: BTreeMap::new(),
                agora: agora::Agora::default(),
                souk: souk::Souk::default(),
                ids: SmallRng::from_rng(&mut rand::rng()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves consistent maps (every change is one insert);
        // keep serving rather than poison every later call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partner accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// A channel's switches.
    pub fn switches(&self, channel: ChannelId) -> Switches {
        self.state().switches(channel)
    }

    /// Sets a channel's switches.
    pub fn set_switches(&self, channel: ChannelId, switches: Switches) {
        self.state().switches.insert(channel, switches);
    }

    /// A channel's counters.
    pub fn stats(&self, channel: ChannelId) -> ChannelStats {
        self.state()
            .traffic
            .get(&channel)
            .map(|t| t.stats)
            .unwrap_or_default()
    }

    /// What buyers see at a channel, by sku.
    pub fn listings(&self, channel: ChannelId) -> Vec<BuyerListing> {
        let now = self.clock.now();
        self.state().listings(channel, now)
    }

    /// A buyer orders `quantity` of `sku` at `channel`: the order's id, or why not.
    pub fn buy(&self, channel: ChannelId, purchase: &Purchase) -> Result<String, String> {
        let reply = self.handle(&Call::new("POST", &format!("/{channel}/buy")).json(purchase));
        match reply.status {
            201 => Ok(reply.body["id"].as_str().unwrap_or_default().to_string()),
            _ => Err(reply.body["error"]["message"]
                .as_str()
                .unwrap_or("refused")
                .to_string()),
        }
    }

    /// Changes an item at the channel behind the seller's back, as a person at the channel
    /// might (for the reconciliation): `edit` gets the buyer's view of it.
    pub fn tamper(
        &self,
        channel: ChannelId,
        sku: &str,
        edit: impl FnOnce(&mut BuyerListing),
    ) -> bool {
        let now = self.clock.now();
        let mut s = self.state();
        match channel {
            ChannelId::Agora => s.agora.tamper(sku, now, edit),
            ChannelId::Souk => s.souk.tamper(sku, edit),
        }
    }

    /// Removes an item at the channel behind the seller's back.
    pub fn remove(&self, channel: ChannelId, sku: &str) -> bool {
        let mut s = self.state();
        match channel {
            ChannelId::Agora => s.agora.items.remove(sku).is_some(),
            ChannelId::Souk => s.souk.items.remove(sku).is_some(),
        }
    }

    /// The webhook calls due by `now` (orders to answer, cancellations), signed; the caller
    /// delivers them and hands back those that were not accepted
    /// ([`Marketplaces::retry_delivery`]).
    pub fn take_due_deliveries(&self, now: DateTime<Utc>) -> Vec<Delivery> {
        let mut s = self.state();
        s.agora.expire(now);
        let switches = s.switches(ChannelId::Agora);
        s.agora.take_due(
            now,
            &switches,
            self.accounts.agora_webhook_secret.as_bytes(),
        )
    }

    /// Sends a webhook call again [`DELIVERY_RETRY`] from now.
    pub fn retry_delivery(&self, delivery: Delivery) {
        let at = self.clock.now() + DELIVERY_RETRY;
        self.state().agora.retry(delivery, at);
    }

    /// When the next webhook call or deadline falls due, if any.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.state().agora.next_due()
    }

    /// Answers one call.
    pub fn handle(&self, call: &Call) -> Reply {
        let now = self.clock.now();
        let segments: Vec<&str> = call.path.split('/').filter(|s| !s.is_empty()).collect();
        let method = call.method.to_ascii_uppercase();
        let mut s = self.state();
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["switches"]) => Reply::ok(
                200,
                AllSwitches {
                    agora: Some(s.switches(ChannelId::Agora)),
                    souk: Some(s.switches(ChannelId::Souk)),
                },
            ),
            ("PUT", ["switches"]) => match serde_json::from_slice::<AllSwitches>(&call.body) {
                Ok(all) => {
                    for (channel, switches) in
                        [(ChannelId::Agora, all.agora), (ChannelId::Souk, all.souk)]
                    {
                        if let Some(sw) = switches {
                            tracing::info!(target: "fake-marketplaces", %channel, ?sw, "switches changed");
                            s.switches.insert(channel, sw);
                        }
                    }
                    Reply::ok(
                        200,
                        AllSwitches {
                            agora: Some(s.switches(ChannelId::Agora)),
                            souk: Some(s.switches(ChannelId::Souk)),
                        },
                    )
                }
                Err(e) => Reply::error(400, "bad_request", format!("switches: {e}")),
            },
            (_, [channel, "api", rest @ ..]) => {
                let Ok(channel) = ChannelId::parse(channel) else {
                    return Reply::not_found(format!("no channel {channel}"));
                };
                self.partner(&mut s, channel, &method, rest, call, now)
            }
            (_, [channel, rest @ ..]) => {
                let Ok(channel) = ChannelId::parse(channel) else {
                    return Reply::not_found(format!("no route {}", call.path));
                };
                buyer(&mut s, channel, &method, rest, call, now)
            }
            _ => Reply::not_found(format!("no route {}", call.path)),
        }
    }

    /// A partner API call: counted, refused when down, unauthorised or over the rate limit,
    /// else answered by the channel (late when slow).
    fn partner(
        &self,
        s: &mut State,
        channel: ChannelId,
        method: &str,
        rest: &[&str],
        call: &Call,
        now: DateTime<Utc>,
    ) -> Reply {
        let switches = s.switches(channel);
        let limit = switches.rate_limit.or(match channel {
            ChannelId::Agora => Some(bazaar_channels::agora::RATE_LIMIT),
            ChannelId::Souk => None,
        });
        let over = s.traffic.entry(channel).or_default().count(now, limit);
        if switches.down {
            return Reply {
                retry_after: Some(5),
                ..Reply::error(503, "unavailable", format!("{channel} is down"))
            };
        }
        let key = match channel {
            ChannelId::Agora => &self.accounts.agora_key,
            ChannelId::Souk => &self.accounts.souk_key,
        };
        let presented = call
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "));
        if presented != Some(key.as_str()) {
            return Reply::error(401, "unauthorized", "a valid partner key is required");
        }
        if over {
            return Reply {
                retry_after: Some(1),
                ..Reply::error(
                    429,
                    "rate_limited",
                    format!("{channel} allows {} calls a second", limit.unwrap_or(0)),
                )
            };
        }
        let mut reply = match channel {
            ChannelId::Agora => {
                s.agora.expire(now);
                agora::partner(&mut s.agora, method, rest, call, now, &switches)
            }
            ChannelId::Souk => {
                let feed_id = s.id("feed");
                s.souk.expire(now);
                souk::partner(&mut s.souk, method, rest, call, now, &switches, feed_id)
            }
        };
        reply.late = switches.slow;
        reply
    }
}

/// A buyer's call (or the counters'): never counted as partner traffic.
fn buyer(
    s: &mut State,
    channel: ChannelId,
    method: &str,
    rest: &[&str],
    call: &Call,
    now: DateTime<Utc>,
) -> Reply {
    match (method, rest) {
        ("GET", ["stats"]) => Reply::ok(
            200,
            s.traffic.get(&channel).map(|t| t.stats).unwrap_or_default(),
        ),
        ("GET", ["listings"]) => Reply::ok(200, json!({ "listings": s.listings(channel, now) })),
        ("POST", ["buy"]) => {
            let purchase: Purchase = match serde_json::from_slice(&call.body) {
                Ok(p) => p,
                Err(e) => {
                    return Reply::error(
                        400,
                        "bad_request",
                        format!("expected {{\"sku\", \"quantity\"}}: {e}"),
                    );
                }
            };
            if purchase.quantity == 0 {
                return Reply::error(400, "bad_request", "quantity must be at least 1");
            }
            let id = s.id(channel.as_str());
            let event = s.id("evt");
            let placed = match channel {
                ChannelId::Agora => s.agora.buy(&purchase, id, event, now),
                ChannelId::Souk => {
                    let reject = s.switches(ChannelId::Souk).reject;
                    s.souk.process_feeds(now, &reject);
                    s.souk.buy(&purchase, id, now)
                }
            };
            match placed {
                Ok(id) => Reply::ok(201, json!({ "id": id })),
                Err(why) => Reply::error(409, "unavailable", why),
            }
        }
        ("GET", ["orders", id]) => {
            let status = match channel {
                ChannelId::Agora => {
                    s.agora.expire(now);
                    s.agora
                        .orders
                        .get(*id)
                        .map(|o| (o.sku.clone(), o.quantity, o.status))
                }
                ChannelId::Souk => {
                    s.souk.expire(now);
                    s.souk
                        .orders
                        .get(*id)
                        .map(|o| (o.sku.clone(), o.quantity, o.state))
                }
            };
            match status {
                Some((sku, quantity, status)) => Reply::ok(
                    200,
                    json!({ "id": id, "sku": sku, "quantity": quantity, "status": status }),
                ),
                None => Reply::not_found(format!("no order {id}")),
            }
        }
        _ => Reply::not_found(format!("no route {} {}", method, call.path)),
    }
}
