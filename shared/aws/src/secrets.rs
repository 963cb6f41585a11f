//! The secret store on Secrets Manager (`aws-sdk-secretsmanager`): what a function reads its
//! secrets from (`GetSecretValue`, its current and previous version) and what a deploy or a
//! rotation writes with (`CreateSecret`, `PutSecretValue`).
//!
//! The other way to read secrets on Lambda is the AWS Parameters and Secrets Lambda
//! Extension: a layer running beside the function that answers on localhost with a cache.
//! docs/performance.md has what each costs; this client was chosen because it is a few
//! hundred kilobytes in a binary that already carries the SDK's runtime, it runs the same
//! against any AWS-compatible endpoint (moto, `sam local invoke`), and it adds no second
//! process to start.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use bazaar_platform::secrets::{SecretAdmin, SecretError, SecretStore, SecretValue, Versions};

/// Secrets Manager, for reading and, with the rights, writing secrets.
#[derive(Clone, Debug)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    /// A store on `client`.
    pub fn new(client: Client) -> Self {
        SecretsManagerStore { client }
    }
}

/// Maps the SDK's errors by their code: the secret is absent, or the role may not read it,
/// or the service is out of reach for now.
fn error<E, R>(id: &str, e: SdkError<E, R>) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e.code().map(String::from);
    match code.as_deref() {
        Some("ResourceNotFoundException") => SecretError::NotFound(id.to_string()),
        Some("AccessDeniedException") | Some("AccessDenied") => SecretError::Denied(id.to_string()),
        Some("InvalidParameterException" | "InvalidRequestException" | "ValidationException") => {
            SecretError::Invalid(format!("secret {id}: {}", e.message().unwrap_or("refused")))
        }
        _ => SecretError::Unavailable {
            id: id.to_string(),
            reason: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        },
    }
}

impl SecretsManagerStore {
    async fn stage(&self, id: &str, stage: &str) -> Result<Option<String>, SecretError> {
        match self
            .client
            .get_secret_value()
            .secret_id(id)
            .version_stage(stage)
            .send()
            .await
        {
            Ok(out) => Ok(out.secret_string),
            // No version carries the stage (a secret never rotated has no AWSPREVIOUS).
            Err(e) if stage != "AWSCURRENT" && e.code() == Some("ResourceNotFoundException") => {
                Ok(None)
            }
            Err(e) => Err(error(id, e)),
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    /// Both stages at once: one round trip of init, not two.
    async fn versions(&self, id: &str) -> Result<Versions, SecretError> {
        let (current, previous) =
            tokio::join!(self.stage(id, "AWSCURRENT"), self.stage(id, "AWSPREVIOUS"));
        let current =
            current?.ok_or_else(|| SecretError::NotFound(format!("{id} (no string value)")))?;
        let previous = previous?;
        Ok(Versions {
            current: SecretValue::new(current),
            previous: previous.map(SecretValue::new),
        })
    }
}

#[async_trait]
impl SecretAdmin for SecretsManagerStore {
    async fn ensure(&self, name: &str, value: &str) -> Result<String, SecretError> {
        match self
            .client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
        {
            Ok(out) => out.arn.ok_or_else(|| {
                SecretError::Invalid(format!("secret {name}: created without an ARN"))
            }),
            Err(e) if e.code() == Some("ResourceExistsException") => self
                .client
                .describe_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(|e| error(name, e))?
                .arn
                .ok_or_else(|| SecretError::NotFound(name.to_string())),
            Err(e) => Err(error(name, e)),
        }
    }

    async fn put(&self, id: &str, value: &str) -> Result<(), SecretError> {
        // PutSecretValue moves AWSCURRENT to the new version and AWSPREVIOUS to the old one.
        self.client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| error(id, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, SecretError> {
        let mut found = Vec::new();
        let mut pages = self.client.list_secrets().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error(prefix, e))?;
            for s in page.secret_list.unwrap_or_default() {
                if let (Some(arn), Some(name)) = (s.arn, s.name)
                    && name.starts_with(prefix)
                {
                    found.push((arn, name));
                }
            }
        }
        found.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(found)
    }
}
