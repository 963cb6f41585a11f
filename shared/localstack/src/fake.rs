//! Local fakes: what the local stack runs beside the template for what is not in it (an
//! outside party such as a payment provider, or a secret a deployment would hold such as the
//! issuer's signing key). The runner knows only this trait: a fake may build some functions
//! its own way (with itself in process), give the issuer's keys, install something once the
//! stack is built, and deliver what falls due (callbacks) through the API Gateway emulator,
//! as the outside party would. A new fake is one implementation, added to the stack's options.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_embedded::Engine;
use bazaar_platform::auth::KeySource;
use bazaar_platform::ports::{BoxError, Table};
use chrono::{DateTime, Utc};

use crate::functions::Functions;
use crate::gateway::Gateway;
use crate::registry::Constructor;
use crate::template::StackModel;

/// How a fake reaches the stack's tables by physical name, before the functions exist: in
/// the embedded engine, or on the AWS endpoint the stack runs on.
pub struct TableAccess {
    pub(crate) engine: Arc<Engine>,
    pub(crate) dynamodb: Option<aws_sdk_dynamodb::Client>,
}

impl TableAccess {
    /// The table named `name`.
    pub fn table(&self, name: &str) -> Arc<dyn Table> {
        match &self.dynamodb {
            None => Arc::new(bazaar_embedded::EmbeddedTable::new(
                self.engine.clone(),
                name.to_string(),
            )),
            Some(client) => Arc::new(bazaar_aws::DynamoTable::new(client.clone(), name)),
        }
    }

    /// The stack's clock.
    pub fn clock(&self) -> Arc<dyn bazaar_platform::clock::Clock> {
        self.engine.clock().clone()
    }
}

/// What a fake is told when the stack is built.
pub struct Built<'a> {
    /// The template.
    pub model: &'a StackModel,
    /// The functions.
    pub functions: &'a Functions,
    /// The AWS endpoint the stack runs on, if it does (`None`: the embedded store).
    pub endpoint: Option<&'a str>,
    /// Where the template's secrets are read (a fake that signs calls reads the current
    /// value at each call, so that a rotation reaches it as it reaches a partner).
    pub secrets: Arc<dyn bazaar_platform::secrets::SecretStore>,
}

/// A stand-in the local stack runs beside the template (see the module's documentation).
#[async_trait]
pub trait LocalFake: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Functions to build with something of this fake's (by binary name).
    fn constructors(&self) -> Vec<(&'static str, Constructor)> {
        Vec::new()
    }

    /// The token issuer's keys, when this fake is the one who knows them.
    fn keys(&self, _model: &StackModel, _tables: &TableAccess) -> Option<Arc<dyn KeySource>> {
        None
    }

    /// Runs once the stack is built.
    async fn install(&self, _stack: &Built<'_>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Delivers what is due at `now` through the gateway; returns how many deliveries.
    async fn deliver_due(&self, _gateway: &Gateway, _now: DateTime<Utc>) -> usize {
        0
    }

    /// When something falls due next.
    fn next_due(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// The fake as `Any`, for [`crate::Stack::fake`].
    fn as_any(&self) -> &dyn Any;
}
