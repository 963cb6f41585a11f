//! orders-timeouts on the sample scheduled event.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use bazaar_platform::clock::Clock;
use bazaar_platform::item::{Key, Query, item};
use chrono::Duration;
use serde_json::json;

#[tokio::test]
async fn due_deadlines_become_expire_tasks_once_and_later_ones_wait() {
    let world = Fixture::new();
    let deps = world.deps("orders-timeouts", Some("orders"), &["tasks"]);
    let table = deps.table().unwrap();
    let now = world.clock.now();
    for (order, at) in [
        ("o-due", now - Duration::seconds(1)),
        ("o-later", now + Duration::minutes(5)),
    ] {
        table
            .put(
                item(
                    &Key::from(bazaar_orders::keys::deadline(at, order)),
                    json!({ "order_id": order }),
                ),
                None,
            )
            .await
            .unwrap();
    }
    let function = orders_timeouts::function(deps.clone()).expect("valid settings");

    function
        .invoke(event("orders-timeouts.schedule.json"))
        .await
        .unwrap();
    function
        .invoke(event("orders-timeouts.schedule.json"))
        .await
        .unwrap();

    let sent = world.sent("tasks");
    assert_eq!(
        sent.len(),
        1,
        "one task for the due order, even after two runs"
    );
    assert_eq!(
        (
            sent[0].message_type.as_str(),
            sent[0].data.value()["order_id"].as_str()
        ),
        ("orders.order.expire", Some("o-due"))
    );
    assert_eq!(sent[0].actor.subject, "system");
    let left = table
        .query(Query::partition(bazaar_orders::keys::DEADLINES))
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 1, "the later deadline is still waiting");
}
