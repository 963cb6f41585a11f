//! The template provisioned on an AWS API (moto, started by `scripts/test`): everything is
//! created the first time, nothing changes the second, and the wiring works (a published
//! event reaches exactly the queues whose filter policies take it, raw).

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use bazaar_aws::testing;
use bazaar_localstack::StackModel;
use bazaar_platform::ports::{QueueStats, Topics};

#[tokio::test]
async fn provisioning_twice_changes_nothing_the_second_time_and_the_wiring_works() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let stage = testing::unique("prov");
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::from([("Stage".to_string(), stage)]),
    )
    .unwrap();

    let first = bazaar_localstack::aws::provision(&model, &config)
        .await
        .unwrap();
    let created = |kind: &str| first.changes.iter().filter(|c| c.starts_with(kind)).count();
    assert_eq!(created("created topic"), model.topics.len());
    assert_eq!(created("created queue"), model.queues.len());
    assert_eq!(created("subscribed"), model.subscriptions.len());
    assert_eq!(created("created table"), model.tables.len());
    let second = bazaar_localstack::aws::provision(&model, &config)
        .await
        .unwrap();
    assert_eq!(
        second.changes,
        Vec::<String>::new(),
        "a second run is a no-op"
    );
    assert_eq!(second.queue_urls, first.queue_urls);

    let sqs = aws_sdk_sqs::Client::new(&config);
    let saga = &model.queues["OrdersSagaQueue"];
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&first.queue_urls[&saga.name])
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let redrive: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    let dlq = &saga.redrive.as_ref().unwrap().dead_letter_queue;
    assert_eq!(
        redrive["deadLetterTargetArn"],
        first.queue_arns[dlq].as_str()
    );

    // A drifted attribute is put back, and reported.
    sqs.set_queue_attributes()
        .queue_url(&first.queue_urls[&saga.name])
        .attributes(QueueAttributeName::VisibilityTimeout, "5")
        .send()
        .await
        .unwrap();
    let third = bazaar_localstack::aws::provision(&model, &config)
        .await
        .unwrap();
    assert_eq!(
        third.changes,
        vec![format!("set VisibilityTimeout of queue {}", saga.name)]
    );

    // order.placed goes to the saga and the archiver (and whoever else takes it), not to the
    // payments worker.
    let env = first.rebind(&model.functions["OrdersApiFunction"].environment);
    let publisher =
        bazaar_aws::SnsPublisher::new(aws_sdk_sns::Client::new(&config), Topics::from_env(&env));
    let envelope: bazaar_contracts::Envelope = serde_json::from_value(serde_json::json!({
        "specversion": "1.0", "id": "e-prov-1", "source": "bazaar/orders-api",
        "type": "order.placed", "time": "2026-01-01T00:00:00Z", "correlationid": "c-1",
        "actor": "customer-1", "actorroles": "customer", "dataversion": 2,
        "datacontenttype": "application/json", "data": {}
    }))
    .unwrap();
    use bazaar_platform::ports::Publisher;
    publisher.publish(&[envelope]).await.unwrap();
    let stats = bazaar_aws::sqs::SqsQueueStats::new(sqs.clone());
    let depth = |q: &str| {
        let url = first.queue_urls[&model.queues[q].name].clone();
        let stats = stats.clone();
        async move { stats.depth(&url).await.unwrap() }
    };
    assert_eq!(depth("OrdersSagaQueue").await.visible, 1);
    assert_eq!(depth("EventArchiverQueue").await.visible, 1);
    assert_eq!(depth("PaymentsWorkerQueue").await.visible, 0);
    let got = sqs
        .receive_message()
        .queue_url(&first.queue_urls[&saga.name])
        .visibility_timeout(60)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(
        body["id"], "e-prov-1",
        "raw delivery: the body is the envelope"
    );
    let d = depth("OrdersSagaQueue").await;
    assert_eq!((d.visible, d.in_flight, d.oldest_age_s), (0, 1, None));
}

/// The local signing key (whose private half is in this repository) goes only to loopback
/// endpoints. `0.0.0.0` reaches moto on this machine (Linux connects it to the local host)
/// while not being a loopback name: it stands for a real stage's endpoint here.
#[tokio::test]
async fn the_local_signing_key_is_installed_on_loopback_endpoints_only() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let elsewhere = endpoint.replace("127.0.0.1", "0.0.0.0");
    assert_ne!(elsewhere, endpoint, "moto listens on 127.0.0.1");
    for (url, installed) in [(&endpoint, true), (&elsewhere, false)] {
        let model = StackModel::load_local(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
            &BTreeMap::from([("Stage".to_string(), testing::unique("keys"))]),
        )
        .unwrap();
        let engine = bazaar_embedded::Engine::in_memory(std::sync::Arc::new(
            bazaar_platform::clock::SystemClock,
        ))
        .unwrap();
        let stack = bazaar_localstack::Stack::build_on_aws(
            model,
            bazaar_localstack::StackOptions::live(engine),
            testing::config(url),
            true,
        )
        .await
        .unwrap();
        assert_eq!(stack.has_local_signing_key().await, installed, "{url}");
    }
}
