//! The HTTP adapter against the fake provider served on a loopback port: the wire format,
//! the API key, the idempotency key, and how answers map to "try again" or "refused".

use std::sync::Arc;
use std::time::Duration;

use bazaar_fake_provider::{FakeProvider, Switches};
use bazaar_payments::{
    ChargeRequest, ChargeStatus, PaymentProvider, ProviderError, RefundRequest, charge_key,
    refund_key,
};
use bazaar_platform::clock::ManualClock;
use payments_worker::HttpProvider;

async fn served(api_key: &str) -> (Arc<FakeProvider>, String) {
    let provider =
        Arc::new(FakeProvider::new(Arc::new(ManualClock::at_epoch())).with_api_key(api_key));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(bazaar_fake_provider::serve(
        provider.clone(),
        listener,
        std::future::pending(),
    ));
    (provider, url)
}

fn client(url: &str, key: &str, timeout: Duration) -> HttpProvider {
    let world = bazaar_embedded::testing::Fixture::new();
    let secret = world.held_secret("PROVIDER_API_KEY", "provider-api-key", key);
    HttpProvider::new(url, Some(secret), timeout).unwrap()
}

fn charge(token: &str, order: &str) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: charge_key(order),
        order_id: order.into(),
        customer: "customer-1".into(),
        token: token.into(),
        amount: Some(bazaar_contracts::Money {
            amount_cents: 1250,
            currency: bazaar_contracts::money::Currency::parse("EUR").unwrap(),
        }),
        test: false,
    }
}

#[tokio::test]
async fn charges_and_refunds_go_over_the_wire_once_per_key() {
    let (provider, url) = served("sk_test").await;
    let http = client(&url, "sk_test", Duration::from_secs(5));

    let first = http.charge(&charge("tok_ok", "o-1")).await.unwrap();
    let again = http.charge(&charge("tok_ok", "o-1")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.status, ChargeStatus::Succeeded);
    assert_eq!(
        http.charge(&charge("tok_declined", "o-2"))
            .await
            .unwrap()
            .status,
        ChargeStatus::Failed {
            reason: "card_declined".into()
        }
    );
    assert_eq!(
        http.charge(&charge("tok_async", "o-3"))
            .await
            .unwrap()
            .status,
        ChargeStatus::Pending
    );
    let ledger = provider.ledger();
    assert_eq!(ledger.len(), 3);
    assert_eq!(ledger[0].amount_cents, Some(1250), "the amount travels");

    let refund = RefundRequest {
        idempotency_key: refund_key("o-1"),
        payment_id: first.payment_id.clone(),
        order_id: "o-1".into(),
        amount_cents: None,
    };
    let a = http.refund(&refund).await.unwrap();
    assert_eq!(a, http.refund(&refund).await.unwrap());
    assert!(provider.ledger()[0].refunded);
}

#[tokio::test]
async fn the_books_are_read_over_the_wire_a_page_at_a_time() {
    let (_, url) = served("sk_test").await;
    let http = client(&url, "sk_test", Duration::from_secs(5));
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            http.charge(&charge("tok_ok", &format!("o-{i}")))
                .await
                .unwrap()
                .payment_id,
        );
    }

    let one = http.retrieve(&made[2]).await.unwrap();
    assert_eq!(
        (one.reference.as_str(), one.status.clone()),
        ("o-2", ChargeStatus::Succeeded)
    );
    assert_eq!(one.amount.map(|m| m.amount_cents), Some(1250));
    assert!(matches!(
        http.retrieve("pay_nope/../x").await,
        Err(ProviderError::Rejected(m)) if m.contains("404")
    ));
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = http.list(0, after.as_deref(), 2).await.unwrap();
        assert!(page.charges.len() <= 2);
        seen.extend(page.charges.iter().map(|c| c.payment_id.clone()));
        match (page.has_more, page.charges.last()) {
            (true, Some(last)) => after = Some(last.payment_id.clone()),
            _ => break,
        }
    }
    seen.sort();
    made.sort();
    assert_eq!(seen, made, "every charge once");
    assert!(
        http.list(i64::MAX, None, 10)
            .await
            .unwrap()
            .charges
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_not_retried() {
    let (_, url) = served("sk_test").await;
    let http = client(&url, "sk_wrong", Duration::from_secs(5));
    let e = http.charge(&charge("tok_ok", "o-1")).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Rejected(m) if m.contains("401")),
        "{e}"
    );
}

#[tokio::test]
async fn a_down_provider_is_unavailable() {
    let (provider, url) = served("k").await;
    provider.set_switches(Switches {
        down: true,
        ..Switches::default()
    });
    let e = client(&url, "k", Duration::from_secs(5))
        .charge(&charge("tok_ok", "o-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ProviderError::Unavailable(m) if m.contains("503")),
        "{e}"
    );
}

/// On tokio's paused clock: the provider's minute and the client's three seconds are
/// simulated, so the test waits for neither and the order of the two is certain.
#[tokio::test(start_paused = true)]
async fn an_answer_later_than_the_timeout_is_unavailable_and_the_retry_finds_the_charge() {
    let (provider, url) = served("k").await;
    // The slow answer would come after a minute; the client gives up long before.
    provider.set_switches(Switches {
        slow: true,
        slow_ms: 60_000,
        ..Switches::default()
    });
    let http = client(&url, "k", Duration::from_secs(3));
    let started = tokio::time::Instant::now();
    let e = http.charge(&charge("tok_ok", "o-1")).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Unavailable(m) if m.contains("no answer")),
        "{e}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "gave up after {waited:?}, the client's deadline"
    );

    provider.set_switches(Switches::default());
    let retried = http.charge(&charge("tok_ok", "o-1")).await.unwrap();
    assert_eq!(retried.status, ChargeStatus::Succeeded);
    assert_eq!(provider.ledger().len(), 1, "charged once");
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = client(&url, "k", Duration::from_secs(5))
        .charge(&charge("tok_ok", "o-1"))
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}

fn provider_settings(
    pairs: &[(&str, &str)],
) -> Result<payments_worker::ProviderSettings, bazaar_platform::SettingsError> {
    let vars: std::collections::BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    <payments_worker::ProviderSettings as bazaar_platform::Settings>::read(
        &bazaar_platform::settings::Env::new(&vars),
    )
}

#[test]
fn a_bad_url_is_a_configuration_error() {
    let e = provider_settings(&[("PROVIDER_URL", "ftp://x")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "PROVIDER_URL is \"ftp://x\"; expected the provider's base URL, http:// or https:// with a host"
    );
    let e = provider_settings(&[]).unwrap_err();
    assert_eq!((e.variable.as_str(), e.found), ("PROVIDER_URL", None));
    let e = provider_settings(&[
        ("PROVIDER_URL", "https://pay.example"),
        ("PROVIDER_TIMEOUT_MS", "soon"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "PROVIDER_TIMEOUT_MS is \"soon\"; expected a whole number from 1 to 60000"
    );
    let good = provider_settings(&[
        ("PROVIDER_URL", "https://pay.example"),
        ("PROVIDER_TIMEOUT_MS", "250"),
    ])
    .unwrap();
    assert_eq!(good.timeout, std::time::Duration::from_millis(250));
}

#[tokio::test]
async fn a_rotated_api_key_is_used_on_the_first_refusal_without_a_restart() {
    let (provider, url) = served("sk_old_key").await;
    let world = bazaar_embedded::testing::Fixture::new();
    let secret = world.held_secret("PROVIDER_API_KEY", "provider-api-key", "sk_old_key");
    let http = HttpProvider::new(&url, Some(secret.clone()), Duration::from_secs(5)).unwrap();
    http.charge(&charge("tok_ok", "o-1")).await.unwrap();

    // The merchant rolls the key at the provider (the old one stops working) and puts the
    // new one in the secret store; the function is not redeployed.
    provider.set_api_key("sk_new_key");
    world.rotate(secret.id(), "sk_new_key");
    let early = http.charge(&charge("tok_ok", "o-2")).await.unwrap_err();
    assert!(
        matches!(&early, ProviderError::Rejected(m) if m.contains("401")),
        "read a moment ago, so not read again at once: {early}"
    );
    world.clock.advance(chrono::Duration::seconds(31));
    http.charge(&charge("tok_ok", "o-2"))
        .await
        .expect("the refusal makes the client read the store again and send with the new key");
    assert_eq!(
        secret.peek().unwrap().current.expose(),
        "sk_new_key",
        "held from now on"
    );
}

#[tokio::test]
async fn the_api_key_comes_from_the_secret_store_never_the_environment() {
    let world = bazaar_embedded::testing::Fixture::new();
    let arn = world.secret("provider-api-key", "short");
    let deps = world.deps_with_env(
        "payments-worker",
        Some("payments"),
        &[],
        &[
            ("PROVIDER_URL", "https://pay.example"),
            ("PROVIDER_API_KEY_SECRET_ARN", &arn),
        ],
    );
    deps.secrets.warm().await.unwrap();
    let e = HttpProvider::from_deps(&deps).err().expect("too short");
    assert_eq!(e.variable, "PROVIDER_API_KEY_SECRET_ARN");
    assert!(!e.to_string().contains("short\""), "{e}");
    let world2 = bazaar_embedded::testing::Fixture::new();
    let arn2 = world2.secret("provider-api-key", "sk_long_enough");
    let deps = world2.deps_with_env(
        "payments-worker",
        Some("payments"),
        &[],
        &[
            ("PROVIDER_URL", "https://pay.example"),
            ("PROVIDER_API_KEY", "sk_in_the_environment"),
            ("PROVIDER_API_KEY_SECRET_ARN", &arn2),
        ],
    );
    deps.secrets.warm().await.unwrap();
    assert!(HttpProvider::from_deps(&deps).is_ok());
}
