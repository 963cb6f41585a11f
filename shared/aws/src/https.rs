//! The functions' one HTTP client: HTTP/1.1 over rustls, for the SDK clients and for every
//! outbound call of our own (the token issuer, the payment provider, the channels).
//!
//! Why not the SDK's default client: it always links HTTP/2 (`h2`), a proxy layer and the
//! machine's certificate store, none of which a function's calls use (DynamoDB, SNS and SQS
//! answer over HTTP/1.1), and a function calling anything else linked a second hyper client
//! beside it. One client, one instantiation of hyper, keeps every function within its size
//! budget (docs/performance.md, Size).
//!
//! What the SDK expects of a client, and how it is kept:
//! - a connection pool: hyper's, one per client, shared by all the SDK clients of a config;
//! - the connect timeout of the config: set on the TCP connector (a pool per distinct value);
//! - the read timeout: a deadline on the whole answer's head;
//! - errors classified so that the SDK's retry strategy retries what is transient: refused or
//!   reset connections and timeouts are I/O or timeout errors (retried), a request that could
//!   not be built is the caller's.

use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::tls::Trust;

/// A pooled HTTP/1.1 client for `https://` and plain `http://` URLs.
pub type HttpsClient<B = Full<Bytes>> = Client<HttpsConnector<TcpConnector>, B>;

/// A client for public endpoints (Mozilla's roots): the token issuer, the payment provider,
/// the channels.
pub fn client<B>() -> HttpsClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    build(Trust::Mozilla, None)
}

/// A client trusting `trust`, giving up on a connection after `connect_timeout`.
pub fn build<B>(trust: Trust, connect_timeout: Option<Duration>) -> HttpsClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(connect_timeout);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(trust.client_config())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        // Without a timer the pool never expires idle connections.
        .pool_timer(TokioTimer::new())
        .build(https)
}

/// The SDK clients' HTTP client for AWS endpoints (Amazon's roots).
pub fn sdk_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttpClient::new(Trust::Amazon))
}

/// The SDK clients' HTTP client for the endpoint override `endpoint`: the machine's roots
/// for `https://`, none for plain `http://` ([`Trust::for_endpoint`]).
pub fn sdk_client_for_endpoint(endpoint: &str) -> SharedHttpClient {
    SharedHttpClient::new(SdkHttpClient::new(Trust::for_endpoint(endpoint)))
}

/// [`HttpClient`] for the SDK on [`HttpsClient`].
#[derive(Debug)]
struct SdkHttpClient {
    trust: Trust,
    /// One pooled client per connect timeout asked for (one, in practice: every SDK client
    /// of a function shares its config's timeouts).
    pools: Mutex<Vec<(Option<Duration>, HttpsClient)>>,
}

impl SdkHttpClient {
    fn new(trust: Trust) -> SdkHttpClient {
        SdkHttpClient {
            trust,
            pools: Mutex::new(Vec::new()),
        }
    }

    fn pool(&self, connect_timeout: Option<Duration>) -> HttpsClient {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, client)) = pools.iter().find(|(t, _)| *t == connect_timeout) {
            return client.clone();
        }
        let client = build(self.trust, connect_timeout);
        pools.push((connect_timeout, client.clone()));
        client
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SdkConnector {
            client: self.pool(settings.connect_timeout()),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug, Clone)]
struct SdkConnector {
    client: HttpsClient,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let (parts, body) = request.into_parts();
            let body = match body.bytes() {
                Some(bytes) => Bytes::copy_from_slice(bytes),
                // A streamed body (none of the calls the functions make): read it whole.
                None => body
                    .collect()
                    .await
                    .map_err(ConnectorError::user)?
                    .to_bytes(),
            };
            let call = this
                .client
                .request(http::Request::from_parts(parts, Full::new(body)));
            let response = match this.read_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                    ConnectorError::timeout(format!("no answer within {limit:?}").into())
                })?,
                None => call.await,
            }
            .map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What the SDK's retry strategy should make of a failed call.
fn classify(err: hyper_util::client::legacy::Error) -> ConnectorError {
    if err.is_connect() {
        return ConnectorError::io(err.into());
    }
    if let Some(hyper) = find::<hyper::Error>(&err) {
        if hyper.is_timeout() {
            return ConnectorError::timeout(err.into());
        }
        if hyper.is_user() {
            return ConnectorError::user(err.into());
        }
        if hyper.is_closed() || hyper.is_canceled() || find::<std::io::Error>(hyper).is_some() {
            return ConnectorError::io(err.into());
        }
        if hyper.is_incomplete_message() {
            return ConnectorError::other(err.into(), Some(ErrorKind::TransientError));
        }
    }
    if find::<std::io::Error>(&err).is_some() {
        return ConnectorError::io(err.into());
    }
    ConnectorError::other(err.into(), None)
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings};
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::retry::ErrorKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::{SdkHttpClient, Trust};

    fn connector(read_timeout: Option<Duration>) -> super::SdkConnector {
        let client = SdkHttpClient::new(Trust::Machine);
        let mut settings = HttpConnectorSettings::builder();
        settings.set_read_timeout(read_timeout);
        let components = RuntimeComponentsBuilder::for_tests().build().unwrap();
        let _ = client.http_connector(&settings.build(), &components);
        super::SdkConnector {
            client: client.pool(None),
            read_timeout,
        }
    }

    fn post(url: &str, body: &'static str) -> HttpRequest {
        let request = http::Request::post(url)
            .header("content-type", "application/x-amz-json-1.0")
            .body(SdkBody::from(body))
            .unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    /// A server that answers one request with `answer` after reading its head and body.
    async fn server(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.shutdown().await.ok();
            String::from_utf8_lossy(&seen).to_string()
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_request_goes_out_over_http_1_1_with_its_body_and_the_answer_comes_back() {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        let (url, server) =
            server("HTTP/1.1 200 OK\r\ncontent-length: 11\r\nx-amz-crc32: 1\r\n\r\n{\"Items\":1}")
                .await;
        let response = connector(None)
            .call(post(&url, "{\"TableName\":\"t\"}"))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers().get("x-amz-crc32"), Some("1"));
        assert_eq!(response.body().bytes(), None, "the answer streams");
        let seen = server.await.unwrap();
        assert!(seen.starts_with("POST / HTTP/1.1\r\n"), "{seen}");
        assert!(seen.ends_with("{\"TableName\":\"t\"}"), "{seen}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = connector(None).call(post(&url, "{}")).await.unwrap_err();
        assert!(err.is_io(), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_within_the_read_timeout_is_a_timeout() {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        // Accepts and never answers.
        let _held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(socket);
        });
        let err = connector(Some(Duration::from_secs(2)))
            .call(post(&url, "{}"))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_retryable() {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        let (url, server) = server("").await;
        let err = connector(None).call(post(&url, "{}")).await.unwrap_err();
        server.await.unwrap();
        assert!(
            err.is_io() || err.as_other() == Some(ErrorKind::TransientError),
            "{err:?}"
        );
    }
}
