//! `scripts/dev --endpoint-url` (bazaar-local) without what an endpoint needs says what to
//! set or start, in one or two lines: no backtrace, no instance-metadata warnings.

use std::path::PathBuf;
use std::process::Command;

fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn dev(env: &[(&str, &str)], endpoint: &str) -> (i32, String) {
    let home = std::env::temp_dir().join(format!("bazaar-no-aws-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bazaar-local"));
    cmd.arg("--template")
        .arg(template())
        .arg("--data-dir")
        .arg(home.join("data"))
        .args(["dev", "--endpoint-url", endpoint, "--port", "0"])
        .args(["--provider-port", "0", "--marketplace-port", "0"])
        .args(["--carrier-port", "0"])
        .env("HOME", &home)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG");
    for var in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("bazaar-local runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plain(stderr: &str) {
    for noise in ["backtrace", "IMDS", "Caused by", "panicked"] {
        assert!(!stderr.contains(noise), "{noise:?} in:\n{stderr}");
    }
}

#[test]
fn an_endpoint_run_says_what_is_missing() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());

    let (code, stderr) = dev(&[], &endpoint);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("error: no AWS region: set AWS_REGION"),
        "{stderr}"
    );
    plain(&stderr);

    let (code, stderr) = dev(&[("AWS_REGION", "us-east-1")], &endpoint);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{stderr}"
    );
    plain(&stderr);

    let keys = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let (code, stderr) = dev(&keys, &endpoint);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("nothing answers at {endpoint}")),
        "{stderr}"
    );
    plain(&stderr);
}
