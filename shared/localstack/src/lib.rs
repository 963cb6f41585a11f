//! The local stack: runs `template.yaml` in one process, with no Docker and no AWS account.
//!
//! It reads the template ([`template`]), creates its topics, queues (with redrive), subscriptions
//! (filter policies, raw delivery) and tables in the embedded engine, and runs every function
//! through the same entry points it uses on Lambda: event source mappings for SQS triggers
//! (batch size, batching window, partial batch responses), schedules ([`schedule`]) and an API
//! Gateway HTTP API emulator ([`gateway`]). Tests drive it step by step on a simulated clock
//! ([`Stack::settle`]); `scripts/dev` runs it on the system clock ([`Stack::run`]).
//!
//! Layout: [`stack`] is the runner (resources, schedules, the loops), generic over the
//! template; [`wiring`] builds one function's ports (the embedded store or an AWS endpoint)
//! from [`StackOptions`]; `esm` holds the event source mappings, [`gateway`] the HTTP side,
//! [`functions`] the built functions and their invocation. What is particular to Bazaar (the
//! local signing key, the fake payment provider and its callbacks) sits behind the
//! [`fake::LocalFake`] trait, in [`bazaar`]; [`registry`] names the function crates.
#![forbid(unsafe_code)]

pub mod aws;
pub mod bazaar;
pub mod chaos;
mod esm;
pub mod fake;
pub mod faults;
pub mod functions;
pub mod gateway;
pub mod history;
pub mod registry;
pub mod schedule;
pub mod stack;
pub mod template;
pub mod wiring;

pub use registry::{Constructor, registry};
pub use stack::Stack;
pub use template::StackModel;
pub use wiring::StackOptions;
