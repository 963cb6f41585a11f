//! The platform under every Bazaar function: what Powertools gives other languages and what
//! NServiceBus gives .NET, for Rust on Lambda.
//!
//! Layout:
//! - [`ports`]: the small traits the handlers use (table, publish, dead letters, clock, ids)
//!   and their error types, typed by who must act. Adapters live elsewhere: `bazaar-aws` (the
//!   AWS SDK) and `bazaar-embedded` (the local stack); both pass [`conformance`].
//! - [`item`]: the item model of tables and the one implementation of condition and update
//!   semantics that the embedded store uses (DynamoDB's own rules, restated).
//! - [`work`]: the unit of work a handler fills (state changes and messages to send).
//! - [`outbox`]: inbox + outbox in one transaction, dispatch after commit, the sweeper;
//!   [`hops`]: what self-guarded consumers record of each message for `bazaar trace`.
//! - [`sqs`], [`http`], [`schedule`]: the Lambda entry points, and [`function`] which picks
//!   the right one from the shape of the event, so a function can have several triggers.
//! - [`telemetry`]: JSON logs and CloudWatch Embedded Metric Format.
//! - [`faults`]: named points where tests inject crashes; [`harness`]: what tests attach to
//!   a function (nothing in production builds).
//! - [`settings`]: a function's configuration, typed and read once at start.
//! - [`secrets`]: secrets read from a store (never the environment), refreshed, rotated.
//! - [`migrate`]: versioned data migrations, resumable, rate-limited, never overwriting.
//! - [`claims`]: names with exactly one owner, whoever claims first (a registry table).
#![forbid(unsafe_code)]

pub mod auth;
pub mod claims;
pub mod clock;
pub mod conformance;
pub mod deps;
pub mod faults;
pub mod function;
pub mod harness;
pub mod history;
pub mod hops;
pub mod http;
pub mod ids;
pub mod item;
pub mod jwt;
pub mod migrate;
pub mod outbox;
pub mod ports;
pub mod schedule;
pub mod secrets;
pub mod settings;
pub mod sqs;
pub mod telemetry;
pub mod webhook;
pub mod work;

pub use deps::Deps;
pub use function::{Function, LambdaFunction};
pub use ports::{ErrorClass, HandlerError};
pub use settings::{Settings, SettingsError};
pub use work::Work;
