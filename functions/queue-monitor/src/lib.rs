//! `queue-monitor`: every minute, reads the depth of every queue of the stack and publishes it
//! as metrics (EMF on Lambda: namespace `Bazaar/Queues`, dimension `queue`), so that a
//! dashboard shows consumer lag and dead letters next to the handlers' own metrics, on AWS and
//! in the local stack alike.
//!
//! The queues come from two variables the template fills with `Name=URL` pairs:
//! `MONITORED_QUEUES` (the consumers' queues) and `MONITORED_DLQS` (their dead-letter queues).
//! A queue that cannot be read is logged and skipped; the others are still published, and the
//! run fails at the end so that the failure shows in the function's error metric.
//!
//! The alarms do not depend on this function: they watch SQS's own CloudWatch metrics (DLQ
//! depth above 0, oldest message older than a threshold), which exist even if it stops.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_platform::schedule::Job;
use bazaar_platform::telemetry::QueueGauge;
use bazaar_platform::{Deps, Function, HandlerError};
use serde_json::Value;

/// Builds the function with its schedule trigger.
pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(deps).schedule(Arc::new(Monitor))
}

/// A queue to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitored {
    /// Its logical id.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Whether it is a dead-letter queue.
    pub dead_letter: bool,
}

/// Reads `Name=URL,Name=URL` (spaces and empty entries ignored).
pub fn parse(list: &str, dead_letter: bool) -> Result<Vec<Monitored>, HandlerError> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, url) = entry.split_once('=').ok_or_else(|| {
                HandlerError::bug(format!(
                    "a monitored queue must be written Name=URL, got {entry:?}"
                ))
            })?;
            Ok(Monitored {
                name: name.trim().to_string(),
                url: url.trim().to_string(),
                dead_letter,
            })
        })
        .collect()
}

/// The job.
pub struct Monitor;

#[async_trait]
impl Job for Monitor {
    fn name(&self) -> &'static str {
        "queue-depths"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let stats = deps.queues.as_ref().ok_or_else(|| {
            HandlerError::bug("queue-monitor runs without queue access (MONITORED_QUEUES unset)")
        })?;
        let mut queues = parse(deps.var("MONITORED_QUEUES").unwrap_or(""), false)?;
        queues.extend(parse(deps.var("MONITORED_DLQS").unwrap_or(""), true)?);
        let now = deps.clock.now();
        let mut failed = Vec::new();
        for q in &queues {
            match stats.depth(&q.url).await {
                Ok(d) => deps.metrics.gauge(&QueueGauge {
                    queue: q.name.clone(),
                    dead_letter: q.dead_letter,
                    visible: d.visible,
                    in_flight: d.in_flight,
                    oldest_age_s: d.oldest_age_s,
                    at: now,
                }),
                Err(e) => {
                    tracing::error!(queue = %q.name, error = %e, "cannot read the queue's depth");
                    failed.push(q.name.clone());
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(HandlerError::Transient(
                format!("could not read {}", failed.join(", ")).into(),
            ))
        }
    }
}
