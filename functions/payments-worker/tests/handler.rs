//! payments-worker on the sample events of events/, with the fake provider in process.

use std::sync::Arc;

use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_fake_provider::{FakeProvider, Switches};
use bazaar_payments::RetryPolicy;
use bazaar_payments::keys::{self, ChargeRecord, ChargeState};
use bazaar_platform::LambdaFunction;
use bazaar_platform::clock::Clock;
use bazaar_platform::item::{Key, parse};
use serde_json::{Value, json};

struct World {
    fixture: Fixture,
    provider: Arc<FakeProvider>,
    function: bazaar_platform::Function,
}

fn world() -> World {
    let fixture = Fixture::new();
    let provider = Arc::new(FakeProvider::new(fixture.clock.clone()));
    let deps = fixture.deps("payments-worker", Some("payments"), &["payment"]);
    let function =
        payments_worker::function_with(deps, provider.clone(), RetryPolicy::immediate(3))
            .expect("valid settings");
    World {
        fixture,
        provider,
        function,
    }
}

fn charge_with(token: &str) -> Value {
    with_envelope(event("payments-worker.charge.sqs.json"), |env| {
        env["data"]["payment_token"] = json!(token)
    })
}

async fn charge_record(w: &World) -> Option<ChargeRecord> {
    let deps = w.fixture.deps("payments-worker", Some("payments"), &[]);
    let item = deps
        .table()
        .unwrap()
        .get(&Key::new(keys::order_partition("o-sample"), keys::CHARGE))
        .await
        .unwrap();
    item.map(|i| parse(i).unwrap())
}

#[tokio::test]
async fn an_approved_card_is_captured_once_even_when_the_task_comes_twice() {
    let w = world();
    let first = w
        .function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    let resent = with_envelope(event("payments-worker.charge.sqs.json"), |env| {
        env["id"] = json!("another-envelope-for-the-same-task")
    });
    let second = w.function.invoke(resent).await.unwrap();

    assert_eq!(first["batchItemFailures"], json!([]));
    assert_eq!(second["batchItemFailures"], json!([]));
    let ledger = w.provider.ledger();
    assert_eq!(ledger.len(), 1, "one charge at the provider: {ledger:?}");
    assert_eq!(ledger[0].reference, "o-sample");
    let sent = w.fixture.sent("payment");
    assert_eq!(sent.len(), 2, "each delivery answers");
    assert!(sent.iter().all(|e| e.message_type == "payment.captured"));
    assert!(
        sent.iter()
            .all(|e| e.data.value()["payment_id"] == json!(ledger[0].payment_id)),
        "both answers name the one payment"
    );
    assert_eq!(
        sent[0].correlation_id, "JKJaXmPLvHcESHA=",
        "the flow is kept"
    );
    assert_eq!(
        charge_record(&w).await.unwrap().status,
        ChargeState::Succeeded
    );
}

#[tokio::test]
async fn a_declined_card_is_declined_with_the_providers_reason() {
    let w = world();
    w.function
        .invoke(charge_with("tok_declined"))
        .await
        .unwrap();
    let sent = w.fixture.sent("payment");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_type, "payment.declined");
    assert_eq!(sent[0].data.value()["reason"], "card_declined");
    assert_eq!(charge_record(&w).await.unwrap().status, ChargeState::Failed);
}

#[tokio::test]
async fn a_pending_charge_emits_nothing_and_waits_for_the_callback() {
    let w = world();
    let r = w.function.invoke(charge_with("tok_async")).await.unwrap();
    assert_eq!(r["batchItemFailures"], json!([]));
    assert!(w.fixture.sent("payment").is_empty());
    assert_eq!(
        charge_record(&w).await.unwrap().status,
        ChargeState::Pending
    );
    assert!(
        w.provider.next_callback_at().is_some(),
        "the provider will call back"
    );
}

#[tokio::test]
async fn a_down_provider_leaves_the_task_on_the_queue_and_the_retry_charges_once() {
    let w = world();
    w.provider.set_switches(Switches {
        down: true,
        ..Switches::default()
    });
    let r = w
        .function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    assert_eq!(
        r["batchItemFailures"][0]["itemIdentifier"], "059f36b4-87a3-44ab-83d2-661975010021",
        "the task is retried later"
    );
    assert_eq!(w.provider.calls(), 3, "three attempts within the delivery");
    assert!(w.fixture.sent("payment").is_empty());
    assert!(w.fixture.parked("payments-worker").is_empty(), "not parked");

    w.provider.set_switches(Switches::default());
    let r = w
        .function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    assert_eq!(r["batchItemFailures"], json!([]));
    assert_eq!(w.provider.ledger().len(), 1);
}

#[tokio::test]
async fn a_slow_answer_is_retried_with_the_same_key_and_charges_once() {
    let w = world();
    w.provider.set_switches(Switches {
        slow: true,
        ..Switches::default()
    });
    let r = w
        .function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    assert_eq!(r["batchItemFailures"].as_array().unwrap().len(), 1);
    assert_eq!(w.provider.ledger().len(), 1, "the provider did charge");

    w.provider.set_switches(Switches::default());
    w.function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    assert_eq!(w.provider.ledger().len(), 1, "and only once");
    let sent = w.fixture.sent("payment");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_type, "payment.captured");
}

#[tokio::test]
async fn a_capture_is_refunded_once() {
    let w = world();
    w.function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    let payment = w.provider.ledger()[0].payment_id.clone();
    let refund = with_envelope(event("payments-worker.refund.sqs.json"), |env| {
        env["data"]["payment_id"] = json!(payment)
    });
    w.function.invoke(refund.clone()).await.unwrap();
    let again = with_envelope(refund, |env| env["id"] = json!("a-second-refund-task"));
    let r = w.function.invoke(again).await.unwrap();

    assert_eq!(r["batchItemFailures"], json!([]));
    assert!(w.provider.ledger()[0].refunded);
    let refunds: Vec<_> = w
        .fixture
        .sent("payment")
        .into_iter()
        .filter(|e| e.message_type == "payment.refunded")
        .collect();
    assert_eq!(refunds.len(), 2, "each delivery answers");
    assert_eq!(
        refunds[0].data.value()["refund_id"],
        refunds[1].data.value()["refund_id"]
    );
}

#[tokio::test]
async fn a_refund_the_provider_refuses_is_parked_with_its_words() {
    let w = world();
    w.function
        .invoke(charge_with("tok_declined"))
        .await
        .unwrap();
    let payment = w.provider.ledger()[0].payment_id.clone();
    let refund = with_envelope(event("payments-worker.refund.sqs.json"), |env| {
        env["data"]["payment_id"] = json!(payment)
    });
    let r = w.function.invoke(refund).await.unwrap();
    assert_eq!(r["batchItemFailures"], json!([]), "parked, not retried");
    let parked = w.fixture.parked("payments-worker");
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].attributes["bazaar.reason"].value,
        "provider-rejected"
    );
}

/// A worker without a provider does not start (Lambda reports an init error and the task
/// stays on its queue, redriven to the DLQ in the end): it never takes a task it cannot do.
#[test]
fn a_worker_without_a_provider_url_does_not_start() {
    let fixture = Fixture::new();
    let deps = fixture.deps("payments-worker", Some("payments"), &["payment"]);
    let error = payments_worker::function(deps)
        .err()
        .expect("no provider, no start");
    assert_eq!(error.variable, "PROVIDER_URL");
    assert!(fixture.parked("payments-worker").is_empty());
}

/// The settle task the webhook makes of the provider's due callback, with `change` applied.
fn settle_from_callback(w: &World, change: impl FnOnce(&mut Value)) -> Value {
    w.fixture
        .clock
        .advance(bazaar_fake_provider::DEFAULT_CALLBACK_DELAY);
    let due = w.provider.take_due_callbacks(w.fixture.clock.now());
    assert_eq!(due.len(), 1, "one callback due");
    let n = &due[0].notification;
    with_envelope(event("payments-worker.settle.sqs.json"), |env| {
        env["data"] = json!({
            "order_id": n.order_id, "payment_id": n.payment_id,
            "outcome": if n.kind == "payment.succeeded" { "succeeded" } else { "failed" },
            "amount": { "amount_cents": n.amount_cents, "currency": n.currency },
            "provider_event": n.id,
        });
        change(&mut env["data"]);
    })
}

fn reasons(w: &World) -> Vec<String> {
    w.fixture
        .parked("payments-worker")
        .iter()
        .map(|m| m.attributes["bazaar.reason"].value.clone())
        .collect()
}

#[tokio::test]
async fn a_callback_that_matches_the_charge_and_the_books_settles_it_once() {
    let w = world();
    w.function.invoke(charge_with("tok_async")).await.unwrap();
    let settle = settle_from_callback(&w, |_| {});

    let first = w.function.invoke(settle.clone()).await.unwrap();
    let again = with_envelope(settle, |env| {
        env["id"] = json!("the-provider-said-it-twice")
    });
    w.function.invoke(again).await.unwrap();

    assert_eq!(first["batchItemFailures"], json!([]));
    let sent = w.fixture.sent("payment");
    assert_eq!(sent.len(), 1, "announced once: {sent:?}");
    assert_eq!(sent[0].message_type, "payment.captured");
    assert_eq!(
        sent[0].data.value()["amount"],
        json!({ "amount_cents": 2500, "currency": "EUR" })
    );
    assert_eq!(
        charge_record(&w).await.unwrap().status,
        ChargeState::Succeeded
    );
    assert!(reasons(&w).is_empty());
}

/// How a forged callback differs from the genuine one.
type Change = fn(&mut Value);

#[tokio::test]
async fn callbacks_that_do_not_match_the_charge_change_nothing_and_are_parked() {
    let cases: [(&str, Change); 5] = [
        ("a made-up payment id", |d| {
            d["payment_id"] = json!("pay_madeup")
        }),
        ("an amount of one cent", |d| {
            d["amount"]["amount_cents"] = json!(1)
        }),
        ("another currency", |d| {
            d["amount"]["currency"] = json!("USD")
        }),
        ("no amount", |d| {
            d.as_object_mut().unwrap().remove("amount");
        }),
        ("another order", |d| {
            d["order_id"] = json!("o-someone-elses")
        }),
    ];
    for (name, change) in cases {
        let w = world();
        w.function.invoke(charge_with("tok_async")).await.unwrap();
        let forged = settle_from_callback(&w, change);

        let r = w.function.invoke(forged).await.unwrap();

        assert_eq!(
            r["batchItemFailures"],
            json!([]),
            "{name}: parked, not retried"
        );
        assert_eq!(reasons(&w), ["payment-mismatch"], "{name}");
        assert!(
            w.fixture.sent("payment").is_empty(),
            "{name}: nothing announced"
        );
        assert_eq!(
            charge_record(&w).await.unwrap().status,
            ChargeState::Pending,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_callback_the_providers_books_contradict_is_parked() {
    let w = world();
    w.function.invoke(charge_with("tok_async")).await.unwrap();
    // The genuine callback says succeeded; a forged one with the right ids says failed.
    let forged = settle_from_callback(&w, |d| d["outcome"] = json!("failed"));

    w.function.invoke(forged).await.unwrap();

    assert_eq!(reasons(&w), ["payment-mismatch"]);
    assert!(w.fixture.sent("payment").is_empty());
}

#[tokio::test]
async fn a_refund_of_another_orders_payment_is_parked_and_refunds_nothing() {
    let w = world();
    w.function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    let victim = w.provider.ledger()[0].payment_id.clone();
    let refund = with_envelope(event("payments-worker.refund.sqs.json"), |env| {
        env["data"]["order_id"] = json!("o-cancelled-elsewhere");
        env["data"]["payment_id"] = json!(victim);
    });

    w.function.invoke(refund).await.unwrap();

    assert_eq!(reasons(&w), ["payment-mismatch"]);
    assert!(
        !w.provider.ledger()[0].refunded,
        "the victim's capture stands"
    );
}

/// Runs the worker's schedule (the reconciliation and the outbox sweeper).
async fn reconcile(w: &World) {
    let r = w
        .function
        .invoke(event("payments-worker.schedule.json"))
        .await
        .unwrap();
    assert!(r.is_null() || r.is_object(), "{r}");
}

#[tokio::test]
async fn the_reconciliation_settles_a_capture_whose_callback_never_came_and_reports_it_once() {
    let w = world();
    w.function.invoke(charge_with("tok_async")).await.unwrap();
    // The provider settles the charge, but its callback is lost.
    w.fixture
        .clock
        .advance(bazaar_fake_provider::DEFAULT_CALLBACK_DELAY);
    assert_eq!(
        w.provider.take_due_callbacks(w.fixture.clock.now()).len(),
        1
    );
    reconcile(&w).await;
    assert!(
        w.fixture.sent("payment").is_empty(),
        "within the grace period: left alone"
    );

    w.fixture.clock.advance(chrono::Duration::minutes(10));
    reconcile(&w).await;
    reconcile(&w).await;

    let sent = w.fixture.sent("payment");
    assert_eq!(sent.len(), 1, "settled once: {sent:?}");
    assert_eq!(sent[0].message_type, "payment.captured");
    assert_eq!(
        charge_record(&w).await.unwrap().status,
        ChargeState::Succeeded
    );
    assert_eq!(reasons(&w), ["capture-unannounced"], "reported once");
}

#[tokio::test]
async fn the_reconciliation_reports_money_taken_for_no_order_once() {
    let w = world();
    // A charge at the provider that this service has no record of.
    use bazaar_payments::PaymentProvider;
    w.provider
        .charge(&bazaar_payments::ChargeRequest {
            idempotency_key: "charge-o-nobody".into(),
            order_id: "o-nobody".into(),
            customer: "customer-9".into(),
            token: "tok_ok".into(),
            amount: None,
            test: false,
        })
        .await
        .unwrap();
    w.fixture.clock.advance(chrono::Duration::minutes(10));

    reconcile(&w).await;
    reconcile(&w).await;

    assert_eq!(reasons(&w), ["capture-without-order"]);
    let letter = &w.fixture.parked("payments-worker")[0];
    let body: Value = serde_json::from_str(&letter.body).unwrap();
    assert_eq!(body["reference"], "o-nobody");
    assert!(
        w.fixture.sent("payment").is_empty(),
        "nothing is announced for it"
    );
}

#[test]
fn a_bad_setting_stops_init_naming_the_variable_and_what_it_expects() {
    let fixture = Fixture::new();
    let provider = Arc::new(FakeProvider::new(fixture.clock.clone()));
    let start = |env: &[(&str, &str)]| {
        let deps = fixture.deps_with_env("payments-worker", Some("payments"), &["payment"], env);
        payments_worker::function_with(deps, provider.clone(), RetryPolicy::immediate(3))
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        start(&[("RECONCILE_LOOKBACK_SECONDS", "2d")]).as_deref(),
        Some(
            "RECONCILE_LOOKBACK_SECONDS is \"2d\"; expected a whole number of seconds from 3600 to 2592000"
        )
    );
    assert_eq!(
        start(&[
            ("RECONCILE_LOOKBACK_SECONDS", "3600"),
            ("RECONCILE_GRACE_SECONDS", "7200")
        ])
        .as_deref(),
        Some(
            "RECONCILE_GRACE_SECONDS is \"7200\"; expected fewer seconds than RECONCILE_LOOKBACK_SECONDS (a window with nothing to judge)"
        )
    );
    assert_eq!(start(&[("RECONCILE_GRACE_SECONDS", "60")]), None);
    // The production constructor needs the provider's address.
    let deps = fixture.deps_with_env("payments-worker", Some("payments"), &["payment"], &[]);
    assert_eq!(
        payments_worker::function(deps)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some(
            "PROVIDER_URL is not set; expected the provider's base URL, http:// or https:// with a host"
        )
    );
    let deps = fixture.deps_with_env(
        "payments-worker",
        Some("payments"),
        &["payment"],
        &[
            ("PROVIDER_URL", "https://pay.example"),
            ("PROVIDER_TIMEOUT_MS", "0"),
        ],
    );
    assert_eq!(
        payments_worker::function(deps)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("PROVIDER_TIMEOUT_MS is \"0\"; expected a whole number from 1 to 60000")
    );
}

#[tokio::test]
async fn a_part_is_refunded_once_per_reference_and_never_beyond_the_charge() {
    let w = world();
    w.function
        .invoke(event("payments-worker.charge.sqs.json"))
        .await
        .unwrap();
    let entry = w.provider.ledger()[0].clone();
    let charged = entry.amount_cents.expect("the sample charges an amount");
    let part = |id: &str, reference: &str, cents: i64| {
        let (id, reference, payment) = (
            id.to_string(),
            reference.to_string(),
            entry.payment_id.clone(),
        );
        with_envelope(event("payments-worker.refund.sqs.json"), move |env| {
            env["id"] = json!(id);
            env["data"]["payment_id"] = json!(payment);
            env["data"]["amount"] = json!({ "amount_cents": cents, "currency": "EUR" });
            env["data"]["reference"] = json!(reference);
        })
    };

    w.function.invoke(part("r-1", "f-a", 100)).await.unwrap();
    w.function.invoke(part("r-2", "f-a", 100)).await.unwrap();
    // More than the charge took: refused here. More than is left: refused by the provider.
    w.function
        .invoke(part("r-3", "f-b", charged + 1))
        .await
        .unwrap();
    w.function
        .invoke(part("r-4", "f-c", charged))
        .await
        .unwrap();

    assert_eq!(
        w.provider.ledger()[0].amount_refunded,
        100,
        "f-a once; f-b and f-c would exceed the charge"
    );
    let mut why = reasons(&w);
    why.sort();
    assert_eq!(why, ["payment-mismatch", "provider-rejected"]);
    let refunded = w.fixture.sent("payment");
    let parts: Vec<_> = refunded
        .iter()
        .filter(|e| e.message_type == "payment.refunded")
        .map(|e| e.data.value())
        .collect();
    assert_eq!(parts.len(), 2, "each task is answered");
    assert_eq!(parts[0], parts[1], "with the one refund of f-a");
    assert_eq!(parts[0]["reference"], "f-a");
    assert_eq!(parts[0]["amount"]["amount_cents"], 100);
}
