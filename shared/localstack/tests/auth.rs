//! Identity at the edge and in the functions: the API Gateway emulator's JWT authorizer and the
//! functions' own check both refuse forged tokens with 401; each route maps roles to its own
//! permissions (wrong role 403, another owner's resource 404); the caller travels in every
//! envelope the request causes; failed sign-ins are throttled per user and per source.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bazaar_embedded::filter::Scope;
use bazaar_embedded::identity::{self, FAR_FUTURE, LOCAL_AUDIENCE, LOCAL_ISSUER, LOCAL_KID};
use bazaar_embedded::testing::event;
use bazaar_embedded::{QueueConfig, Subscription};
use std::collections::BTreeMap;

use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use bazaar_platform::jwt::SigningKey;
use chrono::Duration;
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

fn claims(overrides: Value) -> Value {
    let mut c = json!({
        "iss": LOCAL_ISSUER, "sub": "operator", "aud": LOCAL_AUDIENCE, "roles": ["operator"],
        "iat": 0, "nbf": 0, "exp": FAR_FUTURE, "jti": "t",
    });
    for (k, v) in overrides.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn signed(header: Value, payload: Value) -> String {
    identity::local_signing_key()
        .sign_parts(&header, &payload)
        .unwrap()
}

fn rs256() -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": LOCAL_KID })
}

/// Every way a token can be wrong, by name.
fn forged(now: i64) -> Vec<(&'static str, String)> {
    let valid = signed(rs256(), claims(json!({})));
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({ "alg": "none", "typ": "JWT", "kid": LOCAL_KID }).to_string()),
        B64.encode(claims(json!({})).to_string())
    );
    // Algorithm confusion: HMAC keyed with the public key's bytes.
    let hmac = {
        let input = format!(
            "{}.{}",
            B64.encode(json!({ "alg": "HS256", "typ": "JWT", "kid": LOCAL_KID }).to_string()),
            B64.encode(claims(json!({})).to_string())
        );
        let jwk = identity::local_signing_key().jwk();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwk.n.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", B64.encode(tag.as_ref()))
    };
    let other_key = SigningKey::generate(LOCAL_KID)
        .unwrap()
        .sign_parts(&rs256(), &claims(json!({})))
        .unwrap();
    let unknown_kid = signed(
        json!({ "alg": "RS256", "typ": "JWT", "kid": "nobody-has-this-key" }),
        claims(json!({})),
    );
    let tampered = {
        let parts: Vec<&str> = valid.split('.').collect();
        let payload = B64.encode(claims(json!({ "sub": "someone-else" })).to_string());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    vec![
        ("alg none", unsigned),
        ("HMAC with the public key", hmac),
        ("signed by another key", other_key),
        ("unknown kid", unknown_kid),
        (
            "expired",
            signed(
                rs256(),
                claims(json!({ "exp": now - 3600, "iat": now - 7200, "nbf": now - 7200 })),
            ),
        ),
        (
            "not yet valid",
            signed(rs256(), claims(json!({ "nbf": now + 3600 }))),
        ),
        (
            "another issuer",
            signed(rs256(), claims(json!({ "iss": "https://evil.example" }))),
        ),
        (
            "another audience",
            signed(rs256(), claims(json!({ "aud": "another-api" }))),
        ),
        ("tampered payload", tampered),
        (
            "string dates",
            signed(rs256(), claims(json!({ "exp": FAR_FUTURE.to_string() }))),
        ),
        (
            "over 8 KB",
            signed(rs256(), claims(json!({ "pad": "x".repeat(9000) }))),
        ),
        ("garbage", "not.a.token".to_string()),
    ]
}

#[tokio::test]
async fn forged_tokens_are_refused_at_the_edge_and_by_the_function_itself() {
    let s = stack();
    let now = s.stack.engine().clock().now().timestamp();
    let valid = signed(rs256(), claims(json!({})));
    let get = |token: &str| {
        HttpRequest::get("/orders/none-such").header("authorization", &format!("Bearer {token}"))
    };
    assert_eq!(
        s.stack.http(get(&valid)).await.status,
        404,
        "the valid token passes both checks (and the order does not exist)"
    );

    for (case, token) in forged(now) {
        let edge = s.stack.http(get(&token)).await;
        assert_eq!(
            (edge.status, edge.json()),
            (401, json!({ "message": "Unauthorized" })),
            "{case}: refused by the JWT authorizer"
        );
        // The same request delivered straight to the function, as through a route deployed
        // without the authorizer.
        let mut direct = event("orders-api.get-order.json");
        direct["headers"]["authorization"] = json!(format!("Bearer {token}"));
        let response = s.stack.invoke("OrdersApiFunction", direct).await.unwrap();
        assert_eq!(response["statusCode"], 401, "{case}: refused by orders-api");
        assert_eq!(
            response["headers"]["content-type"], "application/problem+json",
            "{case}"
        );
    }
    let mut anonymous = event("orders-api.get-order.json");
    anonymous["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let response = s
        .stack
        .invoke("OrdersApiFunction", anonymous)
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 401, "no token at all");
}

#[tokio::test]
async fn a_rotated_key_is_found_by_its_kid() {
    let s = stack();
    // The identity service publishes a new key; a token signed with it passes both checks.
    let identity_table = s.stack.table_of("IdentityApiFunction").unwrap();
    let fresh = SigningKey::generate("rotated-key").unwrap();
    identity_api::install_key(identity_table.as_ref(), &fresh, 0, FAR_FUTURE)
        .await
        .unwrap();
    let token = fresh
        .sign_parts(
            &json!({ "alg": "RS256", "typ": "JWT", "kid": "rotated-key" }),
            &claims(json!({})),
        )
        .unwrap();
    let r = s
        .stack
        .http(
            HttpRequest::get("/orders?customer=customer-1")
                .header("authorization", &format!("Bearer {token}")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["orders"], json!([]), "the operator's answer");
    // A key the identity service never published is refused, so the 200 above is the key's.
    let stranger = SigningKey::generate("stranger-key").unwrap();
    let token = stranger
        .sign_parts(
            &json!({ "alg": "RS256", "typ": "JWT", "kid": "stranger-key" }),
            &claims(json!({})),
        )
        .unwrap();
    let r = s
        .stack
        .http(
            HttpRequest::get("/orders?customer=customer-1")
                .header("authorization", &format!("Bearer {token}")),
        )
        .await;
    assert_eq!(r.status, 401);
}

async fn status(s: &TestStack, request: HttpRequest, who: Option<(&str, &str)>) -> u16 {
    let request = match who {
        Some((subject, role)) => request.header("authorization", &bearer(subject, role)),
        None => request,
    };
    s.stack.http(request).await.status
}

#[tokio::test]
async fn every_route_maps_roles_to_its_own_permissions() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let order = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    let place = |key: &str| {
        HttpRequest::json(
            "POST",
            "/orders",
            &json!({ "items": [{ "sku": "MUG-01", "quantity": 1 }], "payment": { "token": "tok_ok" } }),
        )
        .header("idempotency-key", key)
    };
    let read = || HttpRequest::get(&format!("/orders/{order}"));
    let stock = |sku: &str| {
        HttpRequest::json(
            "PUT",
            &format!("/inventory/{sku}"),
            &json!({ "available": 5 }),
        )
    };

    // POST /orders: customers only.
    assert_eq!(status(&s, place("a"), None).await, 401);
    assert_eq!(
        status(&s, place("b"), Some(("merchant-1", "merchant"))).await,
        403
    );
    assert_eq!(
        status(&s, place("c"), Some(("operator", "operator"))).await,
        403
    );
    assert_eq!(
        status(&s, place("d"), Some(("customer-2", "customer"))).await,
        202
    );

    // GET /orders/{id}: the customer who owns it, and operators.
    assert_eq!(status(&s, read(), None).await, 401);
    assert_eq!(
        status(&s, read(), Some(("merchant-1", "merchant"))).await,
        403
    );
    assert_eq!(
        status(&s, read(), Some(("customer-2", "customer"))).await,
        404
    );
    assert_eq!(
        status(&s, read(), Some(("customer-1", "customer"))).await,
        200
    );
    assert_eq!(
        status(&s, read(), Some(("operator", "operator"))).await,
        200
    );

    // GET /orders: a customer's own list; operators name the customer.
    let list = |q: &str| HttpRequest::get(&format!("/orders{q}"));
    assert_eq!(status(&s, list(""), None).await, 401);
    assert_eq!(
        status(&s, list(""), Some(("merchant-1", "merchant"))).await,
        403
    );
    assert_eq!(
        status(&s, list(""), Some(("operator", "operator"))).await,
        400
    );
    let listed = |who: &str, role: &str, q: &str| {
        let r = s
            .stack
            .http(list(q).header("authorization", &bearer(who, role)));
        async move {
            let r = r.await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["order_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("customer-1", "customer", "").await,
        vec![order.clone()]
    );
    assert_eq!(
        listed("customer-1", "customer", "?customer=customer-2").await,
        vec![order.clone()],
        "a customer only ever lists their own"
    );
    assert_eq!(
        listed("customer-2", "customer", "").await.len(),
        1,
        "customer-2's own order"
    );
    assert_eq!(
        listed("operator", "operator", "?customer=customer-1").await,
        vec![order.clone()]
    );

    // PUT /inventory/{sku}: merchants, on their own skus.
    assert_eq!(status(&s, stock("MUG-01"), None).await, 401);
    assert_eq!(
        status(&s, stock("MUG-01"), Some(("customer-1", "customer"))).await,
        403
    );
    assert_eq!(
        status(&s, stock("MUG-01"), Some(("merchant-2", "merchant"))).await,
        404
    );
    assert_eq!(
        status(&s, stock("MUG-01"), Some(("merchant-1", "merchant"))).await,
        200
    );
    assert_eq!(
        status(&s, stock("NEW-01"), Some(("merchant-2", "merchant"))).await,
        200
    );

    // The identity routes are public; a wrong password is 401.
    let login = HttpRequest::json(
        "POST",
        "/auth/token",
        &json!({ "username": "customer-1", "password": "wrong" }),
    );
    assert_eq!(status(&s, login, None).await, 401);
    assert_eq!(
        status(&s, HttpRequest::get("/.well-known/jwks.json"), None).await,
        200
    );
    assert_eq!(
        status(
            &s,
            HttpRequest::get("/.well-known/openid-configuration"),
            None
        )
        .await,
        200
    );
}

#[tokio::test]
async fn the_caller_travels_in_every_envelope_the_request_causes() {
    let s = stack();
    let probe = "probe-everything";
    s.stack
        .engine()
        .create_queue(QueueConfig::new(probe))
        .unwrap();
    for topic in ["OrderTopic", "InventoryTopic", "PaymentTopic", "TasksTopic"] {
        s.stack
            .engine()
            .subscribe(
                &s.stack.name_of(topic).unwrap(),
                Subscription {
                    queue: probe.into(),
                    filter_policy: None,
                    scope: Scope::MessageAttributes,
                    raw: true,
                },
            )
            .unwrap();
    }
    s.set_stock("MUG-01", 10).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    s.stack.settle().await;

    let flow: Vec<bazaar_contracts::Envelope> = s
        .stack
        .engine()
        .peek(probe)
        .unwrap()
        .iter()
        .map(|m| bazaar_contracts::Envelope::from_json(&m.body).unwrap())
        .filter(|e| e.data.value()["order_id"] == json!(id))
        .collect();
    let types: Vec<&str> = flow.iter().map(|e| e.message_type.as_str()).collect();
    for expected in [
        "order.placed",
        "inventory.stock.reserve",
        "inventory.reserved",
        "payments.payment.charge",
        "payment.captured",
        "order.confirmed",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    for e in &flow {
        assert_eq!(
            (e.actor.subject.as_str(), e.actor.roles.as_slice()),
            ("customer-1", ["customer".to_string()].as_slice()),
            "{} carries the customer",
            e.message_type
        );
        assert_eq!(e.correlation_id, flow[0].correlation_id, "one flow");
    }
}

async fn sign_in(s: &TestStack, user: &str, password: &str, from: &str) -> HttpResponse {
    s.stack
        .http(
            HttpRequest::json(
                "POST",
                "/auth/token",
                &json!({ "username": user, "password": password }),
            )
            .from_ip(from),
        )
        .await
}

fn retry_after(r: &HttpResponse) -> i64 {
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a 429 says when: {r:?}"))
}

#[tokio::test]
async fn two_hundred_wrong_passwords_are_throttled_without_locking_the_user_out() {
    let s = stack();
    let identity = s.stack.table_of("IdentityApiFunction").unwrap();
    for user in ["alice", "bob"] {
        identity_api::ensure_user(
            identity.as_ref(),
            user,
            "correct horse battery",
            &["customer"],
        )
        .await
        .unwrap();
    }
    let attacker = "203.0.113.66";

    let mut statuses = BTreeMap::new();
    for _ in 0..200 {
        let r = sign_in(&s, "alice", "guess", attacker).await;
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(401, 5), (429, 195)]),
        "five guesses, then the door closes"
    );
    let blocked = sign_in(&s, "alice", "correct horse battery", attacker).await;
    assert_eq!(
        blocked.status, 429,
        "the right password waits too: no oracle"
    );
    assert_eq!(
        blocked.header("content-type"),
        Some("application/problem+json")
    );
    // Other users are not touched, from anywhere.
    assert_eq!(
        sign_in(&s, "bob", "correct horse battery", "198.51.100.7")
            .await
            .status,
        200
    );

    // The attacker keeps guessing whenever let in, for half an hour. The real user, from
    // their own address, never waits more than a minute, and the attacker gets about one
    // guess a minute.
    let mut longest_for_user = 0;
    let mut guesses = 0;
    for _ in 0..60 {
        let r = sign_in(&s, "alice", "guess", attacker).await;
        let wait = if r.status == 429 { retry_after(&r) } else { 1 };
        guesses += usize::from(r.status == 401);
        let real = sign_in(&s, "alice", "wrong by the real user", "198.51.100.7").await;
        if real.status == 429 {
            longest_for_user = longest_for_user.max(retry_after(&real));
        }
        s.stack.run_for(Duration::seconds(wait.min(30))).await;
    }
    assert!(
        longest_for_user <= 61,
        "the real user waited {longest_for_user} s at most"
    );
    assert!(guesses <= 30, "{guesses} guesses in half an hour");
    s.stack.run_for(Duration::seconds(61)).await;
    let real = sign_in(&s, "alice", "correct horse battery", "198.51.100.7").await;
    assert_eq!(real.status, 200, "{}", String::from_utf8_lossy(&real.body));
}

#[tokio::test]
async fn an_unknown_user_is_throttled_exactly_like_a_wrong_password() {
    let s = stack();
    let identity = s.stack.table_of("IdentityApiFunction").unwrap();
    identity_api::ensure_user(
        identity.as_ref(),
        "alice",
        "correct horse battery",
        &["customer"],
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for (user, from) in [("alice", "203.0.113.1"), ("nobody-at-all", "203.0.113.2")] {
        let mut seen = Vec::new();
        for _ in 0..7 {
            let r = sign_in(&s, user, "guess", from).await;
            seen.push((
                r.status,
                r.json()["detail"].clone(),
                r.header("retry-after").map(String::from),
            ));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0][5].0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_guesses_are_all_counted() {
    let s = std::sync::Arc::new(stack());
    let identity = s.stack.table_of("IdentityApiFunction").unwrap();
    identity_api::ensure_user(
        identity.as_ref(),
        "alice",
        "correct horse battery",
        &["customer"],
    )
    .await
    .unwrap();
    let burst: Vec<_> = (0..40)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { sign_in(&s, "alice", "guess", "203.0.113.9").await.status })
        })
        .collect();
    let mut checked = 0;
    for task in burst {
        if task.await.unwrap() == 401 {
            checked += 1;
        }
    }
    assert!(
        checked <= 5,
        "{checked} guesses were checked in a burst of 40"
    );
}

/// A validly signed token whose dates sit at the ends of the number range is judged (a token
/// valid until the end of time is accepted, one from before it refused) at the edge and in
/// the function: an answer, never a closed connection.
#[tokio::test]
async fn tokens_with_dates_at_the_ends_of_the_number_range_get_an_answer() {
    let s = stack();
    let cases = [
        (json!({ "exp": i64::MAX }), 200),
        (json!({ "exp": i64::MIN }), 401),
        (json!({ "nbf": i64::MAX }), 401),
        (json!({ "nbf": i64::MIN, "iat": i64::MIN }), 200),
        (json!({ "exp": u64::MAX }), 401),
        (json!({ "exp": 1e308 }), 401),
    ];
    for (dates, expected) in cases {
        let token = signed(rs256(), claims(dates.clone()));
        let r = s
            .stack
            .http(
                HttpRequest::get("/orders?customer=customer-1")
                    .header("authorization", &format!("Bearer {token}")),
            )
            .await;
        assert_eq!(
            r.status,
            expected,
            "{dates}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}
