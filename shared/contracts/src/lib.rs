//! Message contracts of Bazaar: the one place where the shape of every message lives.
//!
//! Producers and consumers never parse the same JSON by hand twice: they share the types here.
//!
//! Layout:
//! - [`envelope`]: the CloudEvents 1.0 envelope (structured JSON mode) with Bazaar's extension
//!   attributes (correlation, causation, actor, flags, traceparent, data version).
//! - [`names`]: the naming rules for events (`<entity>.<verb>`, past tense) and tasks
//!   (`<service>.<entity>.<request>`), checked at compile time by [`event!`] and [`task!`].
//! - [`message`]: the [`Message`] trait every contract implements (type, version, kind, topic,
//!   validation, reading older versions).
//! - [`orders`], [`inventory`]: the typed events and tasks of the order flow.
//!
//! Evolution rules: new fields are optional with defaults; consumers ignore unknown fields; a
//! breaking change is a new version, and the type keeps reading the old one (see
//! [`Message::upcast`]) until it is retired.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod envelope;
pub mod fulfilment;
pub mod inventory;
pub mod items;
pub mod message;
pub mod money;
pub mod names;
pub mod orders;
pub mod payments;
pub mod registry;
pub mod sales;
pub mod text;
pub mod trace;

pub use envelope::{Actor, Data, Envelope, EnvelopeError, Flags, Role};
pub use items::{Line, Sku};
pub use message::{ContractViolation, DecodeError, Kind, Message};
pub use money::{Currency, Money};
pub mod identity;
