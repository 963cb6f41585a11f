//! What people read: tables and trees that fit an 80-column terminal. Long values are cut
//! with `…` in tables and wrapped in detail views; nothing prints raw JSON unless asked
//! (`--json`).

use chrono::{DateTime, Utc};

use crate::QueueRow;
use crate::dlq::{AuditRecord, Group, Letter, Planned};
use crate::top::{Screen, Source as TopSource};
use crate::trace::{Handling, Node};

/// The terminal width every line is kept within.
pub const WIDTH: usize = 80;

/// Cuts `text` to `width` characters, marking the cut with `…`.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Wraps `text` into lines of at most `WIDTH` characters: the first starts with `indent`,
/// the ones it continues onto with as many spaces. Lines break between words; a word longer
/// than a line (an id, a detail without spaces) is cut where the line ends.
pub fn wrap(text: &str, indent: &str) -> String {
    let width = indent.chars().count();
    let room = WIDTH.saturating_sub(width).max(10);
    let hanging = " ".repeat(width);
    let mut out = String::new();
    for line in text.lines() {
        if line.is_empty() {
            out.push('\n');
        }
        let mut current: Vec<char> = Vec::new();
        let mut lines: Vec<Vec<char>> = Vec::new();
        for word in line.split(' ') {
            let word: Vec<char> = word.chars().collect();
            let needed = if current.is_empty() {
                word.len()
            } else {
                current.len() + 1 + word.len()
            };
            if needed <= room {
                if !current.is_empty() {
                    current.push(' ');
                }
                current.extend(word);
                continue;
            }
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            let mut rest = word.as_slice();
            while rest.len() > room {
                lines.push(rest[..room].to_vec());
                rest = &rest[room..];
            }
            current = rest.to_vec();
        }
        if !current.is_empty() || lines.is_empty() && !line.is_empty() {
            lines.push(current);
        }
        for (i, l) in lines.iter().enumerate() {
            out.push_str(if i == 0 { indent } else { &hanging });
            out.extend(l);
            out.push('\n');
        }
    }
    out
}

/// Drops the padding at the end of table lines.
fn tidy(text: String) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A duration in seconds for people: `42s`, `5m`, `3h`, `2d`; `-` when unknown.
pub fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 2 * 3600 => format!("{}m", s / 60),
        Some(s) if s < 2 * 86400 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

fn short_time(t: DateTime<Utc>) -> String {
    t.format("%m-%d %H:%M").to_string()
}

/// `bazaar queues`.
pub fn queues(rows: &[QueueRow]) -> String {
    let mut out = format!(
        "{:<24} {:>7} {:>9} {:>7} {:>5}\n",
        "QUEUE", "VISIBLE", "IN FLIGHT", "OLDEST", "DLQ"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24} {:>7} {:>9} {:>7} {:>5}{}\n",
            cut(&r.logical_id, 24),
            r.visible,
            r.in_flight,
            age(r.oldest_age_s),
            r.dlq_depth,
            if r.dlq_depth > 0 {
                "  <- needs attention"
            } else {
                ""
            }
        ));
    }
    if rows.iter().any(|r| r.dlq_depth > 0) {
        out.push_str("\nSee why with: bazaar dlq list <QUEUE>\n");
    }
    tidy(out)
}

/// `bazaar dlq list`.
pub fn groups(dlq: &str, groups: &[Group]) -> String {
    let total: usize = groups.iter().map(|g| g.count).sum();
    if total == 0 {
        return format!("{dlq} is empty.\n");
    }
    let mut out = format!(
        "{total} dead letters in {} ({} groups; times UTC)\n\n",
        cut(dlq, 40),
        groups.len()
    );
    out.push_str(&format!(
        "{:<20} {:<24} {:>5}  {:<11}  {:<11}\n",
        "REASON", "TYPE", "COUNT", "FIRST SEEN", "LAST SEEN"
    ));
    for g in groups {
        out.push_str(&format!(
            "{:<20} {:<24} {:>5}  {:<11}  {:<11}\n",
            cut(&g.reason, 20),
            cut(&g.message_type, 24),
            g.count,
            short_time(g.first_seen),
            short_time(g.last_seen)
        ));
        if !g.example.is_empty() {
            out.push_str(&format!("  {}\n", cut(&g.example, WIDTH - 2)));
        }
    }
    tidy(out)
}

/// `bazaar dlq list --ids`: one line per letter.
pub fn letter_lines(letters: &[Letter]) -> String {
    let mut out = format!(
        "{:<36}  {:<20} {:<20}\n",
        "ENVELOPE OR MESSAGE ID", "REASON", "TYPE"
    );
    for l in letters {
        let id = l.envelope_id.as_deref().unwrap_or(&l.message.message_id);
        out.push_str(&format!(
            "{:<36}  {:<20} {:<20}\n",
            cut(id, 36),
            cut(&l.reason, 20),
            cut(&l.message_type, 20)
        ));
    }
    tidy(out)
}

/// `bazaar dlq show`.
pub fn letter(l: &Letter) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        out.push_str(&wrap(&format!("{name:<15}{value}"), ""));
    };
    field("message id", &l.message.message_id);
    field("envelope id", l.envelope_id.as_deref().unwrap_or("-"));
    field("type", &l.message_type);
    field("correlation", l.correlation_id.as_deref().unwrap_or("-"));
    field("reason", &l.reason);
    field("detail", if l.detail.is_empty() { "-" } else { &l.detail });
    field("parked by", l.function.as_deref().unwrap_or("-"));
    field("source queue", l.source_queue.as_deref().unwrap_or("-"));
    field("arrived", &l.message.sent_at.to_rfc3339());
    field("receives", &l.message.receive_count.to_string());
    if let Some(g) = &l.message.group_id {
        field("message group", g);
    }
    out.push_str("attributes\n");
    for (k, v) in &l.message.attributes {
        out.push_str(&wrap(&format!("{k} = {v}"), "  "));
    }
    out.push_str("body\n");
    let body = match serde_json::from_str::<serde_json::Value>(&l.message.body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| l.message.body.clone()),
        Err(_) => l.message.body.clone(),
    };
    out.push_str(&wrap(&body, "  "));
    out
}

/// What a replay moves (or would move).
pub fn plan(planned: &[Planned]) -> String {
    let mut out = format!(
        "{:<36}  {:<20} {:<20}\n",
        "ENVELOPE OR MESSAGE ID", "TYPE", "TO"
    );
    for p in planned {
        let id = p
            .letter
            .envelope_id
            .as_deref()
            .unwrap_or(&p.letter.message.message_id);
        let to = match &p.to {
            Ok(q) => q.logical_id.clone(),
            Err(why) => format!("(stays: {why})"),
        };
        out.push_str(&cut(
            &format!(
                "{:<36}  {:<20} {}",
                cut(id, 36),
                cut(&p.letter.message_type, 20),
                to
            ),
            WIDTH,
        ));
        out.push('\n');
    }
    tidy(out)
}

/// One audit line.
pub fn audit_line(r: &AuditRecord) -> String {
    cut(
        &format!(
            "{} {} moved {} {} -> {}",
            r.at.format("%H:%M:%S"),
            r.who,
            r.envelope_id.as_deref().unwrap_or(&r.message_id),
            r.message_type,
            r.to
        ),
        WIDTH,
    )
}

/// A duration as people read it: `850 µs`, `12 ms`, `1.250 s`.
fn took(d: chrono::Duration) -> String {
    let micros = d.num_microseconds().unwrap_or(i64::MAX).max(0);
    match micros {
        m if m < 1_000 => format!("{m} µs"),
        m if m < 1_000_000 => format!("{} ms", m / 1_000),
        m => format!("{:.3} s", m as f64 / 1e6),
    }
}

/// `bazaar trace <sku>`: the flows that touched a sku, one line each.
pub fn sku_flows(sku: &str, flows: &[crate::trace::SkuFlow]) -> String {
    let mut out = format!(
        "{}\n{:<24}{:<22}flow\n",
        cut(
            &format!("sku {sku}: {} flows, oldest first", flows.len()),
            WIDTH
        ),
        "first message",
        "at (UTC)"
    );
    for f in flows {
        let at = f.time.get(..19).unwrap_or(&f.time).replace('T', " ");
        out.push_str(&format!(
            "{:<24}{:<22}{}\n",
            cut(&f.first_type, 23),
            cut(&at, 21),
            cut(&f.correlation_id, WIDTH - 46)
        ));
    }
    out.push_str("bazaar trace <flow> shows one of them\n");
    out
}

/// `bazaar trace`: the tree of a flow's messages; under each, who handled it, how long it
/// waited in their queue and how long their handler ran.
pub fn trace(correlation_id: &str, nodes: &[Node]) -> String {
    let Some(first) = nodes.iter().map(|n| n.time).min() else {
        return format!(
            "nothing archived for {correlation_id} (is it a correlation id? the archiver may not have run yet)\n"
        );
    };
    let last = nodes.iter().map(|n| n.time).max().unwrap_or(first);
    let traces = crate::trace::trace_ids(nodes);
    let trace_line = match traces.len() {
        0 => "trace: none recorded (messages from before traces were kept)".to_string(),
        1 => format!(
            "trace {}",
            traces.iter().next().map(|t| t.hex()).unwrap_or_default()
        ),
        n => format!("{n} traces (some messages were published by hand or before traces)"),
    };
    let mut out = format!(
        "{}\n{}\n{} messages, {} to {} UTC ({:.3} s)\n\n",
        cut(&format!("flow {correlation_id}"), WIDTH),
        cut(&trace_line, WIDTH),
        nodes.len(),
        first.format("%Y-%m-%d %H:%M:%S%.3f"),
        last.format("%H:%M:%S%.3f"),
        (last - first).num_milliseconds() as f64 / 1000.0
    );
    for n in nodes {
        let indent = "  ".repeat(n.depth.min(10));
        let head = format!("{indent}{}", n.message_type);
        out.push_str(&format!(
            "{:<44}{}  by {}\n",
            cut(&head, 43),
            n.time.format("%H:%M:%S%.3f"),
            cut(&n.source, 20)
        ));
        if n.joined() {
            out.push_str(&wrap(
                &format!(
                    "a later step, joining the flow: {} acted on {}",
                    n.source,
                    n.causation_id.as_deref().unwrap_or("a request")
                ),
                &format!("{indent}  ~ "),
            ));
        }
        let mut done = Vec::new();
        let mut other = Vec::new();
        for c in &n.outcomes {
            match &c.handling {
                Handling::Processed => done.push(match (c.waited(n.time), c.ran()) {
                    (Some(w), Some(r)) => {
                        format!("{} (queued {}, ran {})", c.function, took(w), took(r))
                    }
                    _ => c.function.clone(),
                }),
                Handling::Parked(reason) => {
                    other.push(format!("PARKED at {}: {reason}", c.function))
                }
                Handling::Pending => other.push(format!("pending at {}", c.function)),
            }
        }
        let mut parts = Vec::new();
        if !done.is_empty() {
            parts.push(format!("processed by {}", done.join(", ")));
        }
        parts.extend(other);
        if parts.is_empty() {
            parts.push("no consumer".into());
        }
        out.push_str(&wrap(&parts.join("; "), &format!("{indent}  -> ")));
    }
    out
}

/// A handling time for people: `0.08`, `3.1`, `42`, in milliseconds; `-` when none.
fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 10.0 => format!("{ms:.2}"),
        Some(ms) if ms < 100.0 => format!("{ms:.1}"),
        Some(ms) => format!("{ms:.0}"),
    }
}

/// A lag for people: `120ms`, `1.2s`, `3m`.
fn lag(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 120_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        age(Some((ms / 1000.0) as i64))
    }
}

/// `bazaar top`: one screen, every line within [`WIDTH`]. Functions with nothing waiting,
/// nothing dead and nothing handled in the window are left out unless `all`.
pub fn top(screen: &Screen, all: bool) -> String {
    let window = age(Some(screen.window.num_seconds()));
    let seconds = screen.window.num_seconds().max(1) as f64;
    let mut out = cut(
        &format!(
            "bazaar top  {}  last {window}  {}",
            screen.at.format("%Y-%m-%d %H:%M:%S UTC"),
            screen.target
        ),
        WIDTH,
    );
    out.push_str("\n\n");
    out.push_str(&format!(
        "{:<20} {:-^20}  {:-^34}\n",
        "", " QUEUE ", " HANDLING "
    ));
    out.push_str(&format!(
        "{:<20} {:>6} {:>6} {:>6}  {:>6} {:>6} {:>5} {:>7} {:>7}\n",
        "FUNCTION", "DEPTH", "OLDEST", "DLQ", "MSG/S", "DONE", "ERR", "P50 ms", "P99 ms"
    ));
    let mut hidden = 0;
    let mut dead = false;
    for row in &screen.rows {
        if !all && row.idle() {
            hidden += 1;
            continue;
        }
        let (depth, oldest, dlq) = match &row.queue {
            Some(q) => (
                (q.visible + q.in_flight).to_string(),
                // An empty queue has no oldest message, whatever the backend says.
                age(q.oldest_age_s.filter(|_| q.visible + q.in_flight > 0)),
                q.dlq_depth.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let h = &row.handling;
        let rate = if h.total() == 0 {
            "0".to_string()
        } else {
            format!("{:.2}", h.total() as f64 / seconds)
        };
        let attention = row.queue.as_ref().is_some_and(|q| q.dlq_depth > 0);
        dead |= attention;
        out.push_str(&format!(
            "{:<20} {:>6} {:>6} {:>6}  {:>6} {:>6} {:>5} {:>7} {:>7}{}\n",
            cut(&row.function, 20),
            depth,
            oldest,
            dlq,
            rate,
            h.processed,
            h.errors(),
            millis(h.percentile(0.50)),
            millis(h.percentile(0.99)),
            if attention { " !" } else { "" }
        ));
    }
    if hidden > 0 {
        out.push_str(&format!(
            "({hidden} idle functions not shown; --all shows them)\n"
        ));
    }
    if dead {
        out.push_str("! dead letters waiting: see why with bazaar dlq list <FUNCTION>\n");
    }
    let missing = match &screen.source {
        TopSource::File(_) => None,
        TopSource::Missing(path) => Some(format!(
            "No handling or business figures: {} does not exist. scripts/dev writes it as the functions run.",
            path.display()
        )),
        TopSource::CloudWatch => Some(
            "No handling or business figures here: on AWS they are in CloudWatch, on the stage's dashboards (bazaar-<stage>-api, -queues, -sagas, -channels, -business).".to_string(),
        ),
    };
    if let Some(text) = missing {
        out.push('\n');
        out.push_str(&wrap(&text, ""));
    }
    out.push('\n');
    let b = &screen.business;
    if screen.source == TopSource::CloudWatch {
        return tidy(out);
    }
    if b.sources.is_empty() {
        out.push_str(&wrap(
            &format!(
                "BUSINESS  no order placed, confirmed or cancelled in the last {window} (test orders are left out)"
            ),
            "",
        ));
    } else {
        out.push_str(&format!(
            "{:<20} {:>6} {:>9} {:>9}  {}\n",
            "BUSINESS", "PLACED", "CONFIRMED", "CANCELLED", "GROSS (minor units)"
        ));
        for (source, f) in &b.sources {
            let gross = f
                .gross
                .iter()
                .map(|(c, v)| format!("{c} {v:.0}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "{:<20} {:>6} {:>9} {:>9}  {}\n",
                cut(source, 20),
                f.placed,
                f.confirmed,
                f.cancelled,
                cut(if gross.is_empty() { "-" } else { &gross }, 30)
            ));
        }
    }
    if !b.cancelled_by_reason.is_empty() {
        let reasons = b
            .cancelled_by_reason
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&wrap(&format!("cancelled by reason: {reasons}"), ""));
    }
    if !b.sync_lag_ms.is_empty() {
        let lags = b
            .sync_lag_ms
            .iter()
            .map(|(c, (last, max))| format!("{c} {} (max {})", lag(*last), lag(*max)))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&wrap(&format!("channel sync lag: {lags}"), ""));
    }
    tidy(out)
}

/// `bazaar secrets list`: one line per secret of the template, never a value.
pub fn secrets(rows: &[crate::secrets::SecretRow]) -> String {
    let mut out = format!(
        "{:<24} {:<44} {:<8} {}\n",
        "SECRET", "NAME", "EXISTS", "READ BY"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24} {:<44} {:<8} {}\n",
            r.logical_id,
            r.name,
            if r.arn.is_some() { "yes" } else { "NO" },
            r.readers.join(", ")
        ));
    }
    out
}
