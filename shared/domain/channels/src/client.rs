//! The channels' partner APIs as calls a broker makes: [`AgoraClient`] and [`SoukClient`] over
//! a [`Transport`] (HTTPS in a function, the fake marketplaces in process in tests), with every
//! answer sorted by who must act ([`ChannelError`]): wait and retry (429 with its
//! `Retry-After`, an outage, a timeout), or a refusal that no retry changes. A per-item
//! rejection is not an error: it is the item's outcome ([`ItemOutcome`]).

use async_trait::async_trait;
use chrono::Duration;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Acknowledgement, ErrorBody, agora, souk};

/// One HTTP call to a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// `GET`, `PUT`, `POST`.
    pub method: &'static str,
    /// The path (`/agora/api/items/MUG-01`), segments already safe.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// The partner key, sent as a bearer token.
    pub bearer: String,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
}

/// A channel's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status.
    pub status: u16,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

/// How calls reach a channel.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `call`; `Err` when no answer came (unreachable, timed out).
    async fn send(&self, call: HttpCall) -> Result<HttpReply, String>;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, String> {
        (**self).send(call).await
    }
}

/// Why a call did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// Too many calls: wait this long, then retry.
    RateLimited(Duration),
    /// Down, unreachable or too slow: retry later.
    Unavailable(String),
    /// Refused for good (a bad key, a malformed call, an order already closed): retrying
    /// changes nothing; someone must look.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The channel's message.
        message: String,
    },
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelError::RateLimited(d) => {
                write!(f, "rate limited; retry in {} s", d.num_seconds())
            }
            ChannelError::Unavailable(why) => write!(f, "the channel is unavailable: {why}"),
            ChannelError::Refused { status, message } => {
                write!(f, "the channel refused the call ({status}): {message}")
            }
        }
    }
}

impl std::error::Error for ChannelError {}

/// What became of one item sent to a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// The channel shows it as sent.
    Applied,
    /// The channel refused it, with its message (the listing shows `error`).
    Rejected(String),
}

fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// Sorts a reply: 2xx is `Ok`, the rest a [`ChannelError`].
fn checked(reply: HttpReply) -> Result<HttpReply, ChannelError> {
    match reply.status {
        200..=299 => Ok(reply),
        429 => Err(ChannelError::RateLimited(Duration::seconds(
            i64::try_from(reply.retry_after.unwrap_or(1).clamp(1, 3_600)).unwrap_or(1),
        ))),
        408 | 500..=599 => Err(ChannelError::Unavailable(format!(
            "{}: {}",
            reply.status,
            message_of(&reply.body)
        ))),
        status => Err(ChannelError::Refused {
            status,
            message: message_of(&reply.body),
        }),
    }
}

fn parsed<T: DeserializeOwned>(reply: &HttpReply) -> Result<T, ChannelError> {
    serde_json::from_slice(&reply.body).map_err(|e| ChannelError::Refused {
        status: reply.status,
        message: format!("an answer that is not the channel's format: {e}"),
    })
}

fn body(value: &impl Serialize) -> Option<Vec<u8>> {
    serde_json::to_vec(value).ok()
}

/// A path segment from a sku or id: anything but unreserved characters percent-encoded.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A channel reached through a transport with a partner key: what both clients share.
struct Partner<T> {
    transport: T,
    key: String,
}

impl<T: Transport> Partner<T> {
    async fn call(
        &self,
        method: &'static str,
        path: String,
        query: Vec<(String, String)>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpReply, ChannelError> {
        self.transport
            .send(HttpCall {
                method,
                path,
                query,
                bearer: self.key.clone(),
                body,
            })
            .await
            .map_err(ChannelError::Unavailable)
    }

    /// A `GET` of one thing the channel may not have (404: `None`).
    async fn get_if_any<R: DeserializeOwned>(
        &self,
        path: String,
    ) -> Result<Option<R>, ChannelError> {
        let reply = self.call("GET", path, vec![], None).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        parsed(&checked(reply)?).map(Some)
    }
}

/// agora's partner API.
pub struct AgoraClient<T>(Partner<T>);

impl<T: Transport> AgoraClient<T> {
    /// A client with the partner key.
    pub fn new(transport: T, key: impl Into<String>) -> Self {
        AgoraClient(Partner {
            transport,
            key: key.into(),
        })
    }

    /// Creates or replaces an item; a refusal of the item itself (422) is its outcome.
    pub async fn put_item(
        &self,
        sku: &str,
        item: &agora::Item,
    ) -> Result<ItemOutcome, ChannelError> {
        let reply = self
            .0
            .call(
                "PUT",
                format!("/agora/api/items/{}", segment(sku)),
                vec![],
                body(item),
            )
            .await?;
        if reply.status == 422 {
            return Ok(ItemOutcome::Rejected(message_of(&reply.body)));
        }
        checked(reply).map(|_| ItemOutcome::Applied)
    }

    /// One page of the items agora holds.
    pub async fn items(
        &self,
        page: Option<&str>,
        limit: usize,
    ) -> Result<agora::ItemPage, ChannelError> {
        let mut query = vec![("limit".to_string(), limit.to_string())];
        if let Some(p) = page {
            query.push(("page".to_string(), p.to_string()));
        }
        let reply = checked(
            self.0
                .call("GET", "/agora/api/items".into(), query, None)
                .await?,
        )?;
        parsed(&reply)
    }

    /// An order, if agora knows it.
    pub async fn order(&self, id: &str) -> Result<Option<agora::Order>, ChannelError> {
        self.0
            .get_if_any(format!("/agora/api/orders/{}", segment(id)))
            .await
    }

    /// Tells agora the seller sent an accepted order (the same shipment again is fine;
    /// another, or an order not accepted, is refused with 409).
    pub async fn ship(
        &self,
        id: &str,
        shipment: &agora::Shipment,
    ) -> Result<agora::Order, ChannelError> {
        let reply = self
            .0
            .call(
                "POST",
                format!("/agora/api/orders/{}/shipment", segment(id)),
                vec![],
                body(shipment),
            )
            .await?;
        parsed(&checked(reply)?)
    }

    /// Accepts or rejects an order; answering it the same way again is fine, the other way
    /// (or after agora cancelled it) is refused with 409.
    pub async fn answer(
        &self,
        id: &str,
        answer: Acknowledgement,
    ) -> Result<agora::Order, ChannelError> {
        let verb = match answer {
            Acknowledgement::Accepted => "accept",
            Acknowledgement::Rejected => "reject",
        };
        let reply = self
            .0
            .call(
                "POST",
                format!("/agora/api/orders/{}/{verb}", segment(id)),
                vec![],
                None,
            )
            .await?;
        parsed(&checked(reply)?)
    }
}

/// souk's partner API.
pub struct SoukClient<T>(Partner<T>);

impl<T: Transport> SoukClient<T> {
    /// A client with the partner key.
    pub fn new(transport: T, key: impl Into<String>) -> Self {
        SoukClient(Partner {
            transport,
            key: key.into(),
        })
    }

    /// Posts a feed of at most [`souk::MAX_FEED_ITEMS`] items; its results come later
    /// ([`SoukClient::feed`]).
    pub async fn post_feed(&self, items: Vec<souk::Item>) -> Result<String, ChannelError> {
        if items.is_empty() || items.len() > souk::MAX_FEED_ITEMS {
            return Err(ChannelError::Refused {
                status: 400,
                message: format!("a feed has 1 to {} items", souk::MAX_FEED_ITEMS),
            });
        }
        let reply = checked(
            self.0
                .call(
                    "POST",
                    "/souk/api/feeds".into(),
                    vec![],
                    body(&souk::Feed { items }),
                )
                .await?,
        )?;
        parsed::<souk::FeedAccepted>(&reply).map(|a| a.feed_id)
    }

    /// A feed's report, with each item's outcome once it is processed.
    pub async fn feed(&self, id: &str) -> Result<souk::FeedReport, ChannelError> {
        let reply = checked(
            self.0
                .call(
                    "GET",
                    format!("/souk/api/feeds/{}", segment(id)),
                    vec![],
                    None,
                )
                .await?,
        )?;
        parsed(&reply)
    }

    /// One page of the items souk holds.
    pub async fn items(&self, offset: usize, limit: usize) -> Result<souk::ItemPage, ChannelError> {
        let query = vec![
            ("offset".to_string(), offset.to_string()),
            ("limit".to_string(), limit.to_string()),
        ];
        let reply = checked(
            self.0
                .call("GET", "/souk/api/items".into(), query, None)
                .await?,
        )?;
        parsed(&reply)
    }

    /// The orders changed after `since` (from the beginning without one).
    pub async fn orders(
        &self,
        since: Option<&str>,
        limit: usize,
    ) -> Result<souk::OrderPage, ChannelError> {
        let mut query = vec![("limit".to_string(), limit.to_string())];
        if let Some(c) = since {
            query.push(("since".to_string(), c.to_string()));
        }
        let reply = checked(
            self.0
                .call("GET", "/souk/api/orders".into(), query, None)
                .await?,
        )?;
        parsed(&reply)
    }

    /// One order as souk holds it now (`None`: souk has no such order).
    pub async fn order(&self, id: &str) -> Result<Option<souk::Order>, ChannelError> {
        self.0
            .get_if_any(format!("/souk/api/orders/{}", segment(id)))
            .await
    }

    /// Gives souk an accepted order's tracking (the same again is fine; other tracking, or an
    /// order not accepted, is refused with 409).
    pub async fn track(
        &self,
        id: &str,
        tracking: &souk::Tracking,
    ) -> Result<souk::Order, ChannelError> {
        let reply = self
            .0
            .call(
                "PUT",
                format!("/souk/api/orders/{}/tracking", segment(id)),
                vec![],
                body(tracking),
            )
            .await?;
        parsed(&checked(reply)?)
    }

    /// Acknowledges an order (the same answer again is fine; the other is refused, 409).
    pub async fn ack(
        &self,
        id: &str,
        decision: Acknowledgement,
    ) -> Result<souk::Order, ChannelError> {
        let reply = self
            .0
            .call(
                "POST",
                format!("/souk/api/orders/{}/ack", segment(id)),
                vec![],
                body(&souk::Ack { decision }),
            )
            .await?;
        parsed(&checked(reply)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, retry_after: Option<u64>, body: &str) -> HttpReply {
        HttpReply {
            status,
            retry_after,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_are_sorted_by_who_must_act() {
        assert!(checked(reply(200, None, "{}")).is_ok());
        assert_eq!(
            checked(reply(429, Some(3), "")).unwrap_err(),
            ChannelError::RateLimited(Duration::seconds(3))
        );
        assert_eq!(
            checked(reply(429, Some(u64::MAX), "")).unwrap_err(),
            ChannelError::RateLimited(Duration::seconds(3_600)),
            "a huge Retry-After is capped"
        );
        assert!(matches!(
            checked(reply(503, Some(5), r#"{"error":{"code":"unavailable","message":"down"}}"#)),
            Err(ChannelError::Unavailable(m)) if m == "503: down"
        ));
        assert_eq!(
            checked(reply(
                401,
                None,
                r#"{"error":{"code":"unauthorized","message":"bad key"}}"#
            ))
            .unwrap_err(),
            ChannelError::Refused {
                status: 401,
                message: "bad key".into()
            }
        );
    }

    #[test]
    fn skus_and_ids_are_safe_in_a_path() {
        assert_eq!(segment("MUG-01"), "MUG-01");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
