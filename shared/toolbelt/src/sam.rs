//! What `sam local invoke` and `sam local start-api` need to run a function against a stack
//! on an AWS-compatible endpoint (the one `scripts/dev --endpoint-url` provisions): the
//! `--env-vars` file. SAM resolves a template's references to a resource as the resource's
//! logical id (`TABLE_NAME=SearchTable`) and overrides only the variables the template
//! declares, so the file gives every function every variable the template declares for it,
//! with the endpoint's table names, topic ARNs and queue URLs, and `AWS_ENDPOINT_URL` as the
//! function's container reaches the endpoint.

use std::collections::BTreeMap;

use bazaar_localstack::StackModel;
use bazaar_localstack::aws::Provisioned;
use serde_json::{Value, json};

/// The endpoint as a function's container reaches it: a loopback host (`127.0.0.1`,
/// `localhost`, `0.0.0.0`) is the container's own loopback there, so it becomes
/// `host.docker.internal` (which `sam local invoke --add-host
/// host.docker.internal:host-gateway` maps to the host). Other hosts stay.
pub fn container_endpoint(endpoint: &str) -> String {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return endpoint.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, Some(p)),
        _ => (authority, None),
    };
    let host = match host {
        "127.0.0.1" | "localhost" | "0.0.0.0" | "[::1]" => "host.docker.internal",
        other => other,
    };
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    }
}

/// The `--env-vars` file: by function logical id, every variable the template declares for
/// it, bound to the endpoint's resources, with `AWS_ENDPOINT_URL` set to
/// `function_endpoint`. Other URLs on a loopback host (the fake payment provider's, the
/// marketplaces') are given as the container reaches them too ([`container_endpoint`]).
pub fn env_vars(model: &StackModel, provisioned: &Provisioned, function_endpoint: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (id, f) in &model.functions {
        let mut vars: BTreeMap<String, String> = provisioned
            .rebind(&f.environment)
            .into_iter()
            .map(|(k, v)| (k, in_container(&v)))
            .collect();
        vars.insert("AWS_ENDPOINT_URL".into(), function_endpoint.to_string());
        out.insert(id.clone(), json!(vars));
    }
    Value::Object(out)
}

/// A value with its URLs as a container reaches them: a URL, or a list of `Id=URL` pairs.
fn in_container(value: &str) -> String {
    bazaar_localstack::aws::map_values(value, |v| {
        (v.starts_with("http://") || v.starts_with("https://")).then(|| container_endpoint(v))
    })
}

#[cfg(test)]
mod tests {
    use super::container_endpoint;

    #[test]
    fn a_loopback_endpoint_becomes_the_docker_host() {
        assert_eq!(
            container_endpoint("http://127.0.0.1:5000"),
            "http://host.docker.internal:5000"
        );
        assert_eq!(
            container_endpoint("http://localhost:5000/"),
            "http://host.docker.internal:5000/"
        );
        assert_eq!(
            container_endpoint("http://0.0.0.0"),
            "http://host.docker.internal"
        );
        assert_eq!(
            container_endpoint("http://172.17.0.1:5000"),
            "http://172.17.0.1:5000"
        );
        assert_eq!(
            container_endpoint("https://moto.internal:443"),
            "https://moto.internal:443"
        );
    }
}
