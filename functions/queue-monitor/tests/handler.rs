//! queue-monitor on the sample scheduled event, with the embedded queues.

use std::collections::BTreeMap;

use bazaar_embedded::QueueConfig;
use bazaar_embedded::engine::queue_url;
use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use chrono::Duration;

fn world_with(queues: &str, dlqs: &str) -> (Fixture, bazaar_platform::Function) {
    let world = Fixture::new();
    for name in ["saga", "saga-dlq"] {
        world.engine.create_queue(QueueConfig::new(name)).unwrap();
    }
    let deps = world.deps_with_env(
        "queue-monitor",
        None,
        &[],
        &[("MONITORED_QUEUES", queues), ("MONITORED_DLQS", dlqs)],
    );
    let function = queue_monitor::function(deps).expect("valid settings");
    (world, function)
}

#[tokio::test]
async fn every_queue_is_published_with_its_depth_and_oldest_age() {
    let saga = format!("OrdersSagaQueue={}", queue_url("saga"));
    let dlq = format!("OrdersSagaDLQ={}", queue_url("saga-dlq"));
    let (world, function) = world_with(&saga, &dlq);
    for body in ["a", "b", "c"] {
        world
            .engine
            .send("saga", body, BTreeMap::new(), None, None)
            .unwrap();
    }
    world.engine.receive("saga", 1, Some(300)).unwrap();
    world
        .engine
        .send("saga-dlq", "dead", BTreeMap::new(), None, None)
        .unwrap();
    world.clock.advance(Duration::seconds(90));

    function
        .invoke(event("queue-monitor.schedule.json"))
        .await
        .unwrap();

    let gauges = world.metrics.gauges();
    assert_eq!(gauges.len(), 2);
    let saga = gauges
        .iter()
        .find(|g| g.queue == "OrdersSagaQueue")
        .unwrap();
    assert_eq!(
        (
            saga.visible,
            saga.in_flight,
            saga.oldest_age_s,
            saga.dead_letter
        ),
        (2, 1, Some(90), false)
    );
    let dlq = gauges.iter().find(|g| g.queue == "OrdersSagaDLQ").unwrap();
    assert_eq!((dlq.visible, dlq.dead_letter), (1, true));
    let line: serde_json::Value =
        serde_json::from_str(&bazaar_platform::telemetry::emf_gauge_line(dlq)).unwrap();
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Bazaar/Queues"
    );
    assert_eq!(line["queue"], "OrdersSagaDLQ");
    assert_eq!(line["visible"], 1);
}

#[tokio::test]
async fn a_queue_that_cannot_be_read_fails_the_run_after_the_others_are_published() {
    let list = format!(
        "OrdersSagaQueue={}, GoneQueue={}",
        queue_url("saga"),
        queue_url("gone")
    );
    let (world, function) = world_with(&list, "");
    let err = function
        .invoke(event("queue-monitor.schedule.json"))
        .await
        .unwrap_err();
    assert!(err.message.contains("GoneQueue"), "{err}");
    let gauges = world.metrics.gauges();
    assert_eq!(gauges.len(), 1);
    assert_eq!(gauges[0].queue, "OrdersSagaQueue");
}

#[test]
fn a_malformed_list_is_a_configuration_bug() {
    assert!(queue_monitor::parse("OrdersSagaQueue", false).is_err());
    assert_eq!(queue_monitor::parse(" , ", true).unwrap(), vec![]);
}

#[test]
fn a_bad_list_stops_init_naming_the_variable_and_what_it_expects() {
    let world = Fixture::new();
    let start = |env: &[(&str, &str)]| {
        queue_monitor::function(world.deps_with_env("queue-monitor", None, &[], env))
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        start(&[]).as_deref(),
        Some("MONITORED_QUEUES is not set; expected a list of Name=URL pairs separated by commas")
    );
    assert_eq!(
        start(&[("MONITORED_QUEUES", "OrdersSagaQueue")]).as_deref(),
        Some(
            "MONITORED_QUEUES is \"OrdersSagaQueue\"; expected a list of Name=URL pairs separated by commas"
        )
    );
    assert_eq!(
        start(&[
            ("MONITORED_QUEUES", "A=http://q/a"),
            ("MONITORED_DLQS", "B=")
        ])
        .as_deref(),
        Some("MONITORED_DLQS is \"B=\"; expected a list of Name=URL pairs separated by commas")
    );
    assert_eq!(start(&[("MONITORED_QUEUES", "A=http://q/a")]), None);
}
