//! The platform's ports on the AWS SDK, and the Lambda bootstrap that wires them.
//!
//! Layout:
//! - [`dynamodb`]: [`DynamoTable`], the table port on `aws-sdk-dynamodb`.
//! - [`sns`]: [`SnsPublisher`], the publish port on `aws-sdk-sns` (`PublishBatch`).
//! - [`sqs`]: [`SqsDeadLetters`], the dead-letter port on `aws-sdk-sqs`.
//! - [`bootstrap`]: [`run`], what every function's `main.rs` calls.
//!
//! The limits of AWS live here, each where it applies: 10 entries per batch, 100 writes per
//! transaction, 256 KiB per message, 400 KB per item. Errors are matched on their SDK types
//! (`ConditionalCheckFailedException` becomes a conflict the caller can act on), never
//! flattened to strings.
#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod dynamodb;
pub mod keys;
pub mod sns;
pub mod sqs;
pub mod testing;

pub use bootstrap::{aws_deps, load_config, run};
pub use dynamodb::DynamoTable;
pub use keys::HttpKeySource;
pub use sns::SnsPublisher;
pub use sqs::SqsDeadLetters;

/// The error a function's `main` returns.
pub use lambda_runtime::Error;
