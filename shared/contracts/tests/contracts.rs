//! Today's consumers read yesterday's messages, tolerate unknown fields, and refuse what breaks
//! a contract with a reason that says which rule.

use bazaar_contracts::envelope::Origin;
use bazaar_contracts::inventory::{InventoryReserved, ReserveStock};
use bazaar_contracts::orders::OrderPlaced;
use bazaar_contracts::{Actor, DecodeError, Envelope, Flags, Kind, Line, Message, Sku};
use chrono::{TimeZone, Utc};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn origin(id: &str) -> Origin {
    Origin {
        id: id.into(),
        source: "bazaar/test".into(),
        time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        correlation_id: "corr-1".into(),
        causation_id: Some("cause-1".into()),
        traceparent: None,
        tracestate: None,
        actor: Actor::new("customer-1", &["customer"]),
        flags: Flags::default(),
    }
}

fn line(sku: &str, quantity: u32) -> Line {
    Line {
        sku: Sku::parse(sku).unwrap(),
        quantity,
    }
}

#[test]
fn a_version_1_order_placed_is_read_by_todays_consumer() {
    let envelope = Envelope::from_json(&fixture("order.placed.v1.json")).unwrap();
    assert_eq!(envelope.data_version, 1);

    let placed: OrderPlaced = envelope.decode().unwrap();

    assert_eq!(placed.customer, "customer-1");
    assert_eq!(placed.items, vec![line("MUG-01", 2)]);
    assert_eq!(placed.deadline, None);
}

#[test]
fn unknown_fields_in_envelope_and_data_are_ignored() {
    let envelope =
        Envelope::from_json(&fixture("inventory.reserved.v1-extra-fields.json")).unwrap();

    let reserved: InventoryReserved = envelope.decode().unwrap();

    assert_eq!(reserved.items, vec![line("MUG-01", 2)]);
    assert_eq!(envelope.flags.get("region"), Some("eu"));
    assert!(envelope.flags.is_on("fast-lane"));
    assert_eq!(envelope.actor, Actor::new("customer-1", &["customer"]));
}

#[test]
fn an_envelope_round_trips_through_its_cloudevents_json() {
    let task = ReserveStock {
        order_id: "o-1".into(),
        items: vec![line("A", 1)],
    };
    let mut o = origin("id-1");
    o.flags.0.insert("beta".into(), "true".into());
    let envelope = Envelope::wrap(&task, o).unwrap();

    let json: serde_json::Value = serde_json::from_str(&envelope.to_json()).unwrap();
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["type"], "inventory.stock.reserve");
    assert_eq!(json["dataversion"], 1);
    assert_eq!(json["correlationid"], "corr-1");
    assert_eq!(json["causationid"], "cause-1");
    assert_eq!(json["actor"], "customer-1");
    assert_eq!(json["actorroles"], "customer");
    assert_eq!(json["flags"], "beta=true");
    assert_eq!(Envelope::from_json(&envelope.to_json()).unwrap(), envelope);
}

#[test]
fn events_go_to_their_entity_topic_and_tasks_to_the_tasks_topic() {
    let task = Envelope::wrap(
        &ReserveStock {
            order_id: "o-1".into(),
            items: vec![line("A", 1)],
        },
        origin("t"),
    )
    .unwrap();
    let event = Envelope::wrap(
        &InventoryReserved {
            order_id: "o-1".into(),
            items: vec![line("A", 1)],
        },
        origin("e"),
    )
    .unwrap();

    assert_eq!((task.kind(), task.topic()), (Kind::Task, "tasks"));
    assert_eq!(task.attributes()["target"], "inventory");
    assert_eq!((event.kind(), event.topic()), (Kind::Event, "inventory"));
    assert_eq!(event.attributes()["type"], "inventory.reserved");
    assert_eq!(ReserveStock::KIND, Kind::Task);
}

#[test]
fn a_newer_version_than_the_consumer_knows_is_refused() {
    let mut envelope = Envelope::from_json(&fixture("order.placed.v1.json")).unwrap();
    envelope.data_version = 3;

    let err = envelope.decode::<OrderPlaced>().unwrap_err();

    assert_eq!(err.reason(), "unknown-version");
}

#[test]
fn a_payload_breaking_the_contract_names_the_field() {
    let mut envelope = Envelope::from_json(&fixture("order.placed.v1.json")).unwrap();
    let mut data = envelope.data.value();
    data["items"][0]["quantity"] = 0.into();
    envelope.data = data.into();

    let err = envelope.decode::<OrderPlaced>().unwrap_err();

    assert!(
        matches!(&err, DecodeError::Contract(v) if v.0.contains("items[0].quantity")),
        "{err}"
    );
}

#[test]
fn decoding_as_the_wrong_type_is_an_unknown_type() {
    let envelope = Envelope::from_json(&fixture("order.placed.v1.json")).unwrap();
    assert_eq!(
        envelope.decode::<InventoryReserved>().unwrap_err().reason(),
        "unknown-type"
    );
}

#[test]
fn a_message_that_breaks_its_contract_cannot_be_wrapped() {
    let bad = ReserveStock {
        order_id: "o-1".into(),
        items: vec![],
    };
    assert!(Envelope::wrap(&bad, origin("x")).is_err());
}

#[test]
fn malformed_envelopes_are_refused_with_a_reason() {
    assert!(Envelope::from_json("not json").is_err());
    assert!(Envelope::from_json(r#"{"specversion":"0.3"}"#).is_err());
    let mut json: serde_json::Value =
        serde_json::from_str(&fixture("order.placed.v1.json")).unwrap();
    json["type"] = "order.place".into();
    let err = Envelope::from_json(&json.to_string()).unwrap_err();
    assert!(
        err.to_string().contains("neither an event nor a task"),
        "{err}"
    );
}
