//! Reads `template.yaml` into the model the local stack runs: topics, queues, subscriptions,
//! tables and functions with their events, every intrinsic (`Ref`, `Fn::GetAtt`, `Fn::Sub`,
//! `Fn::Join`) resolved to local names, ARNs and URLs.
//!
//! Only what the stack runs is read; anything it does not understand in a property it needs is
//! an error naming the resource and the property, never a silent default.

use std::collections::BTreeMap;
use std::path::Path;

use bazaar_embedded::filter::Scope;
use bazaar_embedded::{QueueConfig, Redrive};
use serde_yaml::Value;

mod resolve;

pub use resolve::TemplateError;
use resolve::{Resolver, as_bool, as_u32, invalid};

/// A function event the stack emulates.
#[derive(Debug, Clone, PartialEq)]
pub enum EventDef {
    /// An HTTP API route.
    Http {
        /// The method, uppercase (`ANY` allowed).
        method: String,
        /// The path pattern (`/orders/{id}`).
        path: String,
        /// The API's logical id (`ApiId`), when given.
        api: Option<String>,
        /// `Auth.Authorizer`: an authorizer's name, or `NONE` for a public route; absent means
        /// the API's default authorizer.
        authorizer: Option<String>,
    },
    /// An SQS event source mapping.
    Sqs {
        /// The queue's name.
        queue: String,
        /// Records per invocation.
        batch_size: u32,
        /// Seconds to wait for a full batch.
        batching_window: u32,
        /// Whether the function reports partial batch failures.
        report_batch_item_failures: bool,
    },
    /// An EventBridge schedule.
    Schedule {
        /// `rate(...)` or `cron(...)`.
        expression: String,
        /// Disabled schedules never fire.
        enabled: bool,
    },
}

/// A JWT authorizer of an HTTP API, as API Gateway applies it: the token of the identity
/// source must be signed by the issuer's keys, unexpired, for one of the audiences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthorizer {
    /// The authorizer's name.
    pub name: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` values accepted.
    pub audience: Vec<String>,
    /// The header holding the token (from `$request.header.<Name>`), lowercase.
    pub header: String,
}

/// An HTTP API of the template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiDef {
    /// The authorizer of routes that name none.
    pub default_authorizer: Option<String>,
    /// The API's JWT authorizers by name.
    pub authorizers: BTreeMap<String, JwtAuthorizer>,
}

impl StackModel {
    /// The authorizer that guards a route of `api` declaring `authorizer` (`None`: the API's
    /// default; `NONE`: public).
    pub fn authorizer_of(
        &self,
        api: Option<&str>,
        authorizer: Option<&str>,
    ) -> Result<Option<JwtAuthorizer>, String> {
        let Some(def) = api.and_then(|a| self.apis.get(a)) else {
            return match authorizer {
                None | Some("NONE") => Ok(None),
                Some(name) => Err(format!("authorizer {name} on a route of an unknown API")),
            };
        };
        let name = match authorizer {
            Some("NONE") => return Ok(None),
            Some(name) => Some(name),
            None => def.default_authorizer.as_deref(),
        };
        match name {
            None => Ok(None),
            Some(name) => def
                .authorizers
                .get(name)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("no authorizer {name} on the API")),
        }
    }
}

/// A function of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    /// The logical id (`OrdersApiFunction`).
    pub logical_id: String,
    /// The binary (the crate) that implements it (`orders-api`).
    pub binary: String,
    /// The function's environment, globals included, resolved.
    pub environment: BTreeMap<String, String>,
    /// Seconds.
    pub timeout: u32,
    /// Memory, MB (`MemorySize`, what Lambda bills GB-seconds by).
    pub memory_mb: u32,
    /// Its events.
    pub events: Vec<(String, EventDef)>,
}

impl FunctionDef {
    /// The name the function goes by (`orders-saga`): in logs, metrics, inbox records and as
    /// the `source` of its envelopes. `BAZAAR_FUNCTION` when set, else the binary's name.
    pub fn name(&self) -> String {
        self.environment
            .get("BAZAAR_FUNCTION")
            .cloned()
            .unwrap_or_else(|| self.binary.clone())
    }

    /// Whether an SQS queue triggers it.
    pub fn consumes(&self) -> bool {
        self.events
            .iter()
            .any(|(_, e)| matches!(e, EventDef::Sqs { .. }))
    }
}

/// A subscription of a queue to a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionDef {
    /// The logical id.
    pub logical_id: String,
    /// The topic's name.
    pub topic: String,
    /// The queue's name.
    pub queue: String,
    /// The filter policy.
    pub filter_policy: Option<serde_json::Value>,
    /// What the policy is matched against.
    pub scope: Scope,
    /// Raw message delivery.
    pub raw: bool,
}

/// Everything the stack runs.
#[derive(Debug, Clone, Default)]
pub struct StackModel {
    /// Topic names by logical id.
    pub topics: BTreeMap<String, String>,
    /// Queues by logical id.
    pub queues: BTreeMap<String, QueueConfig>,
    /// Subscriptions.
    pub subscriptions: Vec<SubscriptionDef>,
    /// Table names by logical id.
    pub tables: BTreeMap<String, String>,
    /// Functions by logical id.
    pub functions: BTreeMap<String, FunctionDef>,
    /// HTTP APIs by logical id.
    pub apis: BTreeMap<String, ApiDef>,
    /// Secrets (`AWS::SecretsManager::Secret`): names by logical id.
    pub secrets: BTreeMap<String, String>,
}

/// Values the local stack gives to parameters that a deployment must supply: where the
/// partners are (the local fakes).
pub const LOCAL_PARAMETERS: [(&str, &str); 3] = [
    ("AgoraUrl", "http://127.0.0.1:3002"),
    ("SoukUrl", "http://127.0.0.1:3002"),
    ("PaymentProviderUrl", "http://127.0.0.1:3001"),
];

/// The values the local stack's secrets start with, by logical id: the ones its fakes know
/// (fixed, documented, and good for the local stack only). A secret not listed starts with a
/// generated value. Each is created once in the stack's store and kept: a value put since
/// (`bazaar secrets put`) survives a restart.
pub const LOCAL_SECRETS: [(&str, &str); 6] = [
    ("PaymentsWebhookSecret", "local-webhook-secret"),
    ("AgoraWebhookSecret", "local-agora-webhook-secret"),
    ("CarrierWebhookSecret", "local-carrier-webhook-secret"),
    ("AgoraPartnerKey", "local-agora-key"),
    ("SoukPartnerKey", "local-souk-key"),
    ("PaymentProviderApiKey", "sk_local_fake_provider"),
];

impl StackModel {
    /// The value the local stack gives the secret `id` (a logical id) when it creates it.
    pub fn local_secret_value(id: &str) -> String {
        LOCAL_SECRETS
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| {
                format!(
                    "local-{}",
                    bazaar_platform::ids::random_uuid().replace('-', "")
                )
            })
    }

    /// Reads a template for the local stack: [`LOCAL_PARAMETERS`] fill what a deployment
    /// would supply, and `parameters` override anything.
    pub fn load_local(
        path: &Path,
        parameters: &BTreeMap<String, String>,
    ) -> Result<StackModel, TemplateError> {
        let mut all: BTreeMap<String, String> = LOCAL_PARAMETERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self::load(path, &all)
    }

    /// Reads a template file. `parameters` override the template's defaults.
    pub fn load(
        path: &Path,
        parameters: &BTreeMap<String, String>,
    ) -> Result<StackModel, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|e| TemplateError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, parameters).map_err(|e| match e {
            TemplateError::Unreadable { reason, .. } => TemplateError::Unreadable {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Reads a template from its text.
    pub fn parse(
        text: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<StackModel, TemplateError> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| TemplateError::Unreadable {
            path: "template".into(),
            reason: e.to_string(),
        })?;
        let empty = serde_yaml::Mapping::new();
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let mut parameters = BTreeMap::new();
        if let Some(Value::Mapping(ps)) = doc.get("Parameters") {
            for (k, p) in ps {
                let name = k.as_str().unwrap_or_default().to_string();
                let default = p.get("Default").map(|d| match d {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                });
                if let Some(v) = overrides.get(&name).cloned().or(default) {
                    parameters.insert(name, v);
                } else {
                    return Err(invalid(
                        "Parameters",
                        &name,
                        "no default and no value given",
                    ));
                }
            }
        }
        let r = Resolver {
            resources,
            parameters,
            stack_name: "bazaar".into(),
        };
        let globals = doc.get("Globals").and_then(|g| g.get("Function"));
        let mut model = StackModel::default();

        for (k, res) in resources {
            let id = k.as_str().unwrap_or_default();
            let kind = res.get("Type").and_then(Value::as_str).unwrap_or_default();
            let props = res.get("Properties").cloned().unwrap_or(Value::Null);
            let get = |name: &str| -> Result<Option<serde_json::Value>, TemplateError> {
                props.get(name).map(|v| r.resolve(v, id, name)).transpose()
            };
            match kind {
                "AWS::SNS::Topic" => {
                    model.topics.insert(id.into(), r.physical_name(id, id)?);
                }
                "AWS::DynamoDB::Table" => {
                    model.tables.insert(id.into(), r.physical_name(id, id)?);
                }
                "AWS::SecretsManager::Secret" => {
                    model.secrets.insert(id.into(), r.physical_name(id, id)?);
                }
                "AWS::SQS::Queue" => {
                    let mut q = QueueConfig::new(r.physical_name(id, id)?);
                    if let Some(v) = get("VisibilityTimeout")? {
                        q.visibility_timeout = as_u32(&v).ok_or_else(|| {
                            invalid(id, "VisibilityTimeout", "must be a number of seconds")
                        })?;
                    }
                    if let Some(v) = get("DelaySeconds")? {
                        q.delay = as_u32(&v).ok_or_else(|| {
                            invalid(id, "DelaySeconds", "must be a number of seconds")
                        })?;
                    }
                    if let Some(v) = get("ContentBasedDeduplication")? {
                        q.content_based_deduplication = as_bool(&v).unwrap_or(false);
                    }
                    if let Some(v) = get("RedrivePolicy")? {
                        let v = match v {
                            serde_json::Value::String(s) => serde_json::from_str(&s)
                                .map_err(|e| invalid(id, "RedrivePolicy", e.to_string()))?,
                            other => other,
                        };
                        let arn = v
                            .get("deadLetterTargetArn")
                            .and_then(|a| a.as_str())
                            .ok_or_else(|| {
                                invalid(id, "RedrivePolicy", "deadLetterTargetArn is required")
                            })?;
                        let max = v.get("maxReceiveCount").and_then(as_u32).ok_or_else(|| {
                            invalid(id, "RedrivePolicy", "maxReceiveCount is required")
                        })?;
                        q.redrive = Some(Redrive {
                            dead_letter_queue: bazaar_embedded::engine::name_of(arn).to_string(),
                            max_receive_count: max,
                        });
                    }
                    model.queues.insert(id.into(), q);
                }
                "AWS::SNS::Subscription" => {
                    let protocol = get("Protocol")?
                        .and_then(|p| p.as_str().map(String::from))
                        .unwrap_or_default();
                    if protocol != "sqs" {
                        return Err(invalid(
                            id,
                            "Protocol",
                            format!("only sqs subscriptions run locally, got {protocol:?}"),
                        ));
                    }
                    let topic = get("TopicArn")?
                        .and_then(|v| v.as_str().map(String::from))
                        .ok_or_else(|| invalid(id, "TopicArn", "required"))?;
                    let queue = get("Endpoint")?
                        .and_then(|v| v.as_str().map(String::from))
                        .ok_or_else(|| invalid(id, "Endpoint", "required"))?;
                    let filter_policy = match get("FilterPolicy")? {
                        Some(serde_json::Value::String(s)) => Some(
                            serde_json::from_str(&s)
                                .map_err(|e| invalid(id, "FilterPolicy", e.to_string()))?,
                        ),
                        other => other,
                    };
                    if let Some(p) = &filter_policy {
                        bazaar_embedded::filter::validate(p)
                            .map_err(|e| invalid(id, "FilterPolicy", e))?;
                    }
                    let scope = match get("FilterPolicyScope")?.as_ref().and_then(|s| s.as_str()) {
                        None | Some("MessageAttributes") => Scope::MessageAttributes,
                        Some("MessageBody") => Scope::MessageBody,
                        Some(other) => {
                            return Err(invalid(
                                id,
                                "FilterPolicyScope",
                                format!("unknown scope {other:?}"),
                            ));
                        }
                    };
                    let raw = get("RawMessageDelivery")?
                        .as_ref()
                        .and_then(as_bool)
                        .unwrap_or(false);
                    model.subscriptions.push(SubscriptionDef {
                        logical_id: id.into(),
                        topic: bazaar_embedded::engine::name_of(&topic).to_string(),
                        queue: bazaar_embedded::engine::name_of(&queue).to_string(),
                        filter_policy,
                        scope,
                        raw,
                    });
                }
                "AWS::Serverless::HttpApi" => {
                    let mut api = ApiDef::default();
                    if let Some(auth) = get("Auth")? {
                        api.default_authorizer = auth
                            .get("DefaultAuthorizer")
                            .and_then(|d| d.as_str())
                            .map(String::from);
                        for (name, a) in auth
                            .get("Authorizers")
                            .and_then(|a| a.as_object())
                            .into_iter()
                            .flatten()
                        {
                            let Some(jwt) = a.get("JwtConfiguration") else {
                                return Err(invalid(
                                    id,
                                    &format!("Auth.Authorizers.{name}"),
                                    "only JWT authorizers run locally",
                                ));
                            };
                            let issuer = jwt
                                .get("issuer")
                                .and_then(|i| i.as_str())
                                .ok_or_else(|| invalid(id, "JwtConfiguration.issuer", "required"))?
                                .to_string();
                            let audience = match jwt.get("audience") {
                                Some(serde_json::Value::Array(list)) => list
                                    .iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect(),
                                Some(serde_json::Value::String(one)) => vec![one.clone()],
                                _ => Vec::new(),
                            };
                            let source = a
                                .get("IdentitySource")
                                .and_then(|s| s.as_str())
                                .unwrap_or("$request.header.Authorization");
                            let header = source
                                .strip_prefix("$request.header.")
                                .ok_or_else(|| {
                                    invalid(
                                        id,
                                        "IdentitySource",
                                        "only $request.header.<Name> runs locally",
                                    )
                                })?
                                .to_lowercase();
                            api.authorizers.insert(
                                name.clone(),
                                JwtAuthorizer {
                                    name: name.clone(),
                                    issuer,
                                    audience,
                                    header,
                                },
                            );
                        }
                    }
                    model.apis.insert(id.into(), api);
                }
                "AWS::Serverless::Function" => {
                    let binary = res
                        .get("Metadata")
                        .and_then(|m| m.get("BuildProperties"))
                        .and_then(|b| b.get("Binary"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            invalid(
                                id,
                                "Metadata.BuildProperties.Binary",
                                "names the crate's binary; required",
                            )
                        })?
                        .to_string();
                    let mut environment = BTreeMap::new();
                    for source in [
                        globals.and_then(|g| g.get("Environment")),
                        props.get("Environment"),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        if let Some(serde_json::Value::Object(vars)) =
                            r.resolve(source, id, "Environment")?.get("Variables")
                        {
                            for (k, v) in vars {
                                environment.insert(
                                    k.clone(),
                                    v.as_str()
                                        .map(String::from)
                                        .unwrap_or_else(|| v.to_string()),
                                );
                            }
                        }
                    }
                    let timeout = props
                        .get("Timeout")
                        .or_else(|| globals.and_then(|g| g.get("Timeout")))
                        .map(|v| r.resolve(v, id, "Timeout"))
                        .transpose()?
                        .and_then(|v| as_u32(&v))
                        .unwrap_or(3);
                    let memory_mb = props
                        .get("MemorySize")
                        .or_else(|| globals.and_then(|g| g.get("MemorySize")))
                        .map(|v| r.resolve(v, id, "MemorySize"))
                        .transpose()?
                        .and_then(|v| as_u32(&v))
                        .unwrap_or(128);
                    let mut events = Vec::new();
                    if let Some(Value::Mapping(evs)) = props.get("Events") {
                        for (ek, ev) in evs {
                            let ename = ek.as_str().unwrap_or_default().to_string();
                            let at = format!("{id}.Events.{ename}");
                            let etype = ev.get("Type").and_then(Value::as_str).unwrap_or_default();
                            let ep = r.resolve(
                                ev.get("Properties").unwrap_or(&Value::Null),
                                &at,
                                "Properties",
                            )?;
                            let event = match etype {
                                "HttpApi" => EventDef::Http {
                                    method: ep
                                        .get("Method")
                                        .and_then(|m| m.as_str())
                                        .unwrap_or("ANY")
                                        .to_uppercase(),
                                    path: ep
                                        .get("Path")
                                        .and_then(|m| m.as_str())
                                        .ok_or_else(|| invalid(&at, "Path", "required locally"))?
                                        .to_string(),
                                    api: ep
                                        .get("ApiId")
                                        .and_then(|a| a.as_str())
                                        .map(|a| a.strip_prefix("local-").unwrap_or(a).to_string()),
                                    authorizer: ep
                                        .get("Auth")
                                        .and_then(|a| a.get("Authorizer"))
                                        .and_then(|a| a.as_str())
                                        .map(String::from),
                                },
                                "SQS" => EventDef::Sqs {
                                    queue: bazaar_embedded::engine::name_of(
                                        ep.get("Queue")
                                            .and_then(|q| q.as_str())
                                            .ok_or_else(|| invalid(&at, "Queue", "required"))?,
                                    )
                                    .to_string(),
                                    batch_size: ep.get("BatchSize").and_then(as_u32).unwrap_or(10),
                                    batching_window: ep
                                        .get("MaximumBatchingWindowInSeconds")
                                        .and_then(as_u32)
                                        .unwrap_or(0),
                                    report_batch_item_failures: ep
                                        .get("FunctionResponseTypes")
                                        .and_then(|t| t.as_array())
                                        .is_some_and(|t| {
                                            t.iter().any(|x| x == "ReportBatchItemFailures")
                                        }),
                                },
                                "Schedule" | "ScheduleV2" => EventDef::Schedule {
                                    expression: ep
                                        .get("Schedule")
                                        .or_else(|| ep.get("ScheduleExpression"))
                                        .and_then(|s| s.as_str())
                                        .ok_or_else(|| invalid(&at, "Schedule", "required"))?
                                        .to_string(),
                                    enabled: ep.get("Enabled").and_then(as_bool).unwrap_or(true)
                                        && ep
                                            .get("State")
                                            .and_then(|s| s.as_str())
                                            .is_none_or(|s| s == "ENABLED"),
                                },
                                other => {
                                    return Err(invalid(
                                        &at,
                                        "Type",
                                        format!("event type {other} does not run locally"),
                                    ));
                                }
                            };
                            events.push((ename, event));
                        }
                    }
                    model.functions.insert(
                        id.into(),
                        FunctionDef {
                            logical_id: id.into(),
                            binary,
                            environment,
                            timeout,
                            memory_mb,
                            events,
                        },
                    );
                }
                _ => {}
            }
        }
        for s in &model.subscriptions {
            if !model.topics.values().any(|t| t == &s.topic) {
                return Err(invalid(
                    &s.logical_id,
                    "TopicArn",
                    format!("no topic named {}", s.topic),
                ));
            }
            if !model.queues.values().any(|q| q.name == s.queue) {
                return Err(invalid(
                    &s.logical_id,
                    "Endpoint",
                    format!("no queue named {}", s.queue),
                ));
            }
        }
        Ok(model)
    }
}
