//! The Lambda bootstrap: what every function's `main.rs` calls with its constructor.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use bazaar_platform::Deps;
use bazaar_platform::clock::SystemClock;
use bazaar_platform::faults::NoFaults;
use bazaar_platform::function::{Function, LambdaFunction};
use bazaar_platform::ids::RandomIds;
use bazaar_platform::ports::Topics;
use bazaar_platform::telemetry::{self, EmfStdout};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::{DynamoTable, HttpKeySource, SnsPublisher, SqsDeadLetters};

/// Loads the SDK configuration from the environment (region, credentials), pointed at
/// `endpoint` when given (moto, or any AWS-compatible server).
pub async fn load_config(endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Builds a function's ports on the AWS SDK from its environment: `TABLE_NAME`,
/// `TOPIC_ARN_<NAME>`, `DLQ_URL` and `JWT_ISSUER`, as the template sets them.
pub fn aws_deps(config: &SdkConfig, function: &str, env: BTreeMap<String, String>) -> Deps {
    let table = env.get("TABLE_NAME").map(|name| {
        Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(config),
            name,
        )) as _
    });
    let sns = aws_sdk_sns::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    // Functions behind the JWT authorizer check tokens themselves, with the issuer's keys.
    let keys = env.get("JWT_ISSUER").and_then(|issuer| {
        HttpKeySource::new(issuer)
            .map_err(|e| tracing::error!(error = %e, "tokens cannot be checked; every request will be refused"))
            .ok()
            .map(|k| Arc::new(k) as _)
    });
    Deps {
        function: function.to_string(),
        table,
        publisher: Arc::new(SnsPublisher::new(sns, Topics::from_env(&env))),
        dead_letters: Arc::new(SqsDeadLetters::new(
            sqs.clone(),
            env.get("DLQ_URL").cloned(),
        )),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        faults: Arc::new(NoFaults),
        metrics: Arc::new(EmfStdout),
        keys,
        queues: env
            .contains_key("MONITORED_QUEUES")
            .then(|| Arc::new(crate::sqs::SqsQueueStats::new(sqs.clone())) as _),
        env,
    }
}

/// Runs a function on Lambda: JSON logs, SDK clients built once during init, then the
/// runtime loop. `build` is the function crate's constructor.
pub async fn run(build: fn(Arc<Deps>) -> Function) -> Result<(), lambda_runtime::Error> {
    telemetry::init_json_logs();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let name = env
        .get("BAZAAR_FUNCTION")
        .or_else(|| env.get("AWS_LAMBDA_FUNCTION_NAME"))
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let config = load_config(None).await;
    let function = Arc::new(build(Arc::new(aws_deps(&config, &name, env))));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move {
            function
                .invoke(event.payload)
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.error_type.to_string(),
                    error_message: e.message,
                })
        }
    }))
    .await
}
