//! `spawn_app`: a real server on port 0 with a fresh database (a SQLite file, or a PostgreSQL
//! schema of its own), a clock the test can move, two accounts and an API key; and the
//! `backend()` role that calls it the way a customer backend does. Background work is run by
//! hand with [`TestApp::drain`]; a `TestApp` dropped with pushes or webhook deliveries still due
//! fails its test unless it said why ([`TestApp::expect_leftovers`]).

use std::sync::{Arc, Mutex};

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use verify_push_server::clock::{Clock as _, ManualClock};
use verify_push_server::config::ServeArgs;
use verify_push_server::domain::sid::random_hex;
use verify_push_server::startup::Application;
use verify_push_server::startup::ServerWorkers;
use verify_push_server::store::{Backend, Store};
use verify_push_server::workers::Drained;

pub const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Declares async test fns that run once on each backend: `fn x(app: TestApp)` becomes tests
/// `x::sqlite` and `x::postgres`.
macro_rules! on_both_backends {
    // `on_both_backends!(with tweak; x, …)`: each server's settings adjusted by `fn tweak(&mut ServeArgs)`.
    (with $tweak:ident; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::spawn_app_with($crate::helpers::Sqlite, super::$tweak).await).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::spawn_app_with($crate::helpers::Postgres, super::$tweak).await).await;
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::spawn_app($crate::helpers::Sqlite).await).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::spawn_app($crate::helpers::Postgres).await).await;
                }
            }
        )+
    };
}
pub(crate) use on_both_backends;

/// Like `on_both_backends!`, for tests that start their own server: `fn x(backend: Backend)`.
macro_rules! for_each_backend {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Sqlite).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::Postgres).await;
                }
            }
        )+
    };
}
pub(crate) use for_each_backend;
pub use Backend::{Postgres, Sqlite};

/// A caller's credentials.
#[derive(Clone, Debug)]
pub struct Creds {
    pub user: String,
    pub password: String,
}

pub struct TestApp {
    pub url: String,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub backend: Backend,
    pub database_url: String,
    pub account: Creds,
    pub api_key: Creds,
    pub other_account: Creds,
    http: reqwest::Client,
    workers: ServerWorkers,
    /// Why the test may end with background work due (`expect_leftovers`).
    leftovers: Mutex<Option<&'static str>>,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// Asserts a Twilio error envelope with this status and code, and returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: u64) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["code"].as_u64(), Some(code), "body: {}", self.body);
        assert_eq!(self.body["status"].as_u64(), Some(u64::from(status)), "body: {}", self.body);
        assert_eq!(
            self.body["more_info"].as_str(),
            Some(format!("https://www.twilio.com/docs/errors/{code}").as_str()),
            "body: {}",
            self.body
        );
        let keys: Vec<&String> = self.body.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 4, "the envelope has exactly code, message, more_info, status: {}", self.body);
        self.body["message"].as_str().expect("message").to_owned()
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

/// Fresh database URL for one test.
pub async fn fresh_database(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("verify-push-e2e");
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}", dir.join(format!("{}.db", random_hex::<8>())).display())
        }
        Backend::Postgres => {
            let base = std::env::var("VERIFY_PUSH_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES_DEFAULT.to_owned());
            let schema = format!("e2e_{}", random_hex::<8>());
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for the postgres tests: {e}"));
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.expect("create schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3D{schema}")
        }
    }
}

/// Starts a server on a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    let database_url = fresh_database(backend).await;
    spawn_app_on(backend, &database_url).await
}

/// Starts a server on a fresh database with settings adjusted by `tweak`.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let database_url = fresh_database(backend).await;
    spawn_app_configured(backend, &database_url, tweak).await
}

/// Starts a server on `database_url` (several servers may share one).
pub async fn spawn_app_on(backend: Backend, database_url: &str) -> TestApp {
    spawn_app_configured(backend, database_url, |_| {}).await
}

pub async fn spawn_app_configured(backend: Backend, database_url: &str, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    start(backend, database_url, tweak, false).await
}

/// Like [`spawn_app_with`], with the server's background loops running as in production (for
/// the tests of those loops; every other test drains by hand).
pub async fn spawn_app_with_background_loops(backend: Backend, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let database_url = fresh_database(backend).await;
    start(backend, &database_url, tweak, true).await
}

async fn start(backend: Backend, database_url: &str, tweak: impl FnOnce(&mut ServeArgs), loops: bool) -> TestApp {
    let account = Creds { user: "AC".to_owned() + &"1".repeat(32), password: "main-auth-token-0001".into() };
    let other_account = Creds { user: "AC".to_owned() + &"2".repeat(32), password: "other-auth-token-002".into() };
    let api_key = Creds { user: "SK".to_owned() + &"3".repeat(32), password: "api-key-secret-00003".into() };
    let accounts_file = std::env::temp_dir().join(format!("verify-push-e2e-accounts-{}.json", random_hex::<8>()));
    std::fs::write(
        &accounts_file,
        serde_json::json!({"accounts": [{"account_sid": other_account.user, "auth_token": other_account.password}]})
            .to_string(),
    )
    .expect("accounts file");

    let mut args = ServeArgs::defaults();
    args.bind = "127.0.0.1:0".into();
    args.database.database_url = database_url.to_owned();
    args.database.database_max_connections = 4;
    args.account_sid = Some(account.user.clone());
    args.auth_token = Some(account.password.clone());
    args.api_key_sid = Some(api_key.user.clone());
    args.api_key_secret = Some(api_key.password.clone());
    args.accounts_file = Some(accounts_file);
    args.workers = Some(1);
    tweak(&mut args);

    let clock = ManualClock::new(time::OffsetDateTime::now_utc().unix_timestamp());
    let app = Application::build(args, clock.clone()).await.expect("server starts");
    // Without the background loops a test runs the work by hand (`TestApp::drain`), so what
    // happened, and when, is up to the test alone.
    let app = if loops { app } else { app.without_background_loops() };
    let url = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let workers = app.workers();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        url,
        store,
        clock,
        backend,
        database_url: database_url.to_owned(),
        account,
        api_key,
        other_account,
        http: reqwest::Client::new(),
        workers,
        leftovers: Mutex::new(None),
    }
}

impl TestApp {
    /// Runs the pushes and webhook deliveries due at the clock's time until none is left
    /// (waiting for any the background loops are sending); returns how many it claimed.
    pub async fn drain(&self) -> Drained {
        self.workers.drain(false).await
    }

    /// [`TestApp::drain`] after a sweep (expired Challenges, stale unverified Factors).
    pub async fn sweep_and_drain(&self) -> Drained {
        self.workers.drain(true).await
    }

    /// Lets the test end with pushes or webhook deliveries still due, for `reason`.
    pub fn expect_leftovers(&self, reason: &'static str) {
        *self.leftovers.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }

    /// A raw request with optional credentials, form pairs and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        creds: Option<&Creds>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.url) };
        let mut request = self.http.request(method, url);
        if let Some(c) = creds {
            request = request.basic_auth(&c.user, Some(&c.password));
        }
        if !form.is_empty() {
            let encoded: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
            request = request.header("Content-Type", "application/x-www-form-urlencoded").body(encoded.join("&"));
        }
        if let Some(b) = body {
            request = request.body(b);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        Reply { status, body, headers }
    }

    /// As the main account's backend.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(Method::POST, path, Some(&self.account), form, &[], None).await
    }
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(&self.account), &[], &[], None).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some(&self.account), &[], &[], None).await
    }

    /// Creates a Service and returns its SID.
    pub async fn service(&self) -> String {
        let reply = self.post("/v2/Services", &[("FriendlyName", "Test Service")]).await;
        reply.assert_status(201)["sid"].as_str().expect("sid").to_owned()
    }

    /// Creates an unverified push Factor; returns its SID and the device key.
    pub async fn unverified_factor(&self, service: &str, identity: &str) -> (String, SigningKey) {
        self.unverified_factor_on(service, identity, "fcm", &"t".repeat(40)).await
    }

    /// Creates an unverified push Factor on `platform` with push token `token`.
    pub async fn unverified_factor_on(
        &self,
        service: &str,
        identity: &str,
        platform: &str,
        token: &str,
    ) -> (String, SigningKey) {
        let key = device_key();
        let public = spki_base64(&key);
        let form = factor_form(&public, platform, token);
        let reply = self.post(&format!("/v2/Services/{service}/Entities/{identity}/Factors"), &form).await;
        let sid = reply.assert_status(201)["sid"].as_str().expect("sid").to_owned();
        (sid, key)
    }

    /// Creates a push Factor and verifies it with a real signature over its SID.
    pub async fn verified_factor(&self, service: &str, identity: &str) -> (String, SigningKey) {
        self.verified_factor_on(service, identity, "fcm", &"t".repeat(40)).await
    }

    /// Creates and verifies a push Factor on `platform` with push token `token`.
    pub async fn verified_factor_on(
        &self,
        service: &str,
        identity: &str,
        platform: &str,
        token: &str,
    ) -> (String, SigningKey) {
        let (sid, key) = self.unverified_factor_on(service, identity, platform, token).await;
        let payload = verification_payload(&key, &sid);
        let reply = self
            .post(&format!("/v2/Services/{service}/Entities/{identity}/Factors/{sid}"), &[("AuthPayload", &payload)])
            .await;
        assert_eq!(reply.assert_status(200)["status"], "verified");
        (sid, key)
    }

    /// Creates a pending Challenge; returns its body.
    pub async fn challenge(&self, service: &str, identity: &str, factor: &str) -> Value {
        let reply = self
            .post(
                &format!("/v2/Services/{service}/Entities/{identity}/Challenges"),
                &[("FactorSid", factor), ("Details.Message", "Login request")],
            )
            .await;
        reply.assert_status(201).clone()
    }
}

/// A fresh device key.
pub fn device_key() -> SigningKey {
    SigningKey::from_slice(&verify_push_server::domain::sid::random_bytes::<32>())
        .unwrap_or_else(|_| SigningKey::from_slice(&[7; 32]).expect("key"))
}

/// The body of a push Factor creation with public key `public` (base64 SPKI).
pub fn factor_form<'a>(public: &'a str, platform: &'a str, token: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![
        ("FriendlyName", "Pixel 8"),
        ("FactorType", "push"),
        ("Binding.Alg", "ES256"),
        ("Binding.PublicKey", public),
        ("Config.SdkVersion", "0.9.0"),
        ("Config.AppId", "com.example.app"),
        ("Config.NotificationPlatform", platform),
    ];
    if !token.is_empty() {
        form.push(("Config.NotificationToken", token));
    }
    form
}

/// The `AuthPayload` that verifies Factor `sid`: a DER ECDSA signature over the SID, base64.
pub fn verification_payload(key: &SigningKey, sid: &str) -> String {
    let signature: DerSignature = key.sign(sid.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(signature.as_bytes())
}

pub fn spki_base64(key: &SigningKey) -> String {
    let der = key.verifying_key().to_public_key_der().expect("spki");
    base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
}

/// Percent-encodes everything but unreserved characters (as the Android SDK does).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A fresh valid identity.
pub fn identity() -> String {
    format!("user-{}", random_hex::<6>())
}

impl Drop for TestApp {
    /// Fails the test if a push or webhook delivery is left due at the clock's time, or claimed
    /// and unsettled: the test should have drained it or said why (`expect_leftovers`).
    fn drop(&mut self) {
        let expected = self.leftovers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some();
        if expected || std::thread::panicking() {
            return;
        }
        // The test's runtime is blocked in this drop: read on a thread and connection of our
        // own, for a bounded time (a database reached through a task of the test's runtime,
        // such as faults.rs's proxy, cannot answer now).
        let (backend, url, now) = (self.backend, self.database_url.clone(), self.clock.now());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let _ = tx.send(runtime.block_on(leftovers(backend, &url, now)));
        });
        let left = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap_or_else(|e| {
            panic!("the leftover check could not read the database ({e}; reached through the test's runtime? then call expect_leftovers)")
        });
        assert!(
            left.is_empty(),
            "background work left undone at the end of the test (drain it, or call expect_leftovers with a reason): {left:?}"
        );
    }
}

/// Pushes and webhook deliveries due at `now` (those a claim would take: a delivery waiting
/// behind an earlier open one of its webhook and factor is not) or claimed and unsettled, as
/// (table, id, status).
async fn leftovers(backend: Backend, database_url: &str, now: i64) -> Vec<(String, i64, String)> {
    use sqlx::Connection as _;
    const DUE: &str = "SELECT 'pushes', id, status FROM pushes \
        WHERE status = 'sending' OR (status IN ('queued', 'retrying') AND next_attempt_at <= $1) \
        UNION ALL SELECT 'webhook_deliveries', d.id, d.status FROM webhook_deliveries d \
        WHERE d.status = 'sending' OR (d.status IN ('pending', 'retrying') AND d.next_attempt_at <= $1 \
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_sid = d.webhook_sid \
        AND e.factor_sid = d.factor_sid AND e.id < d.id AND e.status IN ('pending', 'retrying', 'sending')))";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(database_url).await.expect("open the SQLite database");
            let query = sqlx::query_as::<_, (String, i64, String)>(DUE).bind(now);
            query.fetch_all(&mut conn).await.expect("read the outboxes")
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(database_url).await.expect("connect to PostgreSQL");
            let query = sqlx::query_as::<_, (String, i64, String)>(DUE).bind(now);
            query.fetch_all(&mut conn).await.expect("read the outboxes")
        }
    }
}
