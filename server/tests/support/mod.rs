//! What the process tests share: the real `verify-push-server` binary as a child process that can
//! be killed with SIGKILL and started again on the same database, a fresh database on either
//! backend, device-side helpers (a verified factor, a signed answer), and the recording fakes.
#![allow(dead_code, reason = "each test binary uses a part of it")]

#[path = "../../../tests/src/fakes.rs"]
#[expect(dead_code, reason = "shared with the e2e crate, which uses all of it")]
pub mod fakes;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use reqwest::Method;
use serde_json::Value;

pub const ACCOUNT: &str = "AC00000000000000000000000000000007";
pub const TOKEN: &str = "crash-test-auth-token";
/// The PostgreSQL the tests use unless `VERIFY_PUSH_TEST_POSTGRES` names another (as in the e2e
/// crate and scripts/test.sh).
const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `async fn $name(backend: Backend)` as `$name::sqlite` and `$name::postgres`.
#[allow(unused_macros, reason = "each test binary uses a part of it")]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(super::support::Backend::Sqlite).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name(super::support::Backend::Postgres).await;
                }
            }
        )+
    };
}
#[allow(unused_imports, reason = "each test binary uses a part of it")]
pub(crate) use on_both_backends;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database: a SQLite file in a temporary folder of its own (removed on drop), or a
/// PostgreSQL schema of its own, selected by the URL's `search_path` (as the e2e crate does).
pub struct Database {
    pub url: String,
    /// The PostgreSQL URL without the schema, and the schema, to inspect the database directly.
    pub postgres: Option<(String, String)>,
    dir: Option<PathBuf>,
}

impl Database {
    pub async fn fresh(backend: Backend, name: &str) -> Database {
        let unique = format!(
            "{name}_{}_{}",
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos()
        );
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("vps-{unique}"));
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite://{}", dir.join("db.sqlite").display());
                Database { url, postgres: None, dir: Some(dir) }
            }
            Backend::Postgres => {
                let base = std::env::var("VERIFY_PUSH_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES_DEFAULT.to_owned());
                let schema = format!("proc_{unique}");
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for the postgres tests: {e}"));
                sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Database { url, postgres: Some((base, schema)), dir: None }
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A free local port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running server process; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts the binary on `db` and `port` with the test account and `env`, and waits for
    /// `/healthz`.
    pub async fn start(db: &str, port: u16, env: &[(&str, &str)]) -> Server {
        let child = Server::command(db, port, env).spawn().unwrap();
        let mut server = Server { child, url: format!("http://127.0.0.1:{port}") };
        for _ in 0..400 {
            if reqwest::get(format!("{}/healthz", server.url)).await.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        server.kill();
        panic!("the server did not start");
    }

    /// The binary on `db` and `port` with the test account and `env`.
    fn command(db: &str, port: u16, env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_verify-push-server"));
        command
            .env("VERIFY_PUSH_BIND", format!("127.0.0.1:{port}"))
            .env("VERIFY_PUSH_DATABASE_URL", db)
            .env("VERIFY_PUSH_ACCOUNT_SID", ACCOUNT)
            .env("VERIFY_PUSH_AUTH_TOKEN", TOKEN)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        command
    }

    /// Starts the binary as [`Server::start`] does, expecting it to refuse to start: waits for it
    /// to exit (at most 30 s), checks the exit status is a failure and returns its stderr.
    pub fn refused(db: &str, env: &[(&str, &str)]) -> String {
        let mut child = Server::command(db, free_port(), env).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server started, or did not stop, within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "the server exited with success: {stderr}");
        stderr
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A backend call with the test account; returns the JSON body and the signature-fields header.
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    form: &[(&str, &str)],
) -> (serde_json::Value, Option<String>) {
    let response = http.request(method, url).basic_auth(ACCOUNT, Some(TOKEN)).form(form).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let fields = response.headers().get("twilio-verify-signature-fields").map(|v| v.to_str().unwrap().to_owned());
    (response.json().await.unwrap(), fields)
}

/// Creates a push Factor through `create_at` (an Entity's URL) with a P-256 key made from `seed`,
/// for `platform` with `token` (none for platform `none`), and verifies it through `verify_at`
/// (the same Entity, maybe through another instance) with the key's signature of its SID (the
/// SDKs' proof); returns its SID and the key.
pub async fn verified_factor(
    http: &reqwest::Client,
    create_at: &str,
    verify_at: &str,
    seed: u8,
    platform: &str,
    token: Option<&str>,
) -> (String, SigningKey) {
    let key = SigningKey::from_slice(&[seed; 32]).unwrap();
    let public = STANDARD.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes());
    let mut form = vec![
        ("FriendlyName", "phone"),
        ("FactorType", "push"),
        ("Binding.Alg", "ES256"),
        ("Binding.PublicKey", public.as_str()),
        ("Config.SdkVersion", "0.9.0"),
        ("Config.AppId", "com.example"),
        ("Config.NotificationPlatform", platform),
    ];
    if let Some(token) = token {
        form.push(("Config.NotificationToken", token));
    }
    let (factor, _) = call(http, Method::POST, &format!("{create_at}/Factors"), &form).await;
    let sid = factor["sid"].as_str().unwrap().to_owned();
    let proof: DerSignature = key.sign(sid.as_bytes());
    let (verified, _) =
        call(http, Method::POST, &format!("{verify_at}/Factors/{sid}"), &[("AuthPayload", &STANDARD.encode(proof))])
            .await;
    assert_eq!(verified["status"], "verified");
    (sid, key)
}

/// Answers the Challenge at `url` `approved`, as a device does: a JWS over the fields the
/// server advertises (`Twilio-Verify-Signature-Fields`), signed with the factor's key. Returns
/// the answered Challenge.
pub async fn approve(http: &reqwest::Client, url: &str, key: &SigningKey) -> Value {
    let (challenge, fields) = call(http, Method::GET, url, &[]).await;
    let mut payload = serde_json::Map::new();
    for field in fields.unwrap().split(',') {
        payload.insert(field.to_owned(), challenge[field].clone());
    }
    payload.insert("status".into(), "approved".into());
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(Value::Object(payload).to_string())
    );
    let signature: Signature = key.sign(input.as_bytes());
    let answer = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    let (answered, _) = call(http, Method::POST, url, &[("AuthPayload", &answer)]).await;
    assert_eq!(answered["status"], "approved");
    answered
}
