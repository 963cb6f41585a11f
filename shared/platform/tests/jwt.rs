//! Every way to forge or misuse a token is refused.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bazaar_platform::jwt::{Claims, Expect, Jwks, JwtError, SigningKey, validate};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

fn keys() -> &'static (SigningKey, SigningKey) {
    static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            SigningKey::generate("k1").unwrap(),
            SigningKey::generate("k1").unwrap(),
        )
    })
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn expect() -> Expect {
    Expect {
        issuer: "https://identity.bazaar.local".into(),
        audience: "bazaar-api".into(),
    }
}

fn jwks() -> Jwks {
    Jwks {
        keys: vec![keys().0.jwk()],
    }
}

fn claims() -> Value {
    let t = now().timestamp();
    json!({ "iss": "https://identity.bazaar.local", "sub": "customer-1", "aud": "bazaar-api", "roles": ["customer"], "iat": t, "nbf": t, "exp": t + 900, "jti": "j1" })
}

fn header() -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" })
}

fn signed(header: Value, payload: Value) -> String {
    keys().0.sign_parts(&header, &payload).unwrap()
}

fn check(token: &str) -> Result<Claims, JwtError> {
    validate(token, &jwks(), &expect(), now())
}

#[test]
fn a_token_signed_by_the_issuer_is_accepted_and_names_its_actor() {
    let c = check(&signed(header(), claims())).unwrap();
    assert_eq!(
        c.actor(),
        bazaar_contracts::Actor::new("customer-1", &["customer"])
    );
    let issued = keys().0.sign(&c).unwrap();
    assert_eq!(check(&issued).unwrap(), c, "sign and validate agree");
}

#[test]
fn alg_none_is_refused() {
    let token = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "kid": "k1"}).to_string()),
        B64.encode(claims().to_string())
    );
    assert_eq!(check(&token), Err(JwtError::Algorithm("none".into())));
}

#[test]
fn an_hmac_token_keyed_with_the_public_key_is_refused() {
    // The algorithm-confusion attack: HS256 with the RSA public key as the shared secret.
    use aws_lc_rs::hmac;
    let input = format!(
        "{}.{}",
        B64.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
        B64.encode(claims().to_string())
    );
    let secret = B64.decode(&keys().0.jwk().n).unwrap();
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", B64.encode(tag.as_ref()));
    assert_eq!(check(&token), Err(JwtError::Algorithm("HS256".into())));
}

#[test]
fn a_token_signed_with_another_key_under_the_same_kid_is_refused() {
    let token = keys().1.sign_parts(&header(), &claims()).unwrap();
    assert_eq!(check(&token), Err(JwtError::Signature));
}

#[test]
fn an_unknown_kid_is_refused_and_jku_is_never_followed() {
    let mut h = header();
    h["kid"] = json!("k9");
    assert_eq!(
        check(&signed(h, claims())),
        Err(JwtError::UnknownKey("k9".into()))
    );
    let mut h = header();
    h["kid"] = json!("attacker");
    h["jku"] = json!("https://attacker.example/jwks.json");
    h["x5u"] = json!("https://attacker.example/cert.pem");
    assert_eq!(
        check(&signed(h, claims())),
        Err(JwtError::UnknownKey("attacker".into()))
    );
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let mut c = claims();
    c["exp"] = json!(now().timestamp() - 31);
    assert_eq!(check(&signed(header(), c)), Err(JwtError::Expired));
    let mut c = claims();
    c["exp"] = json!(now().timestamp() - 10);
    assert!(
        check(&signed(header(), c)).is_ok(),
        "30 s of skew are tolerated"
    );
    let mut c = claims();
    c["nbf"] = json!((now() + Duration::minutes(5)).timestamp());
    assert_eq!(check(&signed(header(), c)), Err(JwtError::NotYetValid));
}

#[test]
fn another_issuer_or_audience_is_refused() {
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert_eq!(check(&signed(header(), c)), Err(JwtError::Issuer));
    let mut c = claims();
    c["aud"] = json!("another-api");
    assert_eq!(check(&signed(header(), c)), Err(JwtError::Audience));
    let mut c = claims();
    c["aud"] = json!(["another-api", "bazaar-api"]);
    assert!(
        check(&signed(header(), c)).is_ok(),
        "an audience list containing ours is fine"
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let token = signed(header(), claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims();
    c["roles"] = json!(["operator"]);
    let forged = format!("{}.{}.{}", parts[0], B64.encode(c.to_string()), parts[2]);
    assert_eq!(check(&forged), Err(JwtError::Signature));
}

#[test]
fn dates_must_be_numbers() {
    let mut c = claims();
    c["exp"] = json!("9999999999");
    assert_eq!(check(&signed(header(), c)), Err(JwtError::Claim("exp")));
    let mut c = claims();
    c["nbf"] = json!("0");
    assert_eq!(check(&signed(header(), c)), Err(JwtError::Claim("nbf")));
}

#[test]
fn oversized_and_malformed_tokens_are_refused_before_parsing() {
    let mut c = claims();
    c["padding"] = json!("x".repeat(9000));
    assert_eq!(check(&signed(header(), c)), Err(JwtError::TooLarge));
    assert!(matches!(check("not-a-token"), Err(JwtError::Malformed(_))));
    assert!(matches!(check("a.b.c.d"), Err(JwtError::Malformed(_))));
    assert!(matches!(check("!!.??.**"), Err(JwtError::Malformed(_))));
}

#[test]
fn a_key_survives_storage() {
    let der = keys().0.to_pkcs8().unwrap();
    let back = SigningKey::from_pkcs8("k1", &der).unwrap();
    assert_eq!(back.jwk(), keys().0.jwk());
    assert!(check(&back.sign_parts(&header(), &claims()).unwrap()).is_ok());
    assert!(
        !format!("{back:?}").contains(&B64.encode(&der)),
        "Debug never shows the private key"
    );
}

#[test]
fn a_token_verified_once_is_still_judged_by_its_key_and_its_claims() {
    // Verified signatures are remembered; what is remembered must not carry over to
    // another key under the same kid, nor outlive the token's expiry.
    let token = signed(header(), claims());
    assert!(check(&token).is_ok());
    assert!(check(&token).is_ok(), "the second check, from memory");
    let other = Jwks {
        keys: vec![keys().1.jwk()],
    };
    assert_eq!(
        validate(&token, &other, &expect(), now()),
        Err(JwtError::Signature)
    );
    let later = now() + Duration::seconds(900 + 31);
    assert_eq!(
        validate(&token, &jwks(), &expect(), later),
        Err(JwtError::Expired)
    );
    // One character inside the signature changed (not the last, whose low bits are padding).
    let mut tampered = token.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(check(&tampered), Err(JwtError::Signature));
}

#[test]
fn dates_at_the_ends_of_the_number_range_are_judged_not_a_panic() {
    for (exp, ok) in [(i64::MAX, true), (i64::MIN, false), (0, false), (-1, false)] {
        let mut c = claims();
        c["exp"] = json!(exp);
        let r = check(&signed(header(), c));
        assert_eq!(r.is_ok(), ok, "exp {exp}: {r:?}");
    }
    for (nbf, ok) in [(i64::MAX, false), (i64::MIN, true), (0, true)] {
        let mut c = claims();
        c["nbf"] = json!(nbf);
        let r = check(&signed(header(), c));
        assert_eq!(r.is_ok(), ok, "nbf {nbf}: {r:?}");
    }
    let mut c = claims();
    c["exp"] = json!(u64::MAX);
    assert_eq!(check(&signed(header(), c)), Err(JwtError::Claim("exp")));
    let mut c = claims();
    c["exp"] = json!(1e308);
    assert_eq!(check(&signed(header(), c)), Err(JwtError::Claim("exp")));
}

#[test]
fn a_header_or_payload_naming_a_key_twice_is_refused() {
    let t = now().timestamp();
    let payload = claims().to_string();
    let two_algs = r#"{"alg":"HS256","typ":"JWT","kid":"k1","alg":"RS256"}"#;
    let token = keys().0.sign_text(two_algs, &payload).unwrap();
    assert!(
        matches!(check(&token), Err(JwtError::Malformed(_))),
        "{:?}",
        check(&token)
    );
    let two_roles = format!(
        r#"{{"iss":"https://identity.bazaar.local","sub":"customer-1","aud":"bazaar-api","roles":["customer"],"iat":{t},"nbf":{t},"exp":{},"jti":"j1","roles":["operator"]}}"#,
        t + 900
    );
    let token = keys()
        .0
        .sign_text(&header().to_string(), &two_roles)
        .unwrap();
    assert!(matches!(check(&token), Err(JwtError::Malformed(_))));
    let nested = format!(
        r#"{{"iss":"https://identity.bazaar.local","sub":"customer-1","aud":"bazaar-api","roles":["customer"],"iat":{t},"nbf":{t},"exp":{},"jti":"j1","x":{{"a":1,"a":2}}}}"#,
        t + 900
    );
    let token = keys().0.sign_text(&header().to_string(), &nested).unwrap();
    assert!(
        matches!(check(&token), Err(JwtError::Malformed(_))),
        "nested objects too"
    );
    let once = keys().0.sign_text(&header().to_string(), &payload).unwrap();
    assert!(check(&once).is_ok(), "the same text with each key once");
}

/// A token signed outside this code (OpenSSL's `dgst -sha256 -sign` over
/// `base64url(header).base64url(payload)`, with a 2048-bit key whose public half is below):
/// the signer and the validator here could agree with each other and still be wrong.
#[test]
fn a_token_signed_independently_with_openssl_is_accepted_and_a_tampered_one_is_not() {
    const N: &str = "r4hfqtINhsnIDzhCt4om9Z8pQGbwYlozwDNYqylzs1VDvNoaphf55-DrN89-o1HXahpnE-y4MI1V-QRmUftN65DM1ERLHB89wbICLTtgISywS5CAuBvFvufSHk3vx8hUkP7eYBE2I6Kygp93oSzMER4CLuXwmldxtHspVAdeRlW8-jcgovcvAISyucTNpJ6pjJBRbvKl0HAr0DjO1UtiqN_uKZQuAX9xqJZAKiZ5TfRQIy3mdmltUxPglogZ-CzBqhgUg-EaVnxAfu_rYJ9P29J7uPNivS7_cv99fd0uieidbxnkw-gfN7pFxQr8hfkUnQQRcdqe-TwGV30-A0z7zw";
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InZlY3Rvci0xIn0.eyJpc3MiOiJodHRwczovL2lkZW50aXR5LmJhemFhci5sb2NhbCIsInN1YiI6ImN1c3RvbWVyLTEiLCJhdWQiOiJiYXphYXItYXBpIiwicm9sZXMiOlsiY3VzdG9tZXIiXSwiaWF0IjoxNzY3MjY4ODAwLCJuYmYiOjE3NjcyNjg4MDAsImV4cCI6MTc2NzI2OTcwMCwianRpIjoidjEifQ.OgX7c_YWYm1i9_GL050tvI2yJ-Xf8DnPvfgDx4EyrKsJosPQGKs-03yJcruizjF_kOv6V2Om87DWmc7x1_cmxDGeViC5kktSl4tKDWa01BcOSsnOhVXiXoEvBRXoZa0DfR7vh9rJWz6vB2lcnYFiCNauQ7Cm14WauasgNDkrGlCeZJySBs6LiWLU0MHYJ991bssG1KipI5ooN8LVTQuX7655Bjstx7infhN2-b5ww8ngyzSxDOsjOriNNL-b0be0QSy0863YbaFBy-l3Ifmo6zvLmrDdUPpMSxW6-lzZXt9WQqhTy4D-nZyoeD4cYQvbo2GbLNG7OoVEbLmYRAxCCQ";
    let jwks = Jwks {
        keys: vec![bazaar_platform::jwt::Jwk {
            kty: "RSA".into(),
            kid: "vector-1".into(),
            alg: "RS256".into(),
            use_: "sig".into(),
            n: N.into(),
            e: "AQAB".into(),
        }],
    };
    let c = validate(TOKEN, &jwks, &expect(), now()).expect("OpenSSL's signature verifies");
    assert_eq!(
        (c.sub.as_str(), c.roles.clone(), c.exp),
        ("customer-1", vec!["customer".to_string()], 1_767_269_700)
    );
    // One character of the signature changed (not the last: its spare bits must be zero).
    let mut tampered: Vec<char> = TOKEN.chars().collect();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert_eq!(
        validate(&tampered, &jwks, &expect(), now()),
        Err(JwtError::Signature)
    );
}
