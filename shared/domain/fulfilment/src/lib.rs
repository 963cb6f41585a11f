//! Fulfilment's domain: an order's lines split into one fulfilment per merchant, each
//! fulfilment's state machine (shipped by its merchant, then moved on by the carrier's
//! tracking callbacks), and where an order stands given all of its fulfilments. Free of AWS
//! and Lambda types.
//!
//! - [`split`] groups a confirmed order's lines by the merchant that owns each sku. Ids are
//!   derived from the order and the merchant ([`fulfilment_id`]), so that handling the same
//!   confirmation twice makes the same fulfilments, never two of them.
//! - [`decide`] is the one transition table of a fulfilment, over every (status, input)
//!   pair: carriers send callbacks duplicated and out of order, so a late or repeated
//!   callback changes nothing, final states never move, and two contradicting outcomes for
//!   one parcel (delivered and returned) are parked for a person.
//! - [`progress`] tells the order saga where the order stands: shipped once every
//!   fulfilment left its merchant, delivered (or returned) once every one reached its end.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use bazaar_contracts::fulfilment::OrderProgress;
use bazaar_contracts::sales::Source;
use bazaar_contracts::trace::Flow;
use bazaar_contracts::{Line, Sku};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a fulfilment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its merchant to ship it.
    Open,
    /// Handed to a carrier, with a tracking code.
    Shipped,
    /// The carrier says it is on its way.
    InTransit,
    /// Final: the customer has it.
    Delivered,
    /// Final: the carrier brought it back to the merchant (its lines are refunded and its
    /// units go back on sale).
    Returned,
    /// Final: the order was cancelled before it shipped.
    Cancelled,
}

impl Status {
    /// Every status, for exhaustive tests.
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::Shipped,
        Status::InTransit,
        Status::Delivered,
        Status::Returned,
        Status::Cancelled,
    ];

    /// True for `Delivered`, `Returned` and `Cancelled`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Delivered | Status::Returned | Status::Cancelled
        )
    }

    /// True once the merchant handed it over (whatever happened after).
    pub fn has_shipped(self) -> bool {
        matches!(
            self,
            Status::Shipped | Status::InTransit | Status::Delivered | Status::Returned
        )
    }

    /// The status as the API and the records name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Shipped => "shipped",
            Status::InTransit => "in_transit",
            Status::Delivered => "delivered",
            Status::Returned => "returned",
            Status::Cancelled => "cancelled",
        }
    }
}

/// What happens to a fulfilment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Its merchant ships it (`POST /fulfilments/{id}/ship`).
    Ship,
    /// The carrier's callback: the parcel is on its way.
    InTransit,
    /// The carrier's callback: the parcel was delivered.
    Delivered,
    /// The carrier's callback: the parcel went back to its sender.
    ReturnedToSender,
    /// Its order was cancelled.
    OrderCancelled,
}

impl Input {
    /// Every input, for exhaustive tests.
    pub const ALL: [Input; 5] = [
        Input::Ship,
        Input::InTransit,
        Input::Delivered,
        Input::ReturnedToSender,
        Input::OrderCancelled,
    ];
}

/// What a fulfilment does with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move to this status.
    Move(Status),
    /// Nothing to do: a repeated or late input (the reason is logged).
    Ignore(&'static str),
    /// The request cannot be made in this status (the merchant's `ship`): a 409 saying why.
    Refuse(&'static str),
    /// Something that should not happen for one parcel: change nothing, park the message for a
    /// person with this reason and explanation.
    Park(&'static str, &'static str),
}

/// The reason contradicting carrier outcomes are parked with.
pub const CARRIER_CONFLICT: &str = "carrier-conflict";
/// The reason a cancellation of an order that already shipped is parked with.
pub const SHIPPED_AFTER_CANCEL: &str = "shipped-after-cancel";

/// The transition table: every (status, input) pair is decided here and nowhere else.
pub fn decide(status: Status, input: Input) -> Decision {
    use Input as I;
    use Status as S;
    match (status, input) {
        (S::Open, I::Ship) => Decision::Move(S::Shipped),
        (S::Open, I::OrderCancelled) => Decision::Move(S::Cancelled),
        (S::Open, I::InTransit | I::Delivered | I::ReturnedToSender) => Decision::Ignore(
            "a carrier callback before the shipment cannot name this fulfilment: its tracking code is learnt when it ships",
        ),
        (S::Shipped | S::InTransit | S::Delivered | S::Returned, I::Ship) => {
            Decision::Refuse("it has shipped already")
        }
        (S::Cancelled, I::Ship) => Decision::Refuse("its order was cancelled: nothing to ship"),
        (S::Shipped, I::InTransit) => Decision::Move(S::InTransit),
        (S::InTransit, I::InTransit) => Decision::Ignore("a repeated callback"),
        (S::Shipped | S::InTransit, I::Delivered) => Decision::Move(S::Delivered),
        (S::Shipped | S::InTransit, I::ReturnedToSender) => Decision::Move(S::Returned),
        // Out of order: the parcel's end is known already.
        (S::Delivered | S::Returned, I::InTransit) => {
            Decision::Ignore("an earlier step arriving after the parcel's end")
        }
        (S::Delivered, I::Delivered) | (S::Returned, I::ReturnedToSender) => {
            Decision::Ignore("a repeated callback")
        }
        (S::Delivered, I::ReturnedToSender) => Decision::Park(
            CARRIER_CONFLICT,
            "the carrier says the parcel was returned to its sender after saying it was delivered",
        ),
        (S::Returned, I::Delivered) => Decision::Park(
            CARRIER_CONFLICT,
            "the carrier says the parcel was delivered after saying it was returned to its sender",
        ),
        (S::Shipped | S::InTransit | S::Delivered | S::Returned, I::OrderCancelled) => {
            Decision::Park(
                SHIPPED_AFTER_CANCEL,
                "the order was cancelled but this fulfilment had shipped already: a person must settle it",
            )
        }
        (S::Cancelled, I::OrderCancelled) => Decision::Ignore("cancelled already"),
        (S::Cancelled, I::InTransit | I::Delivered | I::ReturnedToSender) => Decision::Ignore(
            "a carrier callback for a fulfilment that never shipped cannot name it",
        ),
    }
}

/// A merchant's share of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The fulfilment's id ([`fulfilment_id`]).
    pub fulfilment_id: String,
    /// The merchant that ships it.
    pub merchant: String,
    /// Its lines, in the order's line order.
    pub lines: Vec<Line>,
}

/// Why an order cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A sku has no owner: no merchant can ship it.
    #[error("no merchant owns {0}")]
    NoOwner(Sku),
    /// The order has no lines.
    #[error("an order without lines")]
    Empty,
}

/// The id of `merchant`'s fulfilment of `order_id`: the same every time, so that a repeated
/// confirmation makes the same fulfilment; text safe in keys and paths whatever the names.
pub fn fulfilment_id(order_id: &str, merchant: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{order_id}\n{merchant}").as_bytes());
    format!("f-{}", hex::encode(&digest[..16]))
}

/// Splits an order's lines into one share per merchant, by `owners` (each sku's owner, as the
/// sku registry says). Shares come in the order of their merchant's first line.
pub fn split(
    order_id: &str,
    lines: &[Line],
    owners: &BTreeMap<Sku, String>,
) -> Result<Vec<Share>, SplitError> {
    if lines.is_empty() {
        return Err(SplitError::Empty);
    }
    let mut shares: Vec<Share> = Vec::new();
    for line in lines {
        let merchant = owners
            .get(&line.sku)
            .ok_or_else(|| SplitError::NoOwner(line.sku.clone()))?;
        match shares.iter_mut().find(|s| &s.merchant == merchant) {
            Some(share) => share.lines.push(line.clone()),
            None => shares.push(Share {
                fulfilment_id: fulfilment_id(order_id, merchant),
                merchant: merchant.clone(),
                lines: vec![line.clone()],
            }),
        }
    }
    Ok(shares)
}

/// Where an order stands, given its fulfilments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Some fulfilment has not shipped yet.
    Waiting,
    /// Every fulfilment has shipped; some are still on their way.
    Shipped,
    /// Every fulfilment reached its end and at least one was delivered.
    Delivered,
    /// Every fulfilment came back to its sender.
    Returned,
    /// The order was cancelled (its fulfilments with it).
    Cancelled,
}

/// The order's progress from the statuses of all of its fulfilments.
pub fn progress(statuses: &[Status]) -> Progress {
    if statuses.is_empty() || statuses.contains(&Status::Open) {
        return Progress::Waiting;
    }
    if statuses.iter().all(|s| *s == Status::Cancelled) {
        return Progress::Cancelled;
    }
    if statuses.iter().any(|s| !s.is_final()) {
        return Progress::Shipped;
    }
    if statuses.contains(&Status::Delivered) {
        Progress::Delivered
    } else if statuses.iter().all(|s| *s == Status::Returned) {
        Progress::Returned
    } else {
        // Some cancelled and some shipped: only a parked conflict leads here.
        Progress::Shipped
    }
}

/// What the order saga is told of the order with each fulfilment announcement: `None` while
/// nothing has shipped (or everything was cancelled), else the order's step.
pub fn order_progress(statuses: &[Status]) -> Option<OrderProgress> {
    match progress(statuses) {
        Progress::Waiting => statuses
            .iter()
            .any(|s| s.has_shipped())
            .then_some(OrderProgress::PartlyShipped),
        Progress::Shipped => Some(OrderProgress::Shipped),
        Progress::Delivered => Some(OrderProgress::Delivered),
        Progress::Returned => Some(OrderProgress::Returned),
        Progress::Cancelled => None,
    }
}

/// One merchant's share of an order, as the fulfilment service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfilment {
    /// Its id ([`fulfilment_id`]).
    pub fulfilment_id: String,
    /// The merchant who ships it.
    pub merchant: String,
    /// Its lines.
    pub lines: Vec<Line>,
    /// Where it is.
    pub status: Status,
    /// The carrier, once shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// The carrier's tracking code, once shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_code: Option<String>,
    /// When it shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Every fulfilment of one order in one record: each change of one of them is one conditional
/// write of this record (guarded by `version`), so that two merchants shipping at once cannot
/// both believe the other has not shipped, and each announcement names the order's true
/// progress ([`order_progress`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFulfilments {
    /// The order.
    pub order_id: String,
    /// Its customer.
    pub customer: String,
    /// Set when a channel sold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// One per merchant, in the order of the merchants' first lines.
    pub fulfilments: Vec<Fulfilment>,
    /// True when the order was cancelled before its confirmation arrived here (messages come
    /// out of order): the confirmation, when it comes, makes nothing.
    #[serde(default)]
    pub cancelled_first: bool,
    /// When the record was made.
    pub created_at: DateTime<Utc>,
    /// Raised by every change; each write is conditional on the version read.
    pub version: u64,
    /// The order's flow, which its confirmation came in: a shipment or a carrier's callback
    /// joins it, so that the order's trace shows its parcels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
}

impl OrderFulfilments {
    /// The fulfilments of a confirmed order, all open.
    pub fn open(
        order_id: &str,
        customer: &str,
        source: Option<Source>,
        shares: Vec<Share>,
        now: DateTime<Utc>,
    ) -> OrderFulfilments {
        OrderFulfilments {
            order_id: order_id.to_string(),
            customer: customer.to_string(),
            source,
            fulfilments: shares
                .into_iter()
                .map(|s| Fulfilment {
                    fulfilment_id: s.fulfilment_id,
                    merchant: s.merchant,
                    lines: s.lines,
                    status: Status::Open,
                    carrier: None,
                    tracking_code: None,
                    shipped_at: None,
                    updated_at: now,
                })
                .collect(),
            cancelled_first: false,
            created_at: now,
            version: 0,
            flow: None,
        }
    }

    /// The mark of an order cancelled before its confirmation arrived.
    pub fn cancelled_first(order_id: &str, customer: &str, now: DateTime<Utc>) -> Self {
        OrderFulfilments {
            order_id: order_id.to_string(),
            customer: customer.to_string(),
            source: None,
            fulfilments: Vec::new(),
            cancelled_first: true,
            created_at: now,
            version: 0,
            flow: None,
        }
    }

    /// The fulfilment `id`.
    pub fn get(&self, id: &str) -> Option<&Fulfilment> {
        self.fulfilments.iter().find(|f| f.fulfilment_id == id)
    }

    /// The fulfilment `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Fulfilment> {
        self.fulfilments.iter_mut().find(|f| f.fulfilment_id == id)
    }

    /// Where the order stands ([`order_progress`]).
    pub fn progress(&self) -> Option<OrderProgress> {
        let statuses: Vec<Status> = self.fulfilments.iter().map(|f| f.status).collect();
        order_progress(&statuses)
    }
}

/// Where the fulfilment service keeps its records in its table (partition key, sort key).
pub mod keys {
    use serde::{Deserialize, Serialize};

    /// The record of every fulfilment of an order ([`super::OrderFulfilments`]).
    pub fn order(order_id: &str) -> (String, String) {
        (format!("ORDER#{order_id}"), "FULFILMENTS".to_string())
    }

    /// What a fulfilment id, a merchant's list entry or a parcel points at.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FulfilmentRef {
        /// The fulfilment.
        pub fulfilment_id: String,
        /// Its order, whose record holds it.
        pub order_id: String,
    }

    /// A fulfilment id's pointer to its order's record.
    pub fn fulfilment(fulfilment_id: &str) -> (String, String) {
        (
            format!("FULFILMENT#{fulfilment_id}"),
            "FULFILMENT".to_string(),
        )
    }

    /// The partition listing a merchant's fulfilments, oldest first (sort key: creation time,
    /// then id).
    pub fn merchant(merchant: &str) -> String {
        format!("MERCHANT#{merchant}")
    }

    /// A merchant's list entry of a fulfilment made at `at`: the moment as fixed-width text,
    /// ordered as text as the moments are in time.
    pub fn merchant_entry(
        merchant: &str,
        at: chrono::DateTime<chrono::Utc>,
        fulfilment_id: &str,
    ) -> (String, String) {
        (
            self::merchant(merchant),
            format!("{}#{fulfilment_id}", at.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
        )
    }

    /// A parcel's pointer to the fulfilment it carries: written once when it ships, so a
    /// tracking code names one fulfilment for good.
    pub fn parcel(carrier: &str, tracking_code: &str) -> (String, String) {
        (
            format!("PARCEL#{carrier}#{tracking_code}"),
            "PARCEL".to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn line(s: &str, q: u32) -> Line {
        Line {
            sku: sku(s),
            quantity: q,
        }
    }

    #[test]
    fn every_status_and_input_has_a_decision_and_final_states_never_move() {
        for status in Status::ALL {
            for input in Input::ALL {
                let d = decide(status, input);
                if status.is_final() {
                    assert!(
                        !matches!(d, Decision::Move(_)),
                        "{status:?} x {input:?}: {d:?}"
                    );
                }
                if let Decision::Move(to) = d {
                    assert_ne!(
                        to, status,
                        "a move changes the status: {status:?} x {input:?}"
                    );
                    assert!(
                        !(status.has_shipped() && to == Status::Cancelled),
                        "what shipped is never cancelled: {status:?} x {input:?}"
                    );
                }
                if matches!(d, Decision::Refuse(_)) {
                    assert_eq!(input, Input::Ship, "only a request is refused");
                }
            }
        }
    }

    #[test]
    fn a_fulfilment_ships_once_and_the_carrier_moves_it_to_its_end() {
        assert_eq!(
            decide(Status::Open, Input::Ship),
            Decision::Move(Status::Shipped)
        );
        assert_eq!(
            decide(Status::Shipped, Input::InTransit),
            Decision::Move(Status::InTransit)
        );
        for from in [Status::Shipped, Status::InTransit] {
            assert_eq!(
                decide(from, Input::Delivered),
                Decision::Move(Status::Delivered)
            );
            assert_eq!(
                decide(from, Input::ReturnedToSender),
                Decision::Move(Status::Returned)
            );
            assert!(matches!(decide(from, Input::Ship), Decision::Refuse(_)));
        }
    }

    #[test]
    fn duplicated_and_late_callbacks_change_nothing_and_contradictions_are_parked() {
        for (status, input) in [
            (Status::InTransit, Input::InTransit),
            (Status::Delivered, Input::InTransit),
            (Status::Delivered, Input::Delivered),
            (Status::Returned, Input::InTransit),
            (Status::Returned, Input::ReturnedToSender),
        ] {
            assert!(
                matches!(decide(status, input), Decision::Ignore(_)),
                "{status:?} x {input:?}"
            );
        }
        assert!(matches!(
            decide(Status::Delivered, Input::ReturnedToSender),
            Decision::Park(CARRIER_CONFLICT, _)
        ));
        assert!(matches!(
            decide(Status::Returned, Input::Delivered),
            Decision::Park(CARRIER_CONFLICT, _)
        ));
    }

    #[test]
    fn a_cancellation_closes_an_open_fulfilment_and_is_parked_once_it_shipped() {
        assert_eq!(
            decide(Status::Open, Input::OrderCancelled),
            Decision::Move(Status::Cancelled)
        );
        for status in Status::ALL.into_iter().filter(|s| s.has_shipped()) {
            assert!(matches!(
                decide(status, Input::OrderCancelled),
                Decision::Park(SHIPPED_AFTER_CANCEL, _)
            ));
        }
        assert!(matches!(
            decide(Status::Cancelled, Input::Ship),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn an_order_is_split_by_the_owner_of_each_sku_in_line_order() {
        let owners: BTreeMap<Sku, String> = [
            (sku("MUG-01"), "merchant-1".to_string()),
            (sku("TEE-01"), "merchant-2".to_string()),
            (sku("CAP-01"), "merchant-1".to_string()),
        ]
        .into_iter()
        .collect();
        let lines = [line("TEE-01", 1), line("MUG-01", 2), line("CAP-01", 1)];
        let shares = split("o-1", &lines, &owners).unwrap();
        assert_eq!(
            shares
                .iter()
                .map(|s| (s.merchant.as_str(), s.lines.len()))
                .collect::<Vec<_>>(),
            [("merchant-2", 1), ("merchant-1", 2)]
        );
        assert_eq!(shares[1].lines, [line("MUG-01", 2), line("CAP-01", 1)]);
        assert_eq!(
            split("o-1", &lines, &owners).unwrap(),
            shares,
            "the same every time"
        );
        assert_ne!(
            shares[0].fulfilment_id, shares[1].fulfilment_id,
            "one fulfilment per merchant"
        );
        assert_ne!(
            fulfilment_id("o-1", "merchant-1"),
            fulfilment_id("o-2", "merchant-1")
        );
        assert_eq!(
            split("o-1", &[line("HAT-01", 1)], &owners),
            Err(SplitError::NoOwner(sku("HAT-01")))
        );
        assert_eq!(split("o-1", &[], &owners), Err(SplitError::Empty));
    }

    #[test]
    fn fulfilment_ids_are_safe_in_keys_and_paths() {
        let id = fulfilment_id("o/../1", "m#\u{0} x");
        assert!(id.starts_with("f-") && id.len() == 34, "{id}");
        assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_order_ships_when_every_fulfilment_has_and_ends_when_every_one_did() {
        use Status as S;
        assert_eq!(progress(&[]), Progress::Waiting);
        assert_eq!(progress(&[S::Shipped, S::Open]), Progress::Waiting);
        assert_eq!(progress(&[S::Shipped, S::InTransit]), Progress::Shipped);
        assert_eq!(progress(&[S::Delivered, S::InTransit]), Progress::Shipped);
        assert_eq!(progress(&[S::Delivered, S::Returned]), Progress::Delivered);
        assert_eq!(progress(&[S::Delivered, S::Delivered]), Progress::Delivered);
        assert_eq!(progress(&[S::Returned, S::Returned]), Progress::Returned);
        assert_eq!(progress(&[S::Cancelled, S::Cancelled]), Progress::Cancelled);
        // Exhaustively over two fulfilments: never "shipped" while one is open, never an end
        // while one is on its way.
        for a in Status::ALL {
            for b in Status::ALL {
                let p = progress(&[a, b]);
                if a == S::Open || b == S::Open {
                    assert_eq!(p, Progress::Waiting, "{a:?} {b:?}");
                }
                if matches!(p, Progress::Delivered | Progress::Returned) {
                    assert!(a.is_final() && b.is_final(), "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn statuses_are_stored_by_their_names() {
        for s in Status::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }

    #[test]
    fn the_saga_hears_of_an_order_once_something_shipped() {
        use Status as S;
        assert_eq!(order_progress(&[S::Open, S::Open]), None);
        assert_eq!(order_progress(&[S::Cancelled]), None);
        assert_eq!(
            order_progress(&[S::Shipped, S::Open]),
            Some(OrderProgress::PartlyShipped)
        );
        assert_eq!(
            order_progress(&[S::Shipped, S::Delivered]),
            Some(OrderProgress::Shipped)
        );
        assert_eq!(
            order_progress(&[S::Returned, S::Delivered]),
            Some(OrderProgress::Delivered)
        );
        assert_eq!(
            order_progress(&[S::Returned]),
            Some(OrderProgress::Returned)
        );
    }
}
