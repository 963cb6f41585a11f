//! agora-broker on the sample events of events/, against the fake agora in process.

use std::sync::Arc;

use bazaar_brokers::Limiter;
use bazaar_channels::{ChannelId, Purchase, Wanted};
use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_fake_marketplaces::{Accounts, Call, InProcess, Marketplaces, Switches};
use bazaar_platform::LambdaFunction;
use bazaar_platform::clock::Clock;
use bazaar_platform::item::Key;
use serde_json::json;

fn agora(world: &Fixture) -> Arc<Marketplaces> {
    let m = Arc::new(Marketplaces::new(world.clock.clone(), Accounts::default()));
    let item = Wanted {
        sku: "MUG-01".into(),
        active: true,
        title: "Blue mug".into(),
        description: String::new(),
        category: "kitchen".into(),
        images: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity: 5,
    };
    let r = m.handle(
        &Call::new("PUT", "/agora/api/items/MUG-01")
            .bearer(&m.accounts().agora_key)
            .json(&item.to_agora()),
    );
    assert_eq!(r.status, 200);
    m
}

/// A buyer's order of `quantity` mugs at agora; its external id.
fn buy_mugs(m: &Marketplaces, quantity: u32) -> String {
    m.buy(
        ChannelId::Agora,
        &Purchase {
            sku: "MUG-01".into(),
            quantity,
        },
    )
    .unwrap()
}

fn broker(world: &Fixture, m: &Arc<Marketplaces>) -> bazaar_platform::Function {
    let deps = world.deps("agora-broker", Some("channels"), &["sale"]);
    agora_broker::function_with(
        deps,
        Arc::new(InProcess(m.clone())),
        m.accounts().agora_key.clone(),
    )
    .expect("valid settings")
}

fn answer_for(external_id: &str) -> serde_json::Value {
    with_envelope(event("agora-broker.sqs.json"), |e| {
        e["data"]["external_id"] = json!(external_id);
    })
}

#[tokio::test]
async fn an_acceptance_is_given_once_and_announced() {
    let world = Fixture::new();
    let m = agora(&world);
    let id = buy_mugs(&m, 2);
    let function = broker(&world, &m);
    for _ in 0..2 {
        let r = function.invoke(answer_for(&id)).await.unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    let sent = world.sent("sale");
    assert_eq!(sent.len(), 1, "a repeated task calls nobody: {sent:?}");
    assert_eq!(sent[0].message_type, "sale.accepted");
    assert_eq!(sent[0].data.value()["external_id"], json!(id));
    let order = m.handle(&Call::new("GET", &format!("/agora/orders/{id}")));
    assert_eq!(order.body["status"], "accepted");
    assert_eq!(
        m.stats(ChannelId::Agora).requests,
        2,
        "the item and one answer"
    );
}

#[tokio::test]
async fn an_answer_agora_cannot_take_now_is_owed_not_failed_and_retried_by_the_schedule() {
    let world = Fixture::new();
    let m = agora(&world);
    let id = buy_mugs(&m, 1);
    m.set_switches(
        ChannelId::Agora,
        Switches {
            down: true,
            ..Switches::default()
        },
    );
    let function = broker(&world, &m);
    let r = function.invoke(answer_for(&id)).await.unwrap();
    assert_eq!(
        r["batchItemFailures"],
        json!([]),
        "consumed: no receive count burned while agora is down"
    );
    assert!(world.parked("agora-broker").is_empty());
    assert!(world.sent("sale").is_empty());

    m.set_switches(ChannelId::Agora, Switches::default());
    world.clock.advance(chrono::Duration::seconds(31));
    function
        .invoke(event("agora-broker.schedule.json"))
        .await
        .unwrap();
    let sent = world.sent("sale");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_type, "sale.accepted");
    let order = m.handle(&Call::new("GET", &format!("/agora/orders/{id}")));
    assert_eq!(order.body["status"], "accepted");
}

#[tokio::test]
async fn an_answer_finding_the_second_spent_waits_for_the_next_one_instead_of_being_owed() {
    let world = Fixture::new();
    let m = agora(&world);
    let id = buy_mugs(&m, 1);
    let deps = world.deps("agora-broker", Some("channels"), &["sale"]);
    let limiter = Limiter::of(ChannelId::Agora);
    for _ in 0..bazaar_brokers::limiter::AGORA_PER_SECOND {
        assert!(limiter.try_take(&deps).await.unwrap().is_ok());
    }
    assert!(
        limiter.try_take(&deps).await.unwrap().is_err(),
        "this second's calls are spent"
    );
    let before = world.clock.now();
    let function = broker(&world, &m);
    let r = function.invoke(answer_for(&id)).await.unwrap();
    assert_eq!(r["batchItemFailures"], json!([]));
    let sent = world.sent("sale");
    assert_eq!(sent.len(), 1, "answered within the task: {sent:?}");
    assert_eq!(sent[0].message_type, "sale.accepted");
    let waited = world.clock.now() - before;
    assert!(
        waited <= chrono::Duration::seconds(1),
        "the task waited for the next second only, not for the schedule: {waited}"
    );
    let owed: Option<serde_json::Value> = deps
        .table()
        .unwrap()
        .get_as(&Key::new(
            bazaar_brokers::answers::keys::owed_partition(ChannelId::Agora),
            id.as_str(),
        ))
        .await
        .unwrap();
    assert_eq!(owed, None, "nothing owed");
}

#[tokio::test]
async fn background_work_leaves_answers_their_share_of_each_second() {
    let world = Fixture::new();
    let deps = world.deps("agora-broker", Some("channels"), &["sale"]);
    let answers = Limiter::of(ChannelId::Agora);
    let sync = answers.background();
    let mut synced = 0;
    while sync.try_take(&deps).await.unwrap().is_ok() {
        synced += 1;
    }
    assert_eq!(
        synced,
        bazaar_brokers::limiter::AGORA_PER_SECOND - bazaar_brokers::limiter::RESERVED_FOR_ORDERS
    );
    for _ in 0..bazaar_brokers::limiter::RESERVED_FOR_ORDERS {
        assert!(
            answers.try_take(&deps).await.unwrap().is_ok(),
            "an answer's slot"
        );
    }
    assert!(
        answers.try_take(&deps).await.unwrap().is_err(),
        "and never more than agora's limit in all"
    );
    world.clock.advance(chrono::Duration::seconds(1));
    assert!(
        sync.try_take(&deps).await.unwrap().is_ok(),
        "the next second"
    );
}

#[tokio::test]
async fn an_answer_for_an_order_agora_does_not_know_is_parked_with_its_reason() {
    let world = Fixture::new();
    let m = agora(&world);
    let function = broker(&world, &m);
    let r = function
        .invoke(event("agora-broker.sqs.json"))
        .await
        .unwrap();
    assert_eq!(r["batchItemFailures"], json!([]), "parked, so acknowledged");
    let parked = world.parked("agora-broker");
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].attributes["bazaar.reason"].value,
        bazaar_brokers::answers::CHANNEL_REFUSED
    );
}

#[tokio::test]
async fn without_agora_settings_the_function_does_not_start() {
    let world = Fixture::new();
    let deps = world.deps("agora-broker", Some("channels"), &["sale"]);
    let err = agora_broker::function(deps).err().expect("refused");
    assert_eq!(err.variable, "AGORA_URL");
    let deps = world.deps_with_env(
        "agora-broker",
        Some("channels"),
        &["sale"],
        &[
            ("AGORA_URL", "http://127.0.0.1:3002"),
            ("AGORA_PARTNER_KEY", "a-key-in-the-environment"),
        ],
    );
    let err = agora_broker::function(deps).err().expect("refused");
    assert_eq!(
        err.variable, "AGORA_PARTNER_KEY_SECRET_ARN",
        "a key in the environment is not read"
    );
    let short = world.secret("agora-partner-key", "short");
    let deps = world.deps_with_env(
        "agora-broker",
        Some("channels"),
        &["sale"],
        &[
            ("AGORA_URL", "http://127.0.0.1:3002"),
            ("AGORA_PARTNER_KEY_SECRET_ARN", &short),
        ],
    );
    deps.secrets.warm().await.unwrap();
    let err = agora_broker::function(deps).err().expect("refused");
    assert_eq!(err.variable, "AGORA_PARTNER_KEY_SECRET_ARN");
    assert!(
        !format!("{err}").contains("short"),
        "a secret is never shown"
    );
}
