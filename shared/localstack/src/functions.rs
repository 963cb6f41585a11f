//! The template's functions as the local stack built them, invoked as Lambda invokes them: by
//! logical id, a panic caught and reported as the invocation's error, each invocation counted
//! when usage is.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bazaar_aws::usage::Usage;
use bazaar_platform::function::FunctionError;
use bazaar_platform::ports::Table;
use bazaar_platform::{Function, LambdaFunction};
use futures::FutureExt;
use serde_json::Value;

use crate::template::FunctionDef;

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvokeError {
    /// No such function in the template.
    #[error("no function {0:?} in the template")]
    UnknownFunction(String),
    /// The function returned an error (Lambda's "function error").
    #[error("function error: {0}")]
    Failed(String),
    /// The function panicked (on Lambda: the runtime reports it as an error).
    #[error("function panicked: {0}")]
    Panicked(String),
}

/// The built functions, by logical id.
pub struct Functions {
    built: BTreeMap<String, Arc<Function>>,
    /// Each function's definition: its name and memory, for the usage counter.
    defs: BTreeMap<String, FunctionDef>,
    /// Where invocations are counted, if anywhere.
    usage: Option<Arc<Usage>>,
}

impl Functions {
    /// The functions built for the template's definitions `defs`.
    pub fn new(
        built: BTreeMap<String, Arc<Function>>,
        defs: BTreeMap<String, FunctionDef>,
        usage: Option<Arc<Usage>>,
    ) -> Self {
        Functions { built, defs, usage }
    }

    /// A built function.
    pub fn get(&self, function: &str) -> Result<Arc<Function>, InvokeError> {
        self.built
            .get(function)
            .cloned()
            .ok_or_else(|| InvokeError::UnknownFunction(function.into()))
    }

    /// A function's definition in the template.
    pub fn def(&self, function: &str) -> Option<&FunctionDef> {
        self.defs.get(function)
    }

    /// A function's table, as its handlers see it.
    pub fn table_of(&self, function: &str) -> Option<Arc<dyn Table>> {
        self.built
            .get(function)
            .and_then(|f| f.deps().table.clone())
    }

    /// Where invocations are counted, if anywhere.
    pub fn usage(&self) -> Option<&Arc<Usage>> {
        self.usage.as_ref()
    }

    /// Invokes a function with an event, as Lambda would.
    pub async fn invoke(&self, function: &str, payload: Value) -> Result<Value, InvokeError> {
        let f = self.get(function)?;
        let records = payload
            .get("Records")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        self.counted(function, records, f.invoke(payload)).await
    }

    /// Invokes a function with an SQS batch built in its type (what a poller does: the
    /// function reads the same event it would from the JSON text Lambda sends).
    pub async fn invoke_batch(
        &self,
        function: &str,
        event: SqsEvent,
    ) -> Result<SqsBatchResponse, InvokeError> {
        let f = self.get(function)?;
        let records = event.records.len();
        self.counted(function, records, f.invoke_sqs(event)).await
    }

    /// Runs an invocation: catches a panic, counts it when usage is counted.
    async fn counted<T>(
        &self,
        function: &str,
        records: usize,
        invocation: impl std::future::Future<Output = Result<T, FunctionError>>,
    ) -> Result<T, InvokeError> {
        let counted = self.usage.as_ref().map(|usage| {
            let def = self.defs.get(function);
            let name = def.map_or_else(|| function.to_string(), |d| d.name());
            let memory = def.map_or(128, |d| d.memory_mb);
            (usage, name, memory, std::time::Instant::now())
        });
        let outcome = AssertUnwindSafe(invocation).catch_unwind().await;
        if let Some((usage, name, memory, started)) = counted {
            usage.invoked(&name, memory, started.elapsed(), records);
        }
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(InvokeError::Failed(e.to_string())),
            Err(panic) => Err(InvokeError::Panicked(panic_text(panic.as_ref()))),
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
