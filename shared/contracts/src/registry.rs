//! Every contract of this crate by its type name, for tools that receive a type as text (the
//! toolbelt's `publish`) and must refuse a payload that its consumers would park.

use serde_json::Value;

use crate::message::{DecodeError, Kind, Message};
use crate::{catalog, fulfilment, identity, inventory, orders, payments, sales};

/// One known contract: its name, current version and kind, and how to check a payload.
#[derive(Clone, Copy)]
pub struct Contract {
    /// The type name (`order.placed`).
    pub message_type: &'static str,
    /// The version producers write.
    pub version: u32,
    /// Event or task.
    pub kind: Kind,
    check: fn(u32, Value) -> Result<(), DecodeError>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("message_type", &self.message_type)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Contract {
    /// Reads `data` as this contract at `version` (older versions through its upcast), with
    /// the same rules a consumer applies.
    pub fn check(&self, version: u32, data: Value) -> Result<(), DecodeError> {
        (self.check)(version, data)
    }
}

fn entry<M: Message>() -> Contract {
    Contract {
        message_type: M::TYPE,
        version: M::VERSION,
        kind: M::KIND,
        check: |version, data| M::decode(version, data).map(|_| ()),
    }
}

/// Every contract, sorted by type name.
pub fn all() -> Vec<Contract> {
    let mut all = vec![
        entry::<catalog::ProductUpdated>(),
        entry::<catalog::PriceUpdated>(),
        entry::<catalog::StockUpdated>(),
        entry::<catalog::ProductPublished>(),
        entry::<catalog::ProductWithdrawn>(),
        entry::<identity::UserAuthed>(),
        entry::<identity::UserCreated>(),
        entry::<identity::UserApproved>(),
        entry::<identity::UserDisabled>(),
        entry::<identity::UserEnabled>(),
        entry::<identity::UserPasswordChanged>(),
        entry::<inventory::ReserveStock>(),
        entry::<inventory::InventoryReserved>(),
        entry::<inventory::InventoryRejected>(),
        entry::<orders::OrderPlaced>(),
        entry::<payments::SettlePayment>(),
        entry::<orders::OrderCancelled>(),
        entry::<orders::ExpireOrder>(),
        entry::<orders::OrderConfirmed>(),
        entry::<orders::OrderShipped>(),
        entry::<orders::OrderDelivered>(),
        entry::<orders::OrderReturned>(),
        entry::<fulfilment::FulfilmentShipped>(),
        entry::<fulfilment::FulfilmentDelivered>(),
        entry::<fulfilment::FulfilmentReturned>(),
        entry::<fulfilment::TrackParcel>(),
        entry::<payments::PaymentCaptured>(),
        entry::<payments::PaymentDeclined>(),
        entry::<payments::ChargePayment>(),
        entry::<payments::RefundPayment>(),
        entry::<payments::PaymentRefunded>(),
        entry::<sales::SalePlaced>(),
        entry::<sales::SaleCancelled>(),
        entry::<sales::SaleAccepted>(),
        entry::<sales::AnswerAgoraSale>(),
        entry::<sales::AnswerSoukSale>(),
    ];
    all.sort_by_key(|c| c.message_type);
    all
}

/// The contract of a type name.
pub fn find(message_type: &str) -> Option<Contract> {
    all().into_iter().find(|c| c.message_type == message_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list above is written by hand: this test reads the crate's sources and fails when a
    /// contract declared with `event!` or `task!` is missing from it.
    #[test]
    fn every_declared_contract_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut declared = Vec::new();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let line = line.trim_start();
                if let Some(rest) = line
                    .strip_prefix("crate::event!(")
                    .or_else(|| line.strip_prefix("crate::task!("))
                {
                    let name = rest.split('"').nth(1).unwrap().to_string();
                    declared.push(name);
                }
            }
        }
        declared.sort();
        let registered: Vec<String> = all().iter().map(|c| c.message_type.to_string()).collect();
        assert!(declared.len() >= 18, "found {declared:?}");
        assert_eq!(registered, declared);
    }

    #[test]
    fn a_payload_is_checked_with_the_consumers_rules() {
        let c = find("inventory.stock.reserve").unwrap();
        assert_eq!(c.kind, Kind::Task);
        let err = c.check(1, serde_json::json!({"order_id": 5})).unwrap_err();
        assert!(matches!(err, DecodeError::Contract(_)), "{err}");
        assert!(matches!(
            c.check(9, serde_json::json!({})),
            Err(DecodeError::UnknownVersion { .. })
        ));
        assert!(find("order.posted").is_none());
    }
}
