//! The adapters count what AWS bills (requests per operation, capacity units by item size),
//! against moto_server.

use std::collections::BTreeMap;

use bazaar_aws::testing;
use bazaar_aws::usage::Usage;
use bazaar_contracts::{Actor, Envelope, Flags};
use bazaar_platform::item::{Condition, Key, Query, Update, Write, item};
use bazaar_platform::ports::TableError;
use chrono::{TimeZone, Utc};
use serde_json::json;

fn envelope(n: usize) -> Envelope {
    Envelope {
        id: format!("usage-{n}"),
        source: "bazaar/usage-test".into(),
        message_type: "inventory.reserved".into(),
        data_version: 1,
        time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        correlation_id: "usage".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: Actor::system(),
        flags: Flags::default(),
        data: json!({"order_id": format!("o-{n}"), "items": [{"sku": "SKU-1", "quantity": 1}]})
            .into(),
    }
}

#[tokio::test]
async fn the_adapters_count_requests_and_capacity_units() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let name = testing::unique("usage");
    testing::create_table(&aws_sdk_dynamodb::Client::new(&config), &name).await;
    let topic = testing::create_topic(&aws_sdk_sns::Client::new(&config), "inventory").await;
    let env = BTreeMap::from([
        ("TABLE_NAME".to_string(), name),
        ("TOPIC_ARN_INVENTORY".to_string(), topic),
    ]);
    let usage = Usage::new();
    let deps = bazaar_aws::counted_deps(&config, "f", env.clone(), Some(&usage));
    let table = deps.table().unwrap();
    let small = item(&Key::new("A", "1"), json!({"v": "x".repeat(100)}));
    let large = item(&Key::new("A", "2"), json!({"v": "x".repeat(1500)}));

    // A put under 1 KB: one unit; over: two. A failed condition is billed too.
    table.put(small.clone(), None).await.unwrap();
    table.put(large.clone(), None).await.unwrap();
    assert!(matches!(
        table.put(small.clone(), Some(Condition::NotExists)).await,
        Err(TableError::ConditionFailed)
    ));
    let t = usage.total();
    assert_eq!(t.requests("DynamoDB.PutItem"), 3);
    assert_eq!(t.write_units, 4.0);

    // Strongly consistent reads: one unit per 4 KB started, a missing item one unit; a query
    // by the size of what it returns.
    usage.reset();
    table.get(&Key::new("A", "1")).await.unwrap().unwrap();
    assert!(table.get(&Key::new("A", "9")).await.unwrap().is_none());
    assert_eq!(
        table
            .query(Query::partition("A"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let t = usage.total();
    assert_eq!(t.requests("DynamoDB.GetItem"), 2);
    assert_eq!(t.requests("DynamoDB.Query"), 1);
    assert_eq!(t.read_units, 3.0);

    // A transaction: two units per KB started, for every item, a check included.
    usage.reset();
    table
        .transact(vec![
            Write::Put {
                item: item(&Key::new("B", "1"), json!({"v": 1})),
                condition: Some(Condition::NotExists),
            },
            Write::Put {
                item: item(&Key::new("B", "2"), json!({"v": "x".repeat(1500)})),
                condition: None,
            },
            Write::Check {
                key: Key::new("A", "1"),
                condition: Condition::Exists,
            },
        ])
        .await
        .unwrap();
    let t = usage.total();
    assert_eq!(t.requests("DynamoDB.TransactWriteItems"), 1);
    assert_eq!(t.write_units, 2.0 + 4.0 + 2.0);

    // A delete is billed by the size of the item it removes.
    usage.reset();
    table.delete(&Key::new("A", "2"), None).await.unwrap();
    assert_eq!(usage.total().write_units, 2.0);

    // An update is billed by the larger of the item before and after: shrinking an item of
    // 1.5 KB costs two units alone, four in a transaction; then the small item, one.
    let big = |sk: &str| item(&Key::new("C", sk), json!({"v": "x".repeat(1500), "w": 1}));
    table.put(big("1"), None).await.unwrap();
    table.put(big("2"), None).await.unwrap();
    usage.reset();
    table
        .update(&Key::new("C", "1"), Update::new().remove("v"), None)
        .await
        .unwrap();
    assert_eq!(usage.total().write_units, 2.0);
    usage.reset();
    table
        .transact(vec![
            Write::Update {
                key: Key::new("C", "2"),
                update: Update::new().set("w", json!(2)),
                condition: None,
            },
            Write::Check {
                key: Key::new("C", "1"),
                condition: Condition::Exists,
            },
        ])
        .await
        .unwrap();
    assert_eq!(usage.total().write_units, 4.0 + 2.0);
    usage.reset();
    table
        .update(&Key::new("C", "1"), Update::new().set("w", json!(3)), None)
        .await
        .unwrap();
    assert_eq!(usage.total().write_units, 1.0);

    // Publishing 12 messages to one topic: two PublishBatch requests, billed as two.
    usage.reset();
    let envelopes: Vec<Envelope> = (0..12).map(envelope).collect();
    deps.publisher.publish(&envelopes).await.unwrap();
    let by_function = usage.by_function();
    let t = &by_function["f"];
    assert_eq!(t.requests("SNS.PublishBatch"), 2);
    assert_eq!(t.billed("SNS"), 2);
    assert_eq!(t.billed("DynamoDB"), 0);
}
