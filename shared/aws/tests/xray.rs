//! The SNS publisher carries the invocation's X-Ray trace header on the wire, so that a topic
//! with active tracing joins the hops in AWS's trace view; without one it sends none. Checked
//! against a local HTTP endpoint that records what it receives (an AWS-compatible server
//! would not show the header back).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bazaar_aws::SnsPublisher;
use bazaar_contracts::envelope::Origin;
use bazaar_contracts::orders::ExpireOrder;
use bazaar_contracts::{Actor, Envelope, Flags};
use bazaar_platform::ports::{Publisher, Topics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// Starts an endpoint that records each request's head and answers 400; returns its URL and
/// the heads.
async fn recorder() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&got);
                seen.lock()
                    .unwrap()
                    .push(text.split("\r\n\r\n").next().unwrap_or("").to_lowercase());
                let body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>recorded</Message></Error></ErrorResponse>";
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, heads)
}

fn publisher(url: &str) -> SnsPublisher {
    let config = aws_sdk_sns::Config::builder()
        .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_sns::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
        .http_client(bazaar_aws::https::sdk_client_for_endpoint(url))
        .build();
    let env = BTreeMap::from([(
        "TOPIC_ARN_TASKS".to_string(),
        "arn:aws:sns:us-east-1:123456789012:tasks".to_string(),
    )]);
    SnsPublisher::new(
        aws_sdk_sns::Client::from_conf(config),
        Topics::from_env(&env),
    )
}

fn envelope() -> Envelope {
    Envelope::wrap(
        &ExpireOrder {
            order_id: "o-1".into(),
            deadline: chrono::Utc::now(),
        },
        Origin {
            id: "m-1".into(),
            source: "bazaar/test".into(),
            time: chrono::Utc::now(),
            correlation_id: "o-1".into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: Actor::system(),
            flags: Flags::default(),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_publish_carries_the_invocations_xray_header_and_none_without_one() {
    let (url, heads) = recorder().await;

    let traced = publisher(&url).with_trace_header(|| Some(HEADER.to_string()));
    assert!(
        traced.publish(&[envelope()]).await.is_err(),
        "the recorder refuses"
    );
    let plain = publisher(&url).with_trace_header(|| None);
    assert!(plain.publish(&[envelope()]).await.is_err());

    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads[0].contains(&format!("x-amzn-trace-id: {}", HEADER.to_lowercase())),
        "{}",
        heads[0]
    );
    assert!(!heads[1].contains("x-amzn-trace-id"), "{}", heads[1]);
}
