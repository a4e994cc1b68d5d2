//! What the crash tests share: the real `verify-push-server` binary as a child process that can
//! be killed with SIGKILL and started again on the same database, and the recording fakes.

#[path = "../../../tests/src/fakes.rs"]
#[expect(dead_code, reason = "shared with the e2e crate, which uses all of it")]
pub mod fakes;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ACCOUNT: &str = "AC00000000000000000000000000000007";
pub const TOKEN: &str = "crash-test-auth-token";

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
        let child = Command::new(env!("CARGO_BIN_EXE_verify-push-server"))
            .env("VERIFY_PUSH_BIND", format!("127.0.0.1:{port}"))
            .env("VERIFY_PUSH_DATABASE_URL", db)
            .env("VERIFY_PUSH_ACCOUNT_SID", ACCOUNT)
            .env("VERIFY_PUSH_AUTH_TOKEN", TOKEN)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
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

/// A fresh SQLite database URL in a temporary folder of its own.
pub fn temp_db(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("vps-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    (dir, db)
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
