//! The embedded AWS: SNS topics, SQS queues and DynamoDB tables in one process, stored in
//! SQLite (a file under `.bazaar/` for `scripts/dev`, in memory for tests), on the platform's
//! clock so that tests run on simulated time.
//!
//! Layout:
//! - [`engine`]: the store and the services' semantics (visibility timeout, receive counts,
//!   redrive, FIFO groups, fan-out with filter policies and raw delivery).
//! - [`filter`]: SNS filter policies.
//! - [`adapters`]: the platform's ports on top of the engine; they pass the same conformance
//!   suite as the AWS SDK adapters.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod engine;
pub mod filter;
pub mod identity;
pub mod testing;

pub use adapters::{EmbeddedDeadLetters, EmbeddedPublisher, EmbeddedSecrets, EmbeddedTable, deps};
pub use engine::{Engine, EngineError, QueueConfig, QueueStats, Received, Redrive, Subscription};
