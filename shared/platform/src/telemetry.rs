//! Logs and metrics.
//!
//! Logs are JSON, one line per processed message or request, with `function`, `message_id`,
//! `type`, `correlation_id`, `causation_id`, `trace_id` and `span_id` as fields (see
//! `log_outcome`). Metrics use
//! CloudWatch's Embedded Metric Format: a JSON line on stdout that CloudWatch Logs turns into
//! metrics without an API call (`emf_line`).

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::json;

/// What happened to one message or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Handled (or recognised as a duplicate and acknowledged).
    Processed,
    /// Not handled; left for a retry.
    Failed,
    /// Sent to the DLQ with its reason.
    Parked,
}

impl Outcome {
    /// The metric and log name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Failed => "failed",
            Outcome::Parked => "parked",
        }
    }
}

/// The measurements of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageMetrics {
    /// The function.
    pub function: String,
    /// The message type (or `unknown` when the envelope could not be read).
    pub message_type: String,
    /// What happened.
    pub outcome: Outcome,
    /// Handling time in milliseconds.
    pub duration_ms: f64,
    /// From the envelope's `time` to the end of processing, in milliseconds: how stale the
    /// system is for this flow.
    pub critical_time_ms: Option<f64>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The depth of one queue at one moment, as the queue monitor reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueGauge {
    /// The queue's logical id in the template (`OrdersSagaQueue`).
    pub queue: String,
    /// Whether it is a dead-letter queue.
    pub dead_letter: bool,
    /// Messages that can be received now (delayed ones included).
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Age of the oldest message in seconds, when the queue service tells it.
    pub oldest_age_s: Option<i64>,
    /// When it was read.
    pub at: DateTime<Utc>,
}

/// Counts a job reports (a reconciliation's drift, say), as one EMF line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// The CloudWatch namespace (`Bazaar/Channels`).
    pub namespace: &'static str,
    /// Dimensions, by name.
    pub dimensions: Vec<(&'static str, String)>,
    /// The counts, by metric name.
    pub values: Vec<(&'static str, u64)>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The unit of a measured value, as EMF names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A duration.
    Milliseconds,
    /// A number with no unit (an amount of money in minor units).
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// Values a function measures beyond its messages (business metrics, a channel's sync lag),
/// as one EMF line: each value is published under every dimension set, so that one line
/// gives, say, the gross value per currency and per source and currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The CloudWatch namespace (`Bazaar/Business`).
    pub namespace: &'static str,
    /// The dimension sets, each a list of dimension names.
    pub dimension_sets: Vec<Vec<&'static str>>,
    /// The dimensions' values, by name (every name of every set).
    pub dimensions: Vec<(&'static str, String)>,
    /// The values, by metric name, with their units.
    pub values: Vec<(&'static str, f64, Unit)>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The EMF JSON line of a measurement.
pub fn emf_measurement_line(m: &Measurement) -> String {
    let metrics: Vec<serde_json::Value> = m
        .values
        .iter()
        .map(|(n, _, unit)| json!({"Name": n, "Unit": unit.as_str()}))
        .collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": m.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": m.namespace,
                "Dimensions": m.dimension_sets,
                "Metrics": metrics,
            }],
        },
    });
    for (n, v) in &m.dimensions {
        line[*n] = json!(v);
    }
    for (n, v, _) in &m.values {
        line[*n] = json!(v);
    }
    line.to_string()
}

/// Where metrics go.
pub trait MetricsSink: Send + Sync {
    /// Records the measurements of one message.
    fn record(&self, metrics: &MessageMetrics);
    /// Records a queue's depth (the queue monitor's readings). Ignored unless the sink
    /// keeps gauges.
    fn gauge(&self, _gauge: &QueueGauge) {}
    /// Records a job's counts. Ignored unless the sink keeps them.
    fn counters(&self, _counters: &Counters) {}
    /// Records a measurement. Ignored unless the sink keeps them.
    fn measure(&self, _measurement: &Measurement) {}
}

/// The EMF JSON line of a job's counts.
pub fn emf_counters_line(c: &Counters) -> String {
    let dims: Vec<&str> = c.dimensions.iter().map(|(n, _)| *n).collect();
    let metrics: Vec<serde_json::Value> = c
        .values
        .iter()
        .map(|(n, _)| json!({"Name": n, "Unit": "Count"}))
        .collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": c.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": c.namespace,
                "Dimensions": [dims],
                "Metrics": metrics,
            }],
        },
    });
    for (n, v) in &c.dimensions {
        line[*n] = json!(v);
    }
    for (n, v) in &c.values {
        line[*n] = json!(v);
    }
    line.to_string()
}

/// Prints EMF lines on stdout, where Lambda sends them to CloudWatch Logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmfStdout;

impl MetricsSink for EmfStdout {
    fn record(&self, metrics: &MessageMetrics) {
        println!("{}", emf_line(metrics));
    }

    fn gauge(&self, gauge: &QueueGauge) {
        println!("{}", emf_gauge_line(gauge));
    }

    fn counters(&self, counters: &Counters) {
        println!("{}", emf_counters_line(counters));
    }

    fn measure(&self, measurement: &Measurement) {
        println!("{}", emf_measurement_line(measurement));
    }
}

/// Keeps metrics in memory, for tests and for the local stack's summary.
#[derive(Debug, Default)]
pub struct CollectedMetrics {
    messages: Mutex<Vec<MessageMetrics>>,
    gauges: Mutex<Vec<QueueGauge>>,
    counters: Mutex<Vec<Counters>>,
    measurements: Mutex<Vec<Measurement>>,
}

impl CollectedMetrics {
    /// Everything recorded so far.
    pub fn all(&self) -> Vec<MessageMetrics> {
        self.messages.lock().expect("metrics lock").clone()
    }

    /// How many messages of a function had an outcome.
    pub fn count(&self, function: &str, outcome: Outcome) -> usize {
        self.messages
            .lock()
            .expect("metrics lock")
            .iter()
            .filter(|m| m.function == function && m.outcome == outcome)
            .count()
    }

    /// Every job's counts recorded so far.
    pub fn counters(&self) -> Vec<Counters> {
        self.counters.lock().expect("metrics lock").clone()
    }

    /// The queue depths recorded.
    pub fn gauges(&self) -> Vec<QueueGauge> {
        self.gauges.lock().expect("metrics lock").clone()
    }

    /// The measurements recorded.
    pub fn measurements(&self) -> Vec<Measurement> {
        self.measurements.lock().expect("metrics lock").clone()
    }

    /// Everything recorded, as the EMF lines a Lambda function would print.
    pub fn emf_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.all().iter().map(emf_line).collect();
        lines.extend(self.gauges().iter().map(emf_gauge_line));
        lines.extend(self.counters().iter().map(emf_counters_line));
        lines.extend(self.measurements().iter().map(emf_measurement_line));
        lines
    }
}

impl MetricsSink for CollectedMetrics {
    fn record(&self, metrics: &MessageMetrics) {
        self.messages
            .lock()
            .expect("metrics lock")
            .push(metrics.clone());
    }

    fn gauge(&self, gauge: &QueueGauge) {
        self.gauges
            .lock()
            .expect("metrics lock")
            .push(gauge.clone());
    }

    fn counters(&self, counters: &Counters) {
        self.counters
            .lock()
            .expect("metrics lock")
            .push(counters.clone());
    }

    fn measure(&self, measurement: &Measurement) {
        self.measurements
            .lock()
            .expect("metrics lock")
            .push(measurement.clone());
    }
}

/// Appends EMF lines to a file, as CloudWatch Logs keeps a function's output: the local
/// stack's metrics, where `bazaar top` reads them. Lines are written whole (one `write` of
/// the line and its newline under a lock), so a reader never sees half a line but the last
/// one being written. At `max_bytes` the file is renamed to `<name>.1` (the one before it
/// dropped) and a new one begun, so a stack left running for days does not fill the disk
/// while a reader still finds the last stretch of time in the two files.
#[derive(Debug)]
pub struct EmfFile {
    path: std::path::PathBuf,
    max_bytes: u64,
    file: Mutex<Option<(std::fs::File, u64)>>,
}

impl EmfFile {
    /// Where a stack keeps its metrics inside its data folder.
    pub const FILE_NAME: &'static str = "metrics.emf";
    /// The size at which the file is rotated by default: about 100,000 messages' lines.
    pub const DEFAULT_MAX_BYTES: u64 = 32 * 1024 * 1024;

    /// Appends to `path` (created with its folder when missing), rotating at `max_bytes`.
    pub fn open(path: &std::path::Path, max_bytes: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = Self::append(path)?;
        let len = file.metadata()?.len();
        Ok(EmfFile {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            file: Mutex::new(Some((file, len))),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The rotated file beside `path` (`metrics.emf.1`).
    pub fn rotated(path: &std::path::Path) -> std::path::PathBuf {
        let mut name = path.as_os_str().to_os_string();
        name.push(".1");
        std::path::PathBuf::from(name)
    }

    fn append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Writes one line. A metric is not worth failing a message for: an error is logged
    /// and the line dropped.
    fn write(&self, line: String) {
        use std::io::Write as _;
        let mut guard = self.file.lock().expect("metrics file lock");
        let result = (|| -> std::io::Result<()> {
            if guard
                .as_ref()
                .is_some_and(|(_, len)| *len >= self.max_bytes)
            {
                *guard = None;
                std::fs::rename(&self.path, Self::rotated(&self.path))?;
            }
            if guard.is_none() {
                let file = Self::append(&self.path)?;
                let len = file.metadata()?.len();
                *guard = Some((file, len));
            }
            let (file, len) = guard.as_mut().expect("opened above");
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            file.write_all(&bytes)?;
            *len += bytes.len() as u64;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "a metrics line was not written");
        }
    }
}

impl MetricsSink for EmfFile {
    fn record(&self, metrics: &MessageMetrics) {
        self.write(emf_line(metrics));
    }

    fn gauge(&self, gauge: &QueueGauge) {
        self.write(emf_gauge_line(gauge));
    }

    fn counters(&self, counters: &Counters) {
        self.write(emf_counters_line(counters));
    }

    fn measure(&self, measurement: &Measurement) {
        self.write(emf_measurement_line(measurement));
    }
}

/// The EMF JSON line for one message: namespace `Bazaar`, dimensions function and type.
pub(crate) fn emf_line(m: &MessageMetrics) -> String {
    let mut metrics = vec![
        json!({"Name": m.outcome.as_str(), "Unit": "Count"}),
        json!({"Name": "duration", "Unit": "Milliseconds"}),
    ];
    if m.critical_time_ms.is_some() {
        metrics.push(json!({"Name": "critical_time", "Unit": "Milliseconds"}));
    }
    let mut line = json!({
        "_aws": {
            "Timestamp": m.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Bazaar",
                "Dimensions": [["function", "type"]],
                "Metrics": metrics,
            }],
        },
        "function": m.function,
        "type": m.message_type,
        m.outcome.as_str(): 1,
        "duration": m.duration_ms,
    });
    if let Some(ct) = m.critical_time_ms {
        line["critical_time"] = json!(ct);
    }
    line.to_string()
}

/// The EMF JSON line for a queue's depth: namespace `Bazaar/Queues`, dimension `queue`.
/// The oldest age is left out when the queue service does not tell it (SQS's API does not:
/// CloudWatch's own `AWS/SQS ApproximateAgeOfOldestMessage` has it, and the alarms use it).
pub fn emf_gauge_line(g: &QueueGauge) -> String {
    let mut metrics = vec![
        json!({"Name": "visible", "Unit": "Count"}),
        json!({"Name": "in_flight", "Unit": "Count"}),
    ];
    if g.oldest_age_s.is_some() {
        metrics.push(json!({"Name": "oldest_age", "Unit": "Seconds"}));
    }
    let mut line = json!({
        "_aws": {
            "Timestamp": g.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Bazaar/Queues",
                "Dimensions": [["queue"]],
                "Metrics": metrics,
            }],
        },
        "queue": g.queue,
        "dead_letter": g.dead_letter,
        "visible": g.visible,
        "in_flight": g.in_flight,
    });
    if let Some(age) = g.oldest_age_s {
        line["oldest_age"] = json!(age);
    }
    line.to_string()
}

/// The identifying fields of one log line.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogFields<'a> {
    /// The function.
    pub function: &'a str,
    /// The envelope id (or the request id for HTTP).
    pub message_id: &'a str,
    /// The message type, or the route for HTTP.
    pub message_type: &'a str,
    /// The flow.
    pub correlation_id: &'a str,
    /// What caused it.
    pub causation_id: &'a str,
    /// The hop's span, when known (not for a body that is no envelope).
    pub span: Option<bazaar_contracts::trace::Span>,
}

/// Logs the outcome of one message as one JSON line (info for success, warn for parked,
/// error for failures, with the error's cause chain).
pub(crate) fn log_outcome(
    f: &LogFields<'_>,
    outcome: Outcome,
    detail: Option<&(dyn std::error::Error + 'static)>,
) {
    let chain = detail.map(error_chain).unwrap_or_default();
    let trace_id = f.span.map(|s| s.trace_id.hex()).unwrap_or_default();
    let span_id = f.span.map(|s| s.span_id.hex()).unwrap_or_default();
    match outcome {
        Outcome::Processed => tracing::info!(
            function = f.function,
            message_id = f.message_id,
            r#type = f.message_type,
            correlation_id = f.correlation_id,
            causation_id = f.causation_id,
            trace_id = %trace_id,
            span_id = %span_id,
            outcome = "processed"
        ),
        Outcome::Parked => tracing::warn!(
            function = f.function,
            message_id = f.message_id,
            r#type = f.message_type,
            correlation_id = f.correlation_id,
            causation_id = f.causation_id,
            trace_id = %trace_id,
            span_id = %span_id,
            outcome = "parked",
            error = chain
        ),
        Outcome::Failed => tracing::error!(
            function = f.function,
            message_id = f.message_id,
            r#type = f.message_type,
            correlation_id = f.correlation_id,
            causation_id = f.causation_id,
            trace_id = %trace_id,
            span_id = %span_id,
            outcome = "failed",
            error = chain
        ),
    }
}

/// An error and its sources, joined with `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Installs JSON logging for a Lambda function (level from `RUST_LOG`, default `info`).
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .try_init();
}

/// Installs readable logging for the local stack and tools, on stderr so that a command's
/// output stays clean on stdout. The SDK's credential chain logs each provider that found
/// nothing (instance metadata off an EC2 machine, say) as a warning; the tools say what is
/// missing themselves, so its warnings are left out unless `RUST_LOG` asks for them.
pub fn init_readable_logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws_config=error"));
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(n: usize) -> Measurement {
        Measurement {
            namespace: "Bazaar/Business",
            dimension_sets: vec![vec!["source"]],
            dimensions: vec![("source", format!("s{n}"))],
            values: vec![("orders_placed", 1.0, Unit::Count)],
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_emf_file_keeps_whole_lines_and_rotates_at_its_size() {
        let dir = std::env::temp_dir().join(format!("bazaar-emf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join(EmfFile::FILE_NAME);
        let line_len = emf_measurement_line(&measurement(0)).len() as u64 + 1;
        let sink = EmfFile::open(&path, line_len * 10).unwrap();
        for n in 0..25 {
            sink.measure(&measurement(n % 10));
        }
        let read = |p: &std::path::Path| -> Vec<serde_json::Value> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("whole JSON lines"))
                .collect()
        };
        // 25 lines, 10 to a file: the first ten were dropped with the second rotation.
        assert_eq!(read(&EmfFile::rotated(&path)).len(), 10);
        assert_eq!(read(&path).len(), 5);

        // Opened again (a restarted stack), it appends and keeps counting the size it found.
        let again = EmfFile::open(&path, line_len * 10).unwrap();
        for n in 0..6 {
            again.measure(&measurement(n));
        }
        assert_eq!(
            read(&path).len(),
            1,
            "rotated once five more lines were written"
        );
        assert_eq!(read(&EmfFile::rotated(&path)).len(), 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_emf_line_declares_its_metrics_and_carries_their_values() {
        let m = MessageMetrics {
            function: "orders-saga".into(),
            message_type: "order.placed".into(),
            outcome: Outcome::Parked,
            duration_ms: 1.5,
            critical_time_ms: Some(20.0),
            at: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .to_utc(),
        };

        let line: serde_json::Value = serde_json::from_str(&emf_line(&m)).unwrap();

        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "Bazaar");
        let names: Vec<_> = declared["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["parked", "duration", "critical_time"]);
        assert_eq!(line["parked"], 1);
        assert_eq!(line["critical_time"], 20.0);
        assert_eq!(line["_aws"]["Timestamp"], 1_767_225_600_000i64);
    }
}
