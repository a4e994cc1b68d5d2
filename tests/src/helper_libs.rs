//! Twilio's own helper libraries against the server: twilio-python 9 and twilio-node 6 run the
//! flows in tests/helper-libs (installed by scripts/setup-helper-libs.sh, which the README's
//! test command runs first).

use std::path::{Path, PathBuf};
use std::process::Command;

use p256::ecdsa::SigningKey;
use verify_push_server::domain::sid::random_bytes;

use crate::helpers::{identity, on_both_backends, spki_base64, TestApp};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

on_both_backends!(twilio_python_drives_every_resource, twilio_node_drives_every_resource);

async fn run_flow(app: TestApp, program: PathBuf, installed: PathBuf, script: &str, summary: &str) {
    assert!(
        installed.exists(),
        "{} is missing: run scripts/setup-helper-libs.sh (the README's test command does)",
        installed.display()
    );
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let keys: Vec<String> =
        (0..6).map(|_| spki_base64(&SigningKey::from_slice(&random_bytes::<32>()).unwrap())).collect();
    let output = tokio::task::spawn_blocking({
        let app_url = app.url.clone();
        let env = [
            ("VERIFY_PUSH_URL", app_url),
            ("TWILIO_ACCOUNT_SID", app.account.user.clone()),
            ("TWILIO_AUTH_TOKEN", app.account.password.clone()),
            ("VERIFY_PUSH_API_KEY_SID", app.api_key.user.clone()),
            ("VERIFY_PUSH_API_KEY_SECRET", app.api_key.password.clone()),
            ("VERIFY_PUSH_OTHER_ACCOUNT_SID", app.other_account.user.clone()),
            ("VERIFY_PUSH_OTHER_AUTH_TOKEN", app.other_account.password.clone()),
            ("FIXTURE_SERVICE_SID", service),
            ("FIXTURE_IDENTITY", user),
            ("FIXTURE_FACTOR_SID", factor),
            ("FIXTURE_PUBLIC_KEYS", keys.join(",")),
        ];
        let script = root().join(script);
        move || {
            Command::new(program)
                .arg(script)
                .envs(env)
                .env_remove("TWILIO_REGION")
                .env_remove("TWILIO_EDGE")
                .output()
                .expect("the flow runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(last.starts_with(summary) && last.ends_with(" 0 failed"), "unexpected summary: {last}\n{stdout}");
    let passed: u32 = last.trim_start_matches(summary).split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed >= 100, "the flow ran its checks: {last}");
}

async fn twilio_python_drives_every_resource(app: TestApp) {
    let python = root().join("tests/helper-libs/python/.venv/bin/python");
    run_flow(app, python.clone(), python, "tests/helper-libs/python/flow.py", "python flow:").await;
}

async fn twilio_node_drives_every_resource(app: TestApp) {
    let installed = root().join("tests/helper-libs/node/node_modules/twilio/package.json");
    run_flow(app, PathBuf::from("node"), installed, "tests/helper-libs/node/flow.js", "node flow:").await;
}
