//! The queue monitor runs on its schedule in the local stack and reports every queue of the
//! template, so that a queue added without monitoring fails here.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;

#[tokio::test]
async fn every_queue_of_the_template_is_reported_every_minute() {
    let t = common::stack();
    let model = t.stack.model().clone();
    let dlq = &model.queues["NotifierDLQ"].name;
    t.stack
        .engine()
        .send(dlq, "dead", BTreeMap::new(), None, None)
        .unwrap();
    t.stack.run_for(Duration::seconds(61)).await;

    let gauges = t.metrics.gauges();
    let reported: BTreeSet<&str> = gauges.iter().map(|g| g.queue.as_str()).collect();
    let declared: BTreeSet<&str> = model.queues.keys().map(String::as_str).collect();
    assert_eq!(
        reported, declared,
        "MONITORED_QUEUES and MONITORED_DLQS list every queue"
    );
    let notifier_dlq = gauges
        .iter()
        .rev()
        .find(|g| g.queue == "NotifierDLQ")
        .unwrap();
    assert!(notifier_dlq.dead_letter);
    assert_eq!(notifier_dlq.visible, 1);
    assert!(notifier_dlq.oldest_age_s.unwrap() >= 60);
    for g in gauges.iter().filter(|g| g.queue.ends_with("Queue")) {
        assert!(!g.dead_letter, "{} is a consumer queue", g.queue);
    }
}
