//! The schedule entry point: EventBridge scheduled events (`rate()` / `cron()` rules).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::deps::Deps;
use crate::outbox;
use crate::ports::HandlerError;

/// A job run on every scheduled event of the function.
#[async_trait]
pub trait Job: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Runs the job once. `event` is the EventBridge scheduled event.
    async fn run(&self, deps: &Deps, event: &Value) -> Result<(), HandlerError>;
}

/// Publishes what the function's requests left in its outbox after a crash between commit
/// and publish (see `outbox::sweep`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OutboxSweeper;

#[async_trait]
impl Job for OutboxSweeper {
    fn name(&self) -> &'static str {
        "outbox-sweeper"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let report = outbox::sweep(deps, outbox::SWEEP_GRACE).await?;
        if report.published > 0 {
            tracing::warn!(function = %deps.function, published = report.published, "the sweeper published messages left in the outbox");
        }
        Ok(())
    }
}

/// True when the payload is an EventBridge scheduled event.
pub(crate) fn is_scheduled_event(payload: &Value) -> bool {
    payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// Runs every job, each whatever the others did (a failing job must not starve the outbox
/// sweeper); any failure fails the invocation, with the first error (EventBridge retries).
pub(crate) async fn run_jobs(
    deps: &Deps,
    jobs: &[Arc<dyn Job>],
    event: &Value,
) -> Result<(), HandlerError> {
    let mut first = None;
    for job in jobs {
        if let Err(e) = job.run(deps, event).await {
            tracing::error!(function = %deps.function, job = job.name(), error = %crate::telemetry::error_chain(&e), "scheduled job failed");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
