//! A function: its triggers (HTTP routes, an SQS consumer, scheduled jobs) behind one invoke
//! that picks the trigger from the shape of the event, as Lambda delivers them all to one
//! handler. The same object runs on Lambda (`bazaar_aws::run`) and in the local stack.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::Value;

use crate::deps::Deps;
use crate::http::Api;
use crate::schedule::{self, Job};
use crate::sqs::{Batch, Consumer};

/// Why an invocation failed as a whole (Lambda reports it as a function error).
#[derive(Debug, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct FunctionError {
    /// A stable name for the kind of failure.
    pub error_type: &'static str,
    /// What happened.
    pub message: String,
}

/// Anything that can be invoked like a Lambda function.
#[async_trait]
pub trait LambdaFunction: Send + Sync {
    /// Handles one event and returns the response payload.
    async fn invoke(&self, payload: Value) -> Result<Value, FunctionError>;
}

/// A function made of the platform's entry points.
#[derive(Clone)]
pub struct Function {
    deps: Arc<Deps>,
    api: Option<Api>,
    consumer: Option<Consumer>,
    jobs: Vec<Arc<dyn Job>>,
}

impl Function {
    /// A function with no triggers yet.
    pub fn new(deps: Arc<Deps>) -> Self {
        Function {
            deps,
            api: None,
            consumer: None,
            jobs: Vec::new(),
        }
    }

    /// Serves HTTP routes.
    pub fn http(mut self, api: Api) -> Self {
        self.api = Some(api);
        self
    }

    /// Consumes an SQS queue.
    pub fn sqs(mut self, consumer: Consumer) -> Self {
        self.consumer = Some(consumer);
        self
    }

    /// Runs a job on scheduled events.
    pub fn schedule(mut self, job: Arc<dyn Job>) -> Self {
        self.jobs.push(job);
        self
    }

    /// The function's dependencies.
    pub fn deps(&self) -> &Arc<Deps> {
        &self.deps
    }

    /// The HTTP routes, if any.
    pub fn api(&self) -> Option<&Api> {
        self.api.as_ref()
    }

    /// The SQS consumer, if any.
    pub fn consumer(&self) -> Option<&Consumer> {
        self.consumer.as_ref()
    }

    /// Handles one event given as JSON text, as the Lambda runtime receives it. An SQS batch,
    /// the event a queue consumer sees per message, is read straight into its typed form
    /// ([`sqs_event`]); anything else goes through [`LambdaFunction::invoke`].
    pub async fn invoke_text(&self, payload: &str) -> Result<Value, FunctionError> {
        if let Some(consumer) = &self.consumer
            && let Some(event) = sqs_event(payload)
        {
            let response = consumer.handle_batch(event).await;
            return serde_json::to_value(response).map_err(bad_event);
        }
        let payload: Value = serde_json::from_str(payload).map_err(bad_event)?;
        self.invoke(payload).await
    }
}

impl Function {
    /// Handles an SQS batch already read into its type: what the local stack's pollers hand
    /// a function, the event the runtime would read from the text Lambda sends.
    pub async fn invoke_sqs(&self, event: SqsEvent) -> Result<SqsBatchResponse, FunctionError> {
        let consumer = self
            .consumer
            .as_ref()
            .ok_or_else(|| unsupported("this function has no SQS trigger"))?;
        Ok(consumer.handle_batch(event).await)
    }
}

/// Reads an event's JSON text as an SQS batch, if it is one: `Records` whose every
/// `eventSource` is `aws:sqs`, the test [`LambdaFunction::invoke`] makes. None for anything
/// else, a malformed batch included: `invoke` then judges it and names what is wrong.
pub fn sqs_event(payload: &str) -> Option<Batch> {
    serde_json::from_str::<Batch>(payload).ok().filter(|e| {
        e.records
            .iter()
            .all(|r| r.event_source.as_deref() == Some("aws:sqs"))
    })
}

fn unsupported(what: &str) -> FunctionError {
    FunctionError {
        error_type: "UnsupportedEvent",
        message: what.to_string(),
    }
}

fn bad_event(e: serde_json::Error) -> FunctionError {
    FunctionError {
        error_type: "MalformedEvent",
        message: e.to_string(),
    }
}

#[async_trait]
impl LambdaFunction for Function {
    async fn invoke(&self, payload: Value) -> Result<Value, FunctionError> {
        let is_sqs = payload
            .get("Records")
            .and_then(Value::as_array)
            .is_some_and(|r| {
                r.iter()
                    .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
            });
        if is_sqs {
            let consumer = self
                .consumer
                .as_ref()
                .ok_or_else(|| unsupported("this function has no SQS trigger"))?;
            let event: SqsEvent = serde_json::from_value(payload).map_err(bad_event)?;
            let response = consumer.handle_batch(event).await;
            return serde_json::to_value(response).map_err(bad_event);
        }
        if payload
            .get("requestContext")
            .and_then(|c| c.get("http"))
            .is_some()
        {
            let api = self
                .api
                .as_ref()
                .ok_or_else(|| unsupported("this function has no HTTP trigger"))?;
            let event: ApiGatewayV2httpRequest =
                serde_json::from_value(payload).map_err(bad_event)?;
            return serde_json::to_value(api.handle_event(event).await).map_err(bad_event);
        }
        if schedule::is_scheduled_event(&payload) {
            if self.jobs.is_empty() {
                return Err(unsupported("this function has no schedule trigger"));
            }
            return schedule::run_jobs(&self.deps, &self.jobs, &payload)
                .await
                .map(|()| Value::Null)
                .map_err(|e| FunctionError {
                    error_type: "ScheduledJobFailed",
                    message: crate::telemetry::error_chain(&e),
                });
        }
        Err(unsupported(
            "the event is neither an SQS batch, an HTTP API 2.0 request nor a scheduled event",
        ))
    }
}
