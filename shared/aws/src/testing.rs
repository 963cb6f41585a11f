//! Helpers for tests that run the AWS adapters against an AWS-compatible server
//! (`moto_server`, started by `scripts/test`, whose URL is in `BAZAAR_TEST_AWS_ENDPOINT`).

use aws_types::SdkConfig;

/// The endpoint of the test server. When `scripts/test` runs (it sets
/// `BAZAAR_REQUIRE_AWS=1`) a missing endpoint fails the test; a plain `cargo test` without the
/// server skips the AWS tests with a notice.
pub fn endpoint() -> Option<String> {
    match std::env::var("BAZAAR_TEST_AWS_ENDPOINT") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("BAZAAR_REQUIRE_AWS").is_ok() => panic!(
            "BAZAAR_TEST_AWS_ENDPOINT is not set, but BAZAAR_REQUIRE_AWS is: start moto_server (scripts/test does)"
        ),
        Err(_) => {
            eprintln!(
                "skipped: BAZAAR_TEST_AWS_ENDPOINT is not set (scripts/test starts moto_server and sets it)"
            );
            None
        }
    }
}

/// SDK configuration for the test server: what a function gets from its environment, with a
/// fixed region and dummy credentials.
pub fn config(endpoint: &str) -> SdkConfig {
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", endpoint),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    crate::lambda_config(&env).expect("every variable is set")
}

/// A name unique to this test process, so that tests can share one server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates an SNS topic named `prefix` made unique ([`unique`]); returns its ARN.
#[cfg(feature = "sns")]
pub async fn create_topic(client: &aws_sdk_sns::Client, prefix: &str) -> String {
    client
        .create_topic()
        .name(unique(prefix))
        .send()
        .await
        .expect("create the topic")
        .topic_arn()
        .expect("a topic ARN")
        .to_string()
}

/// Creates a table with Bazaar's key schema (`pk`, `sk`), on demand.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
}
