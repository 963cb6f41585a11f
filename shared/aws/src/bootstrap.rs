//! The Lambda bootstrap: what every function's `main.rs` calls with its constructor.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;
use bazaar_platform::clock::SystemClock;
use bazaar_platform::function::Function;
use bazaar_platform::ids::RandomIds;
use bazaar_platform::ports::Topics;
use bazaar_platform::telemetry::{self, EmfStdout};
use bazaar_platform::{Deps, SettingsError};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::value::RawValue;

/// Loads the SDK configuration with the SDK's whole credential chain (environment,
/// profiles, SSO, web identity, container and instance metadata), pointed at `endpoint` when
/// given (moto, or any AWS-compatible server): what tools run by people need. Without an
/// endpoint, the HTTP client trusts only Amazon's root CAs ([`crate::https`]).
#[cfg(feature = "credential-chain")]
pub async fn load_config(endpoint: Option<&str>) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    match endpoint {
        Some(url) => loader
            .endpoint_url(url)
            .http_client(crate::https::sdk_client_for_endpoint(url)),
        None => loader.http_client(crate::https::sdk_client()),
    }
    .load()
    .await
}

/// Why a tool cannot reach AWS or the endpoint it was given: each says what to set or start.
#[cfg(feature = "credential-chain")]
#[derive(Debug, thiserror::Error)]
pub enum ToolConfigError {
    /// No region anywhere the SDK looks.
    #[error(
        "no AWS region: set AWS_REGION (any region for an AWS-compatible endpoint such as moto, e.g. AWS_REGION=us-east-1), or a region in your AWS profile"
    )]
    NoRegion,
    /// No credentials anywhere the SDK looks.
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for moto, e.g. test and test), or AWS_PROFILE{0}"
    )]
    NoCredentials(String),
    /// The endpoint does not answer.
    #[error(
        "nothing answers at {url} ({reason}): start it first (for moto: .venv/bin/python scripts/lib/moto_server.py -p 5000), or check the URL"
    )]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What connecting said.
        reason: String,
    },
    /// The endpoint is not an `http://` or `https://` URL with a host.
    #[error("{0} is not an endpoint URL: write it as http://HOST:PORT")]
    BadUrl(String),
}

/// What the environment lacks for an AWS-compatible endpoint, before the SDK's chain is asked
/// (which would try instance metadata, meaningless there, and log its failures): a region and
/// credentials from variables or a profile. `env` is the process's environment; `profiles`
/// whether an AWS config or credentials file exists.
#[cfg(feature = "credential-chain")]
pub fn missing_for_endpoint(
    env: &BTreeMap<String, String>,
    profiles: bool,
) -> Option<ToolConfigError> {
    let set = |name: &str| env.get(name).is_some_and(|v| !v.trim().is_empty());
    let profile = profiles || set("AWS_PROFILE");
    if !(set("AWS_REGION") || set("AWS_DEFAULT_REGION") || profile) {
        return Some(ToolConfigError::NoRegion);
    }
    let keys = set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY");
    let other = set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if !(keys || other || profile) {
        let half = match (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) {
            (true, false) => " (AWS_SECRET_ACCESS_KEY is missing)",
            (false, true) => " (AWS_ACCESS_KEY_ID is missing)",
            _ => "",
        };
        return Some(ToolConfigError::NoCredentials(half.to_string()));
    }
    None
}

/// [`load_config`] for a tool run by a person, checked: with an endpoint, the environment
/// must name a region and credentials ([`missing_for_endpoint`]) and the endpoint must accept
/// a connection; in every case the chain must find a region and credentials. Each failure
/// says what to do, rather than the SDK's chain of providers that each failed.
#[cfg(feature = "credential-chain")]
pub async fn tool_config(endpoint: Option<&str>) -> Result<SdkConfig, ToolConfigError> {
    use aws_credential_types::provider::ProvideCredentials as _;
    if let Some(url) = endpoint {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let profiles = ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"]
            .iter()
            .filter_map(|v| std::env::var_os(v).map(std::path::PathBuf::from))
            .chain(
                home.iter()
                    .flat_map(|h| [h.join(".aws/config"), h.join(".aws/credentials")]),
            )
            .any(|p| p.is_file());
        if let Some(missing) = missing_for_endpoint(&env, profiles) {
            return Err(missing);
        }
        reachable(url).await?;
    }
    let config = load_config(endpoint).await;
    if config.region().is_none() {
        return Err(ToolConfigError::NoRegion);
    }
    let provider = config
        .credentials_provider()
        .ok_or_else(|| ToolConfigError::NoCredentials(String::new()))?;
    if let Err(e) = provider.provide_credentials().await {
        return Err(ToolConfigError::NoCredentials(format!(
            " ({})",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )));
    }
    Ok(config)
}

/// Whether `url`'s host and port accept a TCP connection within three seconds.
#[cfg(feature = "credential-chain")]
async fn reachable(url: &str) -> Result<(), ToolConfigError> {
    let bad = || ToolConfigError::BadUrl(url.to_string());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad());
    }
    let address = match authority.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() && !authority.ends_with(']') => {
            authority.to_string()
        }
        _ => format!("{authority}:{default_port}"),
    };
    let unreachable = |reason: String| ToolConfigError::Unreachable {
        url: url.to_string(),
        reason,
    };
    match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable("no answer within 3 s".into())),
    }
}

/// What a function's environment lacks to reach AWS.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not set: Lambda sets it for every function (for a local run, export it)")]
pub struct MissingEnvironment(&'static str);

/// The SDK configuration of a function, from the variables Lambda sets: `AWS_REGION`, and
/// the execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`, which stay valid for the execution environment's life. The SDK's
/// credential chain would read the same variables first; doing it here keeps the chain's
/// code (profiles, SSO, STS, instance metadata) out of every function's binary.
/// `AWS_ENDPOINT_URL` points the clients at an AWS-compatible server instead, as the SDK's
/// own loader does.
pub fn lambda_config(env: &BTreeMap<String, String>) -> Result<SdkConfig, MissingEnvironment> {
    let var = |name: &'static str| {
        env.get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(MissingEnvironment(name))
    };
    let region = var("AWS_REGION").or_else(|e| var("AWS_DEFAULT_REGION").map_err(|_| e))?;
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN").ok(),
        None,
        "environment",
    );
    let builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials));
    Ok(
        match env.get("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()) {
            Some(url) => builder
                .endpoint_url(url)
                .http_client(crate::https::sdk_client_for_endpoint(url)),
            None => builder.http_client(crate::https::sdk_client()),
        }
        .build(),
    )
}

/// Builds a function's ports on the AWS SDK from its environment: `TABLE_NAME`,
/// `TOPIC_ARN_<NAME>`, `DLQ_URL`, `MONITORED_QUEUES`, `JWT_ISSUER` and `<NAME>_SECRET_ARN`, as the template sets
/// them. A port whose variable is set but whose feature this binary was built without is left
/// out with an error in the log: its calls then fail (and messages are retried), never drop.
pub fn aws_deps(config: &SdkConfig, function: &str, env: BTreeMap<String, String>) -> Deps {
    counted_deps(config, function, env, None)
}

/// The SDK client of one service, with `usage`'s request counter when given.
#[allow(unused_macros)]
macro_rules! client {
    ($sdk:ident, $config:expr, $usage:expr, $function:expr) => {{
        let mut builder = $sdk::config::Builder::from($config);
        if let Some(usage) = $usage {
            builder = builder.interceptor(usage.interceptor($function));
        }
        $sdk::Client::from_conf(builder.build())
    }};
}

/// As [`aws_deps`], recording every request and capacity unit of `function` in `usage`
/// ([`crate::usage`]).
pub fn counted_deps(
    config: &SdkConfig,
    function: &str,
    env: BTreeMap<String, String>,
    usage: Option<&Arc<crate::usage::Usage>>,
) -> Deps {
    let missing = |var: &str, feature: &str| {
        tracing::error!(
            variable = var,
            feature,
            "set, but this binary was built without the bazaar-aws feature that serves it"
        );
    };
    #[cfg(feature = "dynamodb")]
    let table = env.get("TABLE_NAME").map(|name| {
        let table =
            crate::DynamoTable::new(client!(aws_sdk_dynamodb, config, usage, function), name);
        Arc::new(match usage {
            Some(u) => table.counted(u.clone(), function),
            None => table,
        }) as _
    });
    #[cfg(feature = "dynamodb")]
    let tables = bazaar_platform::deps::named_tables(&env)
        .map(|(role, name)| {
            let table =
                crate::DynamoTable::new(client!(aws_sdk_dynamodb, config, usage, function), name);
            let table: Arc<dyn bazaar_platform::ports::Table> = Arc::new(match usage {
                Some(u) => table.counted(u.clone(), function),
                None => table,
            });
            (role, table)
        })
        .collect();
    #[cfg(not(feature = "dynamodb"))]
    let table = env.get("TABLE_NAME").and_then(|_| {
        missing("TABLE_NAME", "dynamodb");
        None
    });
    #[cfg(not(feature = "dynamodb"))]
    let tables = {
        if bazaar_platform::deps::named_tables(&env).next().is_some() {
            missing("TABLE_NAME_*", "dynamodb");
        }
        BTreeMap::new()
    };
    #[cfg(feature = "sns")]
    let publisher: Arc<dyn bazaar_platform::ports::Publisher> = Arc::new(crate::SnsPublisher::new(
        client!(aws_sdk_sns, config, usage, function),
        Topics::from_env(&env),
    ));
    #[cfg(not(feature = "sns"))]
    let publisher: Arc<dyn bazaar_platform::ports::Publisher> = {
        if !Topics::from_env(&env).0.is_empty() {
            missing("TOPIC_ARN_*", "sns");
        }
        Arc::new(Unavailable)
    };
    #[cfg(feature = "sqs")]
    let (dead_letters, queues) = {
        let sqs = client!(aws_sdk_sqs, config, usage, function);
        let queues = env
            .contains_key("MONITORED_QUEUES")
            .then(|| Arc::new(crate::sqs::SqsQueueStats::new(sqs.clone())) as _);
        let dead_letters: Arc<dyn bazaar_platform::ports::DeadLetters> =
            Arc::new(crate::SqsDeadLetters::new(sqs, env.get("DLQ_URL").cloned()));
        (dead_letters, queues)
    };
    #[cfg(not(feature = "sqs"))]
    let (dead_letters, queues) = {
        if env.contains_key("DLQ_URL") || env.contains_key("MONITORED_QUEUES") {
            missing("DLQ_URL or MONITORED_QUEUES", "sqs");
        }
        (
            Arc::new(Unavailable) as Arc<dyn bazaar_platform::ports::DeadLetters>,
            None,
        )
    };
    // Functions behind the JWT authorizer check tokens themselves, with the issuer's keys.
    #[cfg(feature = "https")]
    let keys = env.get("JWT_ISSUER").and_then(|issuer| {
        crate::HttpKeySource::new(issuer)
            .map_err(|e| tracing::error!(error = %e, "tokens cannot be checked; every request will be refused"))
            .ok()
            .map(|k| Arc::new(k) as _)
    });
    #[cfg(not(feature = "https"))]
    let keys = env.get("JWT_ISSUER").and_then(|_| {
        missing("JWT_ISSUER", "https");
        None
    });
    #[cfg(feature = "secrets")]
    let secrets = {
        let store: Arc<dyn bazaar_platform::secrets::SecretStore> =
            Arc::new(crate::SecretsManagerStore::new(client!(
                aws_sdk_secretsmanager,
                config,
                usage,
                function
            )));
        let clock: Arc<dyn bazaar_platform::clock::Clock> = Arc::new(SystemClock);
        bazaar_platform::secrets::SecretBook::from_env(&env, &store, &clock)
    };
    #[cfg(not(feature = "secrets"))]
    let secrets = {
        if bazaar_platform::secrets::named_secrets(&env)
            .next()
            .is_some()
        {
            missing("*_SECRET_ARN", "secrets");
        }
        bazaar_platform::secrets::SecretBook::default()
    };
    let _ = (config, &missing, usage);
    Deps {
        function: function.to_string(),
        table,
        tables,
        publisher,
        dead_letters,
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        metrics: Arc::new(EmfStdout),
        keys,
        queues,
        secrets,
        env,
        harness: Default::default(),
    }
}

/// The port of a service this binary does not link: every call fails, so that the caller
/// retries or reports, and nothing is silently dropped.
#[allow(dead_code)]
struct Unavailable;

#[async_trait::async_trait]
impl bazaar_platform::ports::Publisher for Unavailable {
    async fn publish_encoded(
        &self,
        messages: &bazaar_platform::ports::Encoded<'_>,
    ) -> Result<(), bazaar_platform::ports::PublishError> {
        Err(bazaar_platform::ports::PublishError::UnknownTopic(
            messages
                .envelopes()
                .first()
                .map(|e| e.topic().to_string())
                .unwrap_or_default(),
        ))
    }
}

#[async_trait::async_trait]
impl bazaar_platform::ports::DeadLetters for Unavailable {
    async fn park(
        &self,
        _letter: bazaar_platform::ports::DeadLetter,
    ) -> Result<(), bazaar_platform::ports::PublishError> {
        Err(bazaar_platform::ports::PublishError::UnknownTopic(
            "dead-letter queue (this binary has no SQS client)".into(),
        ))
    }
}

/// Runs a function on Lambda: JSON logs, SDK clients built once during init, then the
/// runtime loop. `build` is the function crate's constructor: when it refuses its settings,
/// init stops with the reason logged (naming the variable and the value expected), Lambda
/// reports an init error, and no event is taken.
pub async fn run(
    build: fn(Arc<Deps>) -> Result<Function, SettingsError>,
) -> Result<(), lambda_runtime::Error> {
    telemetry::init_json_logs();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let name = env
        .get("BAZAAR_FUNCTION")
        .or_else(|| env.get("AWS_LAMBDA_FUNCTION_NAME"))
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let config = lambda_config(&env)?;
    let deps = aws_deps(&config, &name, env);
    // Secrets are read during init: one that is missing or forbidden stops the function here,
    // named, rather than failing its first request.
    if let Err(e) = deps.secrets.warm().await {
        tracing::error!(function = %name, variable = %e.variable, error = %e, "a secret cannot be read; the function cannot start");
        return Err(format!("{name} cannot start: {e}").into());
    }
    let function = match build(Arc::new(deps)) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            tracing::error!(function = %name, variable = %e.variable, error = %e, "the function's settings are wrong; it cannot start");
            return Err(format!("{name} cannot start: {e}").into());
        }
    };
    // The event stays JSON text until the function knows its kind: an SQS batch is then read
    // once, straight into its typed form.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let function = function.clone();
        async move {
            function
                .invoke_text(event.payload.get())
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.error_type.to_string(),
                    error_message: e.message,
                })
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::lambda_config;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[cfg(feature = "credential-chain")]
    #[test]
    fn an_endpoint_without_region_or_credentials_is_told_what_to_set() {
        use super::{ToolConfigError, missing_for_endpoint};
        let missing = |pairs: &[(&str, &str)], profiles| {
            missing_for_endpoint(&env(pairs), profiles).map(|e| e.to_string())
        };
        let none = missing(&[], false).unwrap();
        assert!(none.starts_with("no AWS region: set AWS_REGION"), "{none}");
        let no_keys = missing(&[("AWS_REGION", "us-east-1")], false).unwrap();
        assert!(
            no_keys.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{no_keys}"
        );
        let half = missing(
            &[("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "test")],
            false,
        )
        .unwrap();
        assert!(half.contains("AWS_SECRET_ACCESS_KEY is missing"), "{half}");
        let blank = missing(
            &[
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", " "),
                ("AWS_SECRET_ACCESS_KEY", "test"),
            ],
            false,
        );
        assert!(blank.is_some(), "a blank key is no key");
        for enough in [
            missing(
                &[
                    ("AWS_REGION", "us-east-1"),
                    ("AWS_ACCESS_KEY_ID", "test"),
                    ("AWS_SECRET_ACCESS_KEY", "test"),
                ],
                false,
            ),
            missing(&[("AWS_PROFILE", "dev")], false),
            missing(&[], true),
        ] {
            assert_eq!(enough, None);
        }
        assert!(matches!(
            missing_for_endpoint(&env(&[("AWS_REGION", "eu-west-1")]), false),
            Some(ToolConfigError::NoCredentials(_))
        ));
    }

    #[cfg(feature = "credential-chain")]
    #[tokio::test]
    async fn an_endpoint_that_does_not_answer_is_named() {
        use super::{ToolConfigError, reachable};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        reachable(&url).await.expect("a listening port answers");
        reachable(&format!("{url}/some/path")).await.unwrap();
        drop(listener);
        let e = reachable(&url).await.unwrap_err();
        assert!(
            matches!(&e, ToolConfigError::Unreachable { url: u, .. } if *u == url),
            "{e}"
        );
        assert!(e.to_string().contains("moto_server.py"), "{e}");
        for bad in ["127.0.0.1:5000", "ftp://host", "http://", "http:///x"] {
            assert!(
                matches!(reachable(bad).await, Err(ToolConfigError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    #[tokio::test]
    async fn a_function_takes_region_and_credentials_from_lambdas_variables() {
        use aws_credential_types::provider::ProvideCredentials;

        let config = lambda_config(&env(LAMBDA)).unwrap();

        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), None);
        let credentials = config
            .credentials_provider()
            .expect("a credentials provider")
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(
            (
                credentials.access_key_id(),
                credentials.secret_access_key(),
                credentials.session_token()
            ),
            ("AKID", "secret", Some("token"))
        );
    }

    #[test]
    fn an_endpoint_variable_points_the_clients_elsewhere() {
        let mut vars = env(LAMBDA);
        vars.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:5000".into());
        let config = lambda_config(&vars).unwrap();
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let mut vars = env(LAMBDA);
            vars.remove(missing);
            let error = lambda_config(&vars).unwrap_err();
            assert!(error.to_string().starts_with(missing), "{error}");
        }
        let mut vars = env(LAMBDA);
        vars.remove("AWS_REGION");
        vars.insert("AWS_DEFAULT_REGION".into(), "us-east-2".into());
        let config = lambda_config(&vars).unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("us-east-2"));
    }
}
