//! Twilio's own helper libraries against the server: twilio-python 9 and twilio-node 6 run the
//! flows in tests/helper-libs (installed by scripts/setup-helper-libs.sh, which the README's
//! test command runs first).

use std::path::{Path, PathBuf};
use std::process::Command;

use p256::ecdsa::SigningKey;
use verify_push_client::device::Connection;
use verify_push_client::{Device, ListOptions, Profile, Style};
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

on_both_backends!(
    an_android_device_and_a_twilio_python_backend_complete_the_push_flow,
    an_ios_device_and_a_twilio_python_backend_complete_the_push_flow,
);

/// One step of tests/helper-libs/python/backend.py (a twilio-python backend).
pub async fn backend(app: &TestApp, args: &[&str]) -> serde_json::Value {
    let python = root().join("tests/helper-libs/python/.venv/bin/python");
    assert!(python.exists(), "run scripts/setup-helper-libs.sh (the README's test command does)");
    let mut command = Command::new(python);
    command
        .arg(root().join("tests/helper-libs/python/backend.py"))
        .args(args)
        .env("VERIFY_PUSH_URL", &app.url)
        .env("TWILIO_ACCOUNT_SID", &app.account.user)
        .env("TWILIO_AUTH_TOKEN", &app.account.password)
        .env_remove("TWILIO_REGION")
        .env_remove("TWILIO_EDGE");
    let output = tokio::task::spawn_blocking(move || command.output().expect("python runs")).await.unwrap();
    assert!(output.status.success(), "backend.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn push_flow_with_python_backend(app: TestApp, style: Style) {
    let user = identity();
    let setup = backend(&app, &["setup", &user]).await;
    let service = setup["service_sid"].as_str().unwrap().to_owned();
    let mut profile = Profile::new("python-flow", &app.url, style, &service, &user);
    profile.push_token = Some("d".repeat(64));
    let mut device = Device::new(profile, None, &Connection::default()).unwrap();
    let factor = device.enroll(setup["token"].as_str().unwrap(), None).await.unwrap();
    let seen = backend(&app, &["factor", &service, &user, &factor.sid]).await;
    assert_eq!(seen["status"], "verified");
    assert_eq!(seen["notification_platform"], style.platform());

    let mut sids = Vec::new();
    for message in ["Sign in to Owl Bank", "Approve transfer", "Sign in again"] {
        let created = backend(&app, &["challenge", &service, &user, &factor.sid, message]).await;
        assert_eq!(created["status"], "pending");
        sids.push(created["sid"].as_str().unwrap().to_owned());
    }
    let listed =
        device.challenges(&ListOptions { status: Some("pending".into()), ..ListOptions::default() }).await.unwrap();
    assert_eq!(listed.challenges.iter().map(|c| c.sid.clone()).collect::<Vec<_>>(), sids);
    let received = device.challenge(&sids[0]).await.unwrap();
    assert_eq!(received.fields, vec![("Action".into(), "Sign in".into()), ("IP".into(), "203.0.113.7".into())]);

    device.approve(&sids[0]).await.unwrap();
    device.deny(&sids[1]).await.unwrap();
    device.approve(&sids[2]).await.unwrap();
    let status = backend(&app, &["challenge-status", &service, &user, &sids[1]]).await;
    assert_eq!(status["status"], "denied");
    assert!(status["date_responded"].is_string());
    let by_status = backend(&app, &["challenges", &service, &user, &factor.sid]).await;
    assert_eq!(by_status["pending"], serde_json::json!([]));
    assert_eq!(by_status["approved"], serde_json::json!([sids[0], sids[2]]));
    assert_eq!(by_status["denied"], serde_json::json!([sids[1]]));
}

async fn an_android_device_and_a_twilio_python_backend_complete_the_push_flow(app: TestApp) {
    push_flow_with_python_backend(app, Style::Android).await;
}

async fn an_ios_device_and_a_twilio_python_backend_complete_the_push_flow(app: TestApp) {
    push_flow_with_python_backend(app, Style::Ios).await;
}
