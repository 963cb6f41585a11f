//! `bazaar top`: the running stack at a glance. Per function, its queue (depth, age of the
//! oldest message, DLQ) and its handling over the last window (messages per second, handled,
//! errors, p50 and p99 time); then the business counters (orders placed, confirmed and
//! cancelled per source, gross value per currency, cancellations by reason, the channels'
//! sync lag).
//!
//! Queues are read from the backend, as `bazaar queues` reads them. Handling and business
//! figures come from the EMF lines the functions print: on the local stack `scripts/dev`
//! appends them to `<data-dir>/metrics.emf` (rotated to `metrics.emf.1`), the same lines a
//! Lambda function prints to CloudWatch Logs. On AWS those lines are in CloudWatch and the
//! template's dashboards show them; `top` then shows the queues alone and says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;

use crate::{QueueRow, Target};

/// One function's handling over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handling {
    /// Messages or requests handled (duplicates acknowledged included).
    pub processed: u64,
    /// Failed, left for a retry (an HTTP 5xx, for an API).
    pub failed: u64,
    /// Sent to the DLQ with their reason.
    pub parked: u64,
    /// Handling times, milliseconds, sorted.
    durations: Vec<f64>,
}

impl Handling {
    /// Everything it saw.
    pub fn total(&self) -> u64 {
        self.processed + self.failed + self.parked
    }

    /// Failed and parked.
    pub fn errors(&self) -> u64 {
        self.failed + self.parked
    }

    /// The time below which `q` (0 to 1) of the handlings took (nearest rank).
    pub fn percentile(&self, q: f64) -> Option<f64> {
        if self.durations.is_empty() {
            return None;
        }
        let rank = (q * self.durations.len() as f64).ceil() as usize;
        Some(self.durations[rank.clamp(1, self.durations.len()) - 1])
    }
}

/// One line of the screen: a function, its queue when a queue triggers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The function's name (`orders-saga`).
    pub function: String,
    /// Its queue, when it consumes one.
    pub queue: Option<QueueRow>,
    /// Its handling over the window.
    pub handling: Handling,
}

impl Row {
    /// Nothing waiting, nothing dead, nothing handled.
    pub fn idle(&self) -> bool {
        self.handling.total() == 0
            && self
                .queue
                .as_ref()
                .is_none_or(|q| q.visible == 0 && q.in_flight == 0 && q.dlq_depth == 0)
    }
}

/// One source's orders over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceFigures {
    /// Orders placed.
    pub placed: u64,
    /// Orders confirmed.
    pub confirmed: u64,
    /// Orders cancelled.
    pub cancelled: u64,
    /// Gross value of the confirmed orders, minor units by currency.
    pub gross: BTreeMap<String, f64>,
}

/// The business over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Business {
    /// By source (`storefront`, `agora`, `souk`).
    pub sources: BTreeMap<String, SourceFigures>,
    /// Cancellations by reason.
    pub cancelled_by_reason: BTreeMap<String, u64>,
    /// Channel sync lag in milliseconds: (latest, highest) by channel.
    pub sync_lag_ms: BTreeMap<String, (f64, f64)>,
}

/// What the EMF lines of a window say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Handling by function name.
    pub functions: BTreeMap<String, Handling>,
    /// The business.
    pub business: Business,
    /// Lines read within the window.
    pub lines: usize,
}

/// Where the figures came from, for the screen's notes.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Read from this file (and its rotated predecessor).
    File(PathBuf),
    /// No such file: the stack has not run here.
    Missing(PathBuf),
    /// AWS: the functions print their lines to CloudWatch, not here.
    CloudWatch,
}

/// Everything `bazaar top` shows at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    /// What was read (the backend's description).
    pub target: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The window the handling and business figures cover.
    pub window: Duration,
    /// One per function of the template, by name.
    pub rows: Vec<Row>,
    /// The business.
    pub business: Business,
    /// Where the handling figures came from.
    pub source: Source,
}

/// Reads the EMF lines of `path` and of its rotated predecessor (older first). Lines that
/// are cut or not JSON are the reader's problem: [`figures`] skips them.
pub fn read_lines(path: &Path) -> std::io::Result<Option<Vec<String>>> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = Vec::new();
    let rotated = bazaar_platform::telemetry::EmfFile::rotated(path);
    match std::fs::read_to_string(&rotated) {
        Ok(text) => lines.extend(text.lines().map(str::to_string)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    lines.extend(current.lines().map(str::to_string));
    Ok(Some(lines))
}

/// The figures of the lines stamped within `(now - window, now]`.
pub fn figures<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    now: DateTime<Utc>,
    window: Duration,
) -> Figures {
    let from = now - window;
    let mut out = Figures::default();
    for line in lines {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(at) = v["_aws"]["Timestamp"]
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        else {
            continue;
        };
        if at <= from || at > now {
            continue;
        }
        let namespace = v["_aws"]["CloudWatchMetrics"][0]["Namespace"]
            .as_str()
            .unwrap_or_default();
        out.lines += 1;
        match namespace {
            "Bazaar" => message(&mut out, &v),
            "Bazaar/Business" => business(&mut out.business, &v),
            "Bazaar/Channels" => {
                if let (Some(channel), Some(lag)) = (v["channel"].as_str(), v["sync_lag"].as_f64())
                {
                    let entry = out
                        .business
                        .sync_lag_ms
                        .entry(channel.to_string())
                        .or_insert((lag, lag));
                    *entry = (lag, entry.1.max(lag));
                }
            }
            _ => {}
        }
    }
    for handling in out.functions.values_mut() {
        handling.durations.sort_by(f64::total_cmp);
    }
    out
}

fn message(out: &mut Figures, v: &Value) {
    let Some(function) = v["function"].as_str() else {
        return;
    };
    let h = out.functions.entry(function.to_string()).or_default();
    if v.get("processed").is_some() {
        h.processed += 1;
    } else if v.get("failed").is_some() {
        h.failed += 1;
    } else if v.get("parked").is_some() {
        h.parked += 1;
    } else {
        return;
    }
    if let Some(d) = v["duration"].as_f64() {
        h.durations.push(d);
    }
}

fn business(b: &mut Business, v: &Value) {
    let source = v["source"].as_str().unwrap_or("unknown").to_string();
    let count = |name: &str| v[name].as_f64().map(|n| n.max(0.0) as u64);
    if let Some(n) = count("orders_placed") {
        b.sources.entry(source.clone()).or_default().placed += n;
    }
    if let Some(n) = count("orders_confirmed") {
        b.sources.entry(source.clone()).or_default().confirmed += n;
    }
    if let Some(n) = count("orders_cancelled") {
        b.sources.entry(source.clone()).or_default().cancelled += n;
        let reason = v["reason"].as_str().unwrap_or("unknown").to_string();
        *b.cancelled_by_reason.entry(reason).or_default() += n;
    }
    if let (Some(value), Some(currency)) = (v["gross_value"].as_f64(), v["currency"].as_str()) {
        *b.sources
            .entry(source)
            .or_default()
            .gross
            .entry(currency.to_string())
            .or_default() += value;
    }
}

/// The screen at the backend's now: queues from the backend, the rest from `emf` (the
/// stack's metrics file; `None` on AWS, where the lines are in CloudWatch).
pub async fn snapshot(
    target: &Target,
    emf: Option<&Path>,
    window: Duration,
) -> anyhow::Result<Screen> {
    let now = target.backend.now();
    let queues = crate::queues(target).await?;
    let (figures, source) = match emf {
        None => (Figures::default(), Source::CloudWatch),
        Some(emf) => match read_lines(emf)? {
            Some(lines) => (
                figures(lines.iter().map(String::as_str), now, window),
                Source::File(emf.to_path_buf()),
            ),
            None => (Figures::default(), Source::Missing(emf.to_path_buf())),
        },
    };
    Ok(screen(target, queues, figures, source, now, window))
}

/// Puts queues and figures together, one row per function of the template.
pub fn screen(
    target: &Target,
    queues: Vec<QueueRow>,
    mut figures: Figures,
    source: Source,
    at: DateTime<Utc>,
    window: Duration,
) -> Screen {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for f in target.model.functions.values() {
        let name = f.name();
        let queue = f.events.iter().find_map(|(_, e)| match e {
            bazaar_localstack::template::EventDef::Sqs { queue, .. } => {
                queues.iter().find(|q| &q.name == queue).cloned()
            }
            _ => None,
        });
        let handling = figures.functions.remove(&name).unwrap_or_default();
        rows.insert(
            name.clone(),
            Row {
                function: name,
                queue,
                handling,
            },
        );
    }
    // Figures of a function the template no longer has (an older run's lines) still show.
    for (name, handling) in figures.functions {
        rows.insert(
            name.clone(),
            Row {
                function: name,
                queue: None,
                handling,
            },
        );
    }
    Screen {
        target: target.backend.describe(),
        at,
        window,
        rows: rows.into_values().collect(),
        business: figures.business,
        source,
    }
}

/// A window given as `30s`, `5m`, `1h` (or plain seconds).
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a window is a number with s, m or h (30s, 5m, 1h)"))?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .filter(|s| (1..=7 * 24 * 3600).contains(s))
    .ok_or_else(|| format!("{text:?}: a window is 1s to 168h, written 30s, 5m or 1h"))?;
    Ok(Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_seconds_minutes_or_hours() {
        assert_eq!(parse_window("30s"), Ok(Duration::seconds(30)));
        assert_eq!(parse_window("5m"), Ok(Duration::minutes(5)));
        assert_eq!(parse_window("2h"), Ok(Duration::hours(2)));
        assert_eq!(parse_window("90"), Ok(Duration::seconds(90)));
        for bad in ["", "0s", "5d", "m", "-5m", "99999999999999999999h", "200h"] {
            assert!(parse_window(bad).is_err(), "{bad:?} refused");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_and_lines_outside_the_window_are_left_out() {
        let at = |s: i64| DateTime::UNIX_EPOCH + Duration::seconds(s);
        let line = |s: i64, outcome: &str, ms: f64| {
            serde_json::json!({
                "_aws": {"Timestamp": at(s).timestamp_millis(), "CloudWatchMetrics": [{"Namespace": "Bazaar"}]},
                "function": "orders-saga", outcome: 1, "duration": ms,
            })
            .to_string()
        };
        let mut lines: Vec<String> = (1..=100)
            .map(|i| line(100, "processed", i as f64))
            .collect();
        lines.push(line(100, "parked", 0.5));
        lines.push(line(100, "failed", 0.5));
        lines.push(line(10, "processed", 1000.0)); // before the window
        lines.push("{\"_aws\": {\"Timestam".into()); // a line being written
        let f = figures(
            lines.iter().map(String::as_str),
            at(120),
            Duration::minutes(1),
        );
        let h = &f.functions["orders-saga"];
        assert_eq!((h.processed, h.failed, h.parked), (100, 1, 1));
        assert_eq!(h.errors(), 2);
        // 102 times, every outcome's: 0.5, 0.5, 1, 2, … 100. The 51st and the 101st.
        assert_eq!(h.percentile(0.5), Some(49.0));
        assert_eq!(h.percentile(0.99), Some(99.0));
        assert_eq!(f.lines, 102);
    }
}
