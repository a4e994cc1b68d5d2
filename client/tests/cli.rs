//! `verify-push-device` runs the README's quickstart end to end against a running server, over
//! plain HTTP and over HTTPS with the server's `--tls-self-signed` CA.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use verify_push_server::clock::SystemClock;
use verify_push_server::config::ServeArgs;
use verify_push_server::startup::Application;

const ACCOUNT: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "cli-test-auth-token";

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vpd-cli-{name}-{}-{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Server {
    url: String,
    ca: Option<PathBuf>,
    http: reqwest::Client,
}

async fn start(tls: bool) -> Server {
    let dir = temp("server");
    let mut args = ServeArgs::defaults();
    args.bind = "127.0.0.1:0".into();
    args.database.database_url = format!("sqlite://{}", dir.join("db.sqlite").display());
    args.account_sid = Some(ACCOUNT.into());
    args.auth_token = Some(TOKEN.into());
    args.workers = Some(1);
    if tls {
        args.tls_self_signed = Some(dir.join("tls"));
    }
    let app = Application::build(args, Arc::new(SystemClock)).await.unwrap();
    let ca = app.self_signed.as_ref().map(|i| i.ca_pem.clone());
    let scheme = if tls { "https" } else { "http" };
    // The certificate names localhost, not the bound address.
    let url = format!("{scheme}://localhost:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let mut http = reqwest::Client::builder();
    if let Some(ca) = &ca {
        http = http.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap());
    }
    Server { url, ca, http: http.build().unwrap() }
}

impl Server {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth(ACCOUNT, Some(TOKEN))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let response =
            self.http.get(format!("{}{path}", self.url)).basic_auth(ACCOUNT, Some(TOKEN)).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

fn encode(v: &str) -> String {
    v.bytes().map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Runs the CLI; returns (success, stdout, stderr).
async fn cli(home: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_verify-push-device"));
    command.args(args).env("VERIFY_PUSH_DEVICE_HOME", home).env_remove("VERIFY_PUSH_DEVICE_PROFILE");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = cli(home, &all).await;
    assert!(ok, "{args:?} failed: {err}");
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|_| panic!("{args:?}: not JSON: {out}"))
}

async fn quickstart(tls: bool) {
    let server = start(tls).await;
    let home = temp("home");
    let service =
        server.post("/v2/Services", &[("FriendlyName", "CLI quickstart")]).await["sid"].as_str().unwrap().to_owned();
    let identity = "user-cli-1234";
    let token = server
        .post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", identity), ("FactorType", "push")])
        .await;
    let token = token["token"].as_str().unwrap().to_owned();

    let mut enroll =
        vec!["enroll", "--url", &server.url, "--service", &service, "--identity", identity, "--access-token", &token];
    let push_token = "f".repeat(64);
    enroll.extend(["--push-token", &push_token, "--metadata", "os=cli"]);
    let ca = server.ca.as_ref().map(|p| p.display().to_string());
    if let Some(ca) = &ca {
        enroll.extend(["--ca-cert", ca]);
    } else {
        assert!(!tls);
    }
    let enrolled = json(&home, &enroll).await;
    let factor = enrolled["factor"]["sid"].as_str().unwrap().to_owned();
    assert_eq!(enrolled["factor"]["status"], "verified");
    let (_, stored) = server.get(&format!("/v2/Services/{service}/Entities/{identity}/Factors/{factor}")).await;
    assert_eq!(stored["metadata"]["os"], "cli");

    let listed = json(&home, &["factors"]).await;
    assert_eq!(listed[0]["factor_sid"], factor.as_str());
    let (ok, human, _) = cli(&home, &["factors"]).await;
    assert!(ok && human.contains(&factor) && human.contains("verified"), "{human}");

    let challenge = |message: &'static str| {
        let path = format!("/v2/Services/{service}/Entities/{identity}/Challenges");
        let factor = factor.clone();
        let server = &server;
        async move {
            server.post(&path, &[("FactorSid", &factor), ("Details.Message", message)]).await["sid"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let first = challenge("First login").await;
    let second = challenge("Second login").await;
    let pending = json(&home, &["challenges", "--status", "pending", "--order", "desc"]).await;
    let sids: Vec<&str> =
        pending["challenges"].as_array().unwrap().iter().map(|c| c["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, vec![second.as_str(), first.as_str()]);
    let shown = json(&home, &["show", &first]).await;
    assert_eq!(shown["details"]["message"], "First login");
    let (ok, human, _) = cli(&home, &["show", &first]).await;
    assert!(ok && human.contains("First login") && human.contains("pending"), "{human}");

    assert_eq!(json(&home, &["approve", "--latest"]).await["status"], "approved");
    assert_eq!(json(&home, &["deny", &first]).await["status"], "denied");
    let (_, backend) = server.get(&format!("/v2/Services/{service}/Entities/{identity}/Challenges/{second}")).await;
    assert_eq!(backend["status"], "approved");
    let (_, backend) = server.get(&format!("/v2/Services/{service}/Entities/{identity}/Challenges/{first}")).await;
    assert_eq!(backend["status"], "denied");

    let third = challenge("Third login").await;
    let watched =
        json(&home, &["watch", "--auto-approve", "--count", "1", "--timeout", "20", "--interval", "0.2"]).await;
    assert_eq!(watched["sid"], third.as_str());
    assert_eq!(watched["status"], "approved");

    let (ok, _, err) = cli(&home, &["approve", &first]).await;
    assert!(!ok && err.contains("not pending"), "{err}");
    let (ok, _, err) = cli(&home, &["show", "YC00000000000000000000000000000000"]).await;
    assert!(!ok && err.contains("20404"), "the Twilio code is shown: {err}");

    let new_token = "e".repeat(64);
    json(&home, &["update-push-token", &new_token]).await;
    let (_, stored) = server.get(&format!("/v2/Services/{service}/Entities/{identity}/Factors/{factor}")).await;
    assert_eq!(stored["config"]["notification_token"], new_token.as_str());

    json(&home, &["unenroll"]).await;
    let (status, _) = server.get(&format!("/v2/Services/{service}/Entities/{identity}/Factors/{factor}")).await;
    assert_eq!(status, 404);
    let (ok, _, err) = cli(&home, &["challenges"]).await;
    assert!(!ok && err.contains("enroll"), "{err}");
}

#[tokio::test]
async fn the_quickstart_runs_over_http() {
    quickstart(false).await;
}

#[tokio::test]
async fn the_quickstart_runs_over_https_with_the_self_signed_ca() {
    quickstart(true).await;
}

#[tokio::test]
async fn an_untrusted_self_signed_server_is_refused() {
    let server = start(true).await;
    let home = temp("untrusted");
    let (ok, _, err) = cli(
        &home,
        &[
            "enroll",
            "--url",
            &server.url,
            "--service",
            "VA00000000000000000000000000000000",
            "--identity",
            "user-12345678",
            "--access-token",
            "x",
        ],
    )
    .await;
    assert!(!ok && err.contains("transport error"), "{err}");
}
