//! The platform's ports on the AWS SDK, and the Lambda bootstrap that wires them.
//!
//! Layout:
//! - [`dynamodb`]: [`DynamoTable`], the table port on `aws-sdk-dynamodb`.
//! - [`sns`]: [`SnsPublisher`], the publish port on `aws-sdk-sns` (`PublishBatch`).
//! - [`sqs`]: [`SqsDeadLetters`], the dead-letter port on `aws-sdk-sqs`.
//! - [`secrets`]: [`SecretsManagerStore`], the secret store on `aws-sdk-secretsmanager`.
//! - [`bootstrap`]: [`run`], what every function's `main.rs` calls.
//! - [`usage`]: what the adapters' calls cost (requests, capacity units), counted.
//!
//! Each adapter is behind a cargo feature (`dynamodb`, `sns`, `sqs`, `secrets`, `https`; `all` for
//! tools), so that a function's binary carries only the clients its resources need: smaller,
//! and faster to start.
//!
//! The limits of AWS live here, each where it applies: 10 entries per batch, 100 writes per
//! transaction, 256 KiB per message, 400 KB per item. Errors are matched on their SDK types
//! (`ConditionalCheckFailedException` becomes a conflict the caller can act on), never
//! flattened to strings.
#![forbid(unsafe_code)]

pub mod bootstrap;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod https;
#[cfg(feature = "https")]
pub mod keys;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "dynamodb")]
pub mod testing;
pub mod tls;
pub mod usage;

/// Every function allocates through mimalloc rather than the C library's allocator: a message
/// makes a few hundred small allocations (JSON text, strings, maps), and glibc's malloc and
/// free were about a third of the platform's CPU per message (docs/performance.md). Declared
/// here, once, so that every binary linking this crate has it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use bootstrap::{MissingEnvironment, aws_deps, counted_deps, lambda_config, run};
#[cfg(feature = "credential-chain")]
pub use bootstrap::{ToolConfigError, load_config, missing_for_endpoint, tool_config};
#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoTable;
#[cfg(feature = "https")]
pub use keys::HttpKeySource;
#[cfg(feature = "secrets")]
pub use secrets::SecretsManagerStore;
#[cfg(feature = "sns")]
pub use sns::SnsPublisher;
#[cfg(feature = "sqs")]
pub use sqs::SqsDeadLetters;

/// The error a function's `main` returns.
pub use lambda_runtime::Error;
