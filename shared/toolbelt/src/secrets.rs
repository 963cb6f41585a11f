//! `bazaar secrets`: the template's secrets on the target (the local stack's store, or
//! Secrets Manager), listed without their values, and changed without a deploy. A function
//! reads the new value within five minutes, or at once when a partner refuses the old one
//! ([`bazaar_platform::secrets`]); the value before it stays readable as the previous one,
//! so that webhooks signed with it still pass while the partner switches.

use std::io::Read as _;

use anyhow::Context as _;

use crate::target::Target;

/// One secret of the template, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretRow {
    /// Its logical id in the template (`PaymentsWebhookSecret`).
    pub logical_id: String,
    /// Its name for the stage (`bazaar-dev-payments-webhook-secret`).
    pub name: String,
    /// Its ARN on the target, when it exists there.
    pub arn: Option<String>,
    /// The functions whose environment names it.
    pub readers: Vec<String>,
}

/// The template's secrets and where each is on the target.
pub async fn list(target: &Target) -> anyhow::Result<Vec<SecretRow>> {
    let existing = target
        .backend
        .secrets()
        .list("")
        .await
        .map_err(|e| anyhow::anyhow!("listing secrets: {e}"))?;
    Ok(target
        .model
        .secrets
        .iter()
        .map(|(id, name)| SecretRow {
            logical_id: id.clone(),
            name: name.clone(),
            arn: existing
                .iter()
                .find(|(_, n)| n == name)
                .map(|(a, _)| a.clone()),
            readers: target
                .model
                .functions
                .values()
                .filter(|f| {
                    bazaar_platform::secrets::named_secrets(&f.environment)
                        .any(|(_, arn)| bazaar_embedded::engine::name_of(arn) == name.as_str())
                })
                .map(|f| f.name())
                .collect(),
        })
        .collect())
}

/// The secret `what` names: a logical id, a name or an ARN of one of the template's secrets.
pub fn find<'a>(target: &'a Target, what: &str) -> anyhow::Result<(&'a str, &'a str)> {
    let what = bazaar_embedded::engine::secret_name(what);
    target
        .model
        .secrets
        .iter()
        .find(|(id, name)| id.as_str() == what || name.as_str() == what || name_prefix(what, name))
        .map(|(id, name)| (id.as_str(), name.as_str()))
        .with_context(|| {
            format!(
                "the template has no secret {what:?}; its secrets are {}",
                target
                    .model
                    .secrets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Secrets Manager's ARNs end in `<name>-XXXXXX`.
fn name_prefix(arn_name: &str, name: &str) -> bool {
    arn_name
        .strip_prefix(name)
        .is_some_and(|rest| rest.len() == 7 && rest.starts_with('-'))
}

/// Where a new value is read from.
pub enum Value {
    /// Standard input (a value never appears in the shell's history or `ps`).
    Stdin,
    /// A file.
    File(std::path::PathBuf),
}

/// Reads a new value: its surrounding whitespace (a newline at the end of a file or of
/// `echo`) is not part of it.
pub fn read_value(from: &Value) -> anyhow::Result<String> {
    let mut text = String::new();
    match from {
        Value::Stdin => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the value from standard input")?;
        }
        Value::File(path) => {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
        }
    }
    let value = text.trim().to_string();
    anyhow::ensure!(
        !value.is_empty(),
        "the new value is empty: pass it on standard input or with --from-file"
    );
    anyhow::ensure!(
        value.len() <= 65_536,
        "the new value is {} bytes; Secrets Manager takes at most 65536",
        value.len()
    );
    Ok(value)
}

/// Makes `value` the current value of the template's secret `what`; returns its name. The
/// value is never printed.
pub async fn put(target: &Target, what: &str, value: &str) -> anyhow::Result<String> {
    let (_, name) = find(target, what)?;
    let store = target.backend.secrets();
    store.put(name, value).await.map_err(|e| match e {
        bazaar_platform::secrets::SecretError::NotFound(_) => anyhow::anyhow!(
            "secret {name} does not exist on {} (deploy the stack, or start scripts/dev, first)",
            target.backend.describe()
        ),
        other => anyhow::anyhow!("putting a new value into {name}: {other}"),
    })?;
    Ok(name.to_string())
}
