//! `bazaar sam env-vars` on a stack provisioned on an AWS API (moto, started by
//! `scripts/test`): every function of the template gets every variable the template declares
//! for it, each resource variable names a resource that exists on the endpoint (lists of
//! queues included), loopback URLs are given as a container reaches them, and the command
//! line writes the same file.

use std::collections::{BTreeMap, BTreeSet};

use bazaar_aws::testing;
use bazaar_localstack::StackModel;
use serde_json::Value;

fn template() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

#[tokio::test]
async fn the_env_vars_file_names_the_endpoints_resources_for_every_declared_variable() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let stage = testing::unique("sam");
    let model = StackModel::load_local(
        &template(),
        &BTreeMap::from([("Stage".to_string(), stage.clone())]),
    )
    .unwrap();
    let provisioned = bazaar_localstack::aws::provision(&model, &config)
        .await
        .unwrap();
    let function_endpoint = bazaar_toolbelt::sam::container_endpoint(&endpoint);
    assert!(function_endpoint.starts_with("http://host.docker.internal:"));
    let file = bazaar_toolbelt::sam::env_vars(&model, &provisioned, &function_endpoint);

    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let functions = file.as_object().unwrap();
    assert_eq!(
        functions.keys().collect::<BTreeSet<_>>(),
        model.functions.keys().collect::<BTreeSet<_>>()
    );
    let mut checked = 0;
    for (id, vars) in functions {
        let vars: BTreeMap<String, String> = serde_json::from_value(vars.clone()).unwrap();
        let mut declared: BTreeSet<&str> = model.functions[id]
            .environment
            .keys()
            .map(String::as_str)
            .collect();
        declared.insert("AWS_ENDPOINT_URL");
        assert_eq!(
            vars.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            declared,
            "{id}: exactly the variables SAM will override"
        );
        assert_eq!(vars["AWS_ENDPOINT_URL"], function_endpoint);
        for (name, value) in &vars {
            assert!(
                !value.contains("sqs.local.localhost") && !value.contains("127.0.0.1"),
                "{id} {name}={value}: a local stack's name or a loopback URL"
            );
            if name == "TABLE_NAME" {
                dynamodb
                    .describe_table()
                    .table_name(value)
                    .send()
                    .await
                    .unwrap();
                checked += 1;
            } else if name.starts_with("TOPIC_ARN_") {
                sns.get_topic_attributes()
                    .topic_arn(value)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{id} {name}={value}: {e:?}"));
                checked += 1;
            } else if name == "DLQ_URL" || name.starts_with("MONITORED_") {
                let urls: Vec<&str> = if name == "DLQ_URL" {
                    vec![value.as_str()]
                } else {
                    value
                        .split(',')
                        .map(|pair| pair.split_once('=').unwrap().1)
                        .collect()
                };
                for url in urls {
                    let queue = url.rsplit('/').next().unwrap();
                    sqs.get_queue_url()
                        .queue_name(queue)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("{id} {name}: {url}: {e:?}"));
                    assert!(
                        url.starts_with("http://host.docker.internal:"),
                        "{id} {name}: {url}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 40, "{checked} resources checked");
    let worker = &file["PaymentsWorkerFunction"];
    assert!(
        worker["PROVIDER_URL"]
            .as_str()
            .unwrap()
            .starts_with("http://host.docker.internal:"),
        "{worker}"
    );

    // The command line writes the same file.
    let out = std::env::temp_dir().join(format!("{stage}-env.json"));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .arg("--template")
        .arg(template())
        .args(["--endpoint-url", &endpoint, "--stage", &stage])
        .args(["sam", "env-vars", "--out"])
        .arg(&out)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("sam local invoke"),
        "says how to use it: {stderr}"
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, file);
    std::fs::remove_file(&out).unwrap();
}
