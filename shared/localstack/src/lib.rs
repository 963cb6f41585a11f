//! The local stack: runs `template.yaml` in one process, with no Docker and no AWS account.
//!
//! It reads the template ([`template`]), creates its topics, queues (with redrive), subscriptions
//! (filter policies, raw delivery) and tables in the embedded engine, and runs every function
//! through the same entry points it uses on Lambda: event source mappings for SQS triggers
//! (batch size, batching window, partial batch responses), schedules ([`schedule`]) and an API
//! Gateway HTTP API emulator ([`gateway`]). Tests drive it step by step on a simulated clock
//! ([`Stack::settle`]); `scripts/dev` runs it on the system clock ([`Stack::run`]).
#![forbid(unsafe_code)]

pub mod faults;
pub mod gateway;
pub mod schedule;
pub mod stack;
pub mod template;

pub use stack::{Stack, StackOptions};
pub use template::StackModel;

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_platform::{Deps, Function};

/// Builds a function from its dependencies: what each function crate exports as `function`.
pub type Constructor = fn(Arc<Deps>) -> Function;

/// Every function of this repository, by binary name (the template's
/// `Metadata.BuildProperties.Binary`).
pub fn registry() -> BTreeMap<&'static str, Constructor> {
    BTreeMap::from([
        ("identity-api", identity_api::function as Constructor),
        ("orders-api", orders_api::function as Constructor),
        ("orders-saga", orders_saga::function as Constructor),
        ("orders-timeouts", orders_timeouts::function as Constructor),
        ("inventory-api", inventory_api::function as Constructor),
        (
            "inventory-worker",
            inventory_worker::function as Constructor,
        ),
        ("notifier", notifier::function as Constructor),
        (
            "payments-webhook",
            payments_webhook::function as Constructor,
        ),
    ])
}
