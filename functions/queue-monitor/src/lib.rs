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
use bazaar_platform::settings::Env;
use bazaar_platform::telemetry::QueueGauge;
use bazaar_platform::{Deps, Function, HandlerError, SettingsError};
use serde_json::Value;

/// Builds the function with its schedule trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let settings: Settings = deps.settings()?;
    Ok(Function::new(deps).schedule(Arc::new(Monitor(settings))))
}

/// The queues to read: `MONITORED_QUEUES` (required: a monitor of nothing is a deployment
/// mistake) and `MONITORED_DLQS`, each `Name=URL,Name=URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Every queue, consumers' first.
    pub queues: Vec<Monitored>,
}

impl bazaar_platform::Settings for Settings {
    fn read(env: &Env<'_>) -> Result<Settings, SettingsError> {
        const EXPECTED: &str = "a list of Name=URL pairs separated by commas";
        let mut queues = parse(env.required("MONITORED_QUEUES", EXPECTED)?, false)
            .map_err(|_| env.invalid("MONITORED_QUEUES", EXPECTED))?;
        if queues.is_empty() {
            return Err(env.invalid("MONITORED_QUEUES", EXPECTED));
        }
        queues.extend(
            parse(env.get("MONITORED_DLQS").unwrap_or(""), true)
                .map_err(|_| env.invalid("MONITORED_DLQS", EXPECTED))?,
        );
        Ok(Settings { queues })
    }
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

/// Reads `Name=URL,Name=URL` (spaces and empty entries ignored); the error is the entry
/// that is not `Name=URL`.
pub fn parse(list: &str, dead_letter: bool) -> Result<Vec<Monitored>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, url) = entry
                .split_once('=')
                .filter(|(n, u)| !n.trim().is_empty() && !u.trim().is_empty())
                .ok_or_else(|| {
                    format!("a monitored queue must be written Name=URL, got {entry:?}")
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
pub struct Monitor(Settings);

#[async_trait]
impl Job for Monitor {
    fn name(&self) -> &'static str {
        "queue-depths"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let stats = deps.queues.as_ref().ok_or_else(|| {
            HandlerError::bug("queue-monitor runs without queue access (MONITORED_QUEUES unset)")
        })?;
        let queues = &self.0.queues;
        let now = deps.clock.now();
        let mut failed = Vec::new();
        for q in queues {
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
