//! Hop records: what `bazaar trace` reads to show that a self-guarded consumer
//! ([`crate::sqs::Consumer::on_self_guarded`]) handled a message, and when.
//!
//! A consumer guarded by its inbox records every message it processed in that inbox record
//! (`INBOX#<envelope id>`, with when its handling began and ended), and trace reads it. A
//! self-guarded consumer needs no such record as a guard, and one per message would cost a
//! write unit each, as much as the effect it records. So the messages such a consumer
//! applied in one batch are recorded together: one item per batch and second of the
//! messages' own creation time, `HOPS#<function>#<second>`, sorted by the first envelope id
//! it lists, holding each message as `[id, began, ended]` (epoch milliseconds). Trace knows the
//! message's time, so it finds the partition and reads the few items a second of traffic
//! makes there. Up to [`PER_ITEM`] messages an item (about 70 bytes each: under 1 KB, one
//! write unit, for a batch of ten).
//!
//! A hop record is written after the batch's effects committed; if it cannot be written, the
//! messages it would list are retried, and the handler, its own guard, writes nothing the
//! second time.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::item::{Key, Query, item};
use crate::ports::{Table, TableError};

/// How many messages one hop record lists at most.
pub const PER_ITEM: usize = 100;

/// One message a self-guarded consumer applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The envelope id.
    pub id: String,
    /// When the envelope was created (its `time`): where its record is found.
    pub time: DateTime<Utc>,
    /// When its handling began.
    pub started_at: DateTime<Utc>,
    /// When its effects were committed.
    pub processed_at: DateTime<Utc>,
}

/// The partition of `function`'s hop records for messages created in `time`'s second.
pub fn partition(function: &str, time: DateTime<Utc>) -> String {
    format!("HOPS#{function}#{}", time.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// The items recording `hops` (one batch's), grouped by second and at most [`PER_ITEM`] each,
/// each with the envelope ids it lists.
pub fn records(function: &str, hops: &[Hop], ttl: i64) -> Vec<(crate::item::Item, Vec<String>)> {
    let mut by_second: std::collections::BTreeMap<String, Vec<&Hop>> = Default::default();
    for h in hops {
        by_second
            .entry(partition(function, h.time))
            .or_default()
            .push(h);
    }
    let mut out = Vec::new();
    for (pk, hops) in by_second {
        for chunk in hops.chunks(PER_ITEM) {
            let listed: Vec<Value> = chunk
                .iter()
                .map(|h| {
                    json!([
                        h.id,
                        h.started_at.timestamp_millis(),
                        h.processed_at.timestamp_millis(),
                    ])
                })
                .collect();
            out.push((
                item(
                    &Key::new(pk.as_str(), chunk[0].id.as_str()),
                    json!({ "hops": listed, "ttl": ttl }),
                ),
                chunk.iter().map(|h| h.id.clone()).collect(),
            ));
        }
    }
    out
}

/// When `function` began and finished handling the message `id` created at `time`, if a hop
/// record lists it.
pub async fn find(
    table: &dyn Table,
    function: &str,
    id: &str,
    time: DateTime<Utc>,
) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, TableError> {
    let items = table
        .query_all(Query::partition(partition(function, time)))
        .await?;
    let at = |v: &Value, index: usize| {
        v.get(index)
            .and_then(Value::as_i64)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    };
    for i in &items {
        let Some(hops) = i.get("hops").and_then(Value::as_array) else {
            continue;
        };
        if let Some(h) = hops
            .iter()
            .find(|h| h.get(0).and_then(Value::as_str) == Some(id))
            && let (Some(started), Some(processed)) = (at(h, 1), at(h, 2))
        {
            return Ok(Some((started, processed)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(id: &str, time: &str) -> Hop {
        let time = DateTime::parse_from_rfc3339(time).unwrap().to_utc();
        Hop {
            id: id.into(),
            time,
            started_at: time,
            processed_at: time,
        }
    }

    #[test]
    fn a_batch_is_one_item_per_second_of_its_messages_and_per_hundred() {
        let mut hops = vec![
            hop("a", "2026-05-01T10:00:00.100Z"),
            hop("b", "2026-05-01T10:00:01.900Z"),
            hop("c", "2026-05-01T10:00:00.700Z"),
        ];
        let items = records("notifier", &hops, 7);
        let listed: Vec<(String, Vec<String>)> = items
            .iter()
            .map(|(i, ids)| (i["pk"].as_str().unwrap().to_string(), ids.clone()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "HOPS#notifier#2026-05-01T10:00:00Z".to_string(),
                    vec!["a".to_string(), "c".to_string()]
                ),
                (
                    "HOPS#notifier#2026-05-01T10:00:01Z".to_string(),
                    vec!["b".to_string()]
                ),
            ]
        );
        assert_eq!(items[0].0["sk"], "a");
        assert_eq!(items[0].0["ttl"], 7);
        hops = (0..250)
            .map(|n| hop(&format!("m{n:03}"), "2026-05-01T10:00:00Z"))
            .collect();
        let sizes: Vec<usize> = records("notifier", &hops, 7)
            .iter()
            .map(|(_, ids)| ids.len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        // A batch of ten fits one write unit.
        let ten: Vec<Hop> = (0..10)
            .map(|n| {
                hop(
                    &format!("2b0c3c8e-5f0a-4d65-9a43-{n:012}"),
                    "2026-05-01T10:00:00Z",
                )
            })
            .collect();
        let (item, _) = &records("notifier", &ten, 1_780_000_000)[0];
        assert!(serde_json::to_string(item).unwrap().len() < 1024);
    }
}
