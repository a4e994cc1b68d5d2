//! The server under test: the real `verify-push-server` binary in a process of its own (so its
//! memory and CPU can be read from `/proc/<pid>`), on a fresh SQLite file or a fresh PostgreSQL
//! database, torn down afterwards.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::Connection;

use crate::http;
use crate::ids;

/// Which database the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    pub fn name(self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgres => "postgres",
        }
    }
}

/// How to start servers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub binary: PathBuf,
    pub database: Database,
    /// The PostgreSQL maintenance URL used to create and drop the per-run database.
    pub postgres_admin_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub keep: bool,
    /// Extra `VERIFY_PUSH_*` variables for the server (`NAME=VALUE`).
    pub extra_env: Vec<(String, String)>,
}

/// A running server process.
pub struct ServerProcess {
    child: Option<tokio::process::Child>,
    pub pid: u32,
    pub addr: SocketAddr,
    pub base_url: String,
    pub database_url: String,
    pub dir: PathBuf,
    postgres: Option<(String, String)>,
    keep: bool,
    /// From spawning the process to the first `200` from `/healthz`.
    pub startup: Duration,
    /// `VmRSS` shortly after start, before any request but the health checks.
    pub idle_rss_kb: Option<u64>,
}

/// Finds (and, under `cargo run`, builds) the server binary beside this one.
pub fn locate_binary(explicit: Option<&Path>, build: bool) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--server-bin {} does not exist", path.display());
        }
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let dir = exe.parent().context("this executable has no folder")?.to_owned();
    let binary = dir.join("verify-push-server");
    // Under `cargo run` CARGO is set: build the server with the same profile, so the bench never
    // measures a stale binary (a no-op when it is up to date).
    if let (true, Some(cargo)) = (build, std::env::var_os("CARGO")) {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml");
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
        let mut command = std::process::Command::new(cargo);
        command.arg("build").arg("--quiet").arg("--manifest-path").arg(&manifest).args(["-p", "verify-push-server"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                command.arg("--release");
            }
            other => {
                command.args(["--profile", other]);
            }
        }
        eprintln!("building verify-push-server ({profile}) …");
        let status = command.status().context("running cargo build -p verify-push-server")?;
        if !status.success() {
            bail!("cargo build -p verify-push-server failed");
        }
    }
    if !binary.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p verify-push-server) or pass --server-bin",
            binary.display()
        );
    }
    Ok(binary)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `postgres://user@host:port/anything?x` → the same URL naming database `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

async fn postgres_admin(url: &str, statement: &str) -> anyhow::Result<()> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    sqlx::raw_sql(statement).execute(&mut conn).await.with_context(|| statement.to_owned())?;
    conn.close().await.ok();
    Ok(())
}

impl ServerProcess {
    /// Starts a server on a fresh database and waits for `/healthz` to answer 200.
    pub async fn start(config: &ServerConfig) -> anyhow::Result<ServerProcess> {
        let dir = std::env::temp_dir().join(format!("verify-push-bench-{}-{}", std::process::id(), ids::hex(4)));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (database_url, postgres) = match config.database {
            Database::Sqlite => (format!("sqlite://{}", dir.join("bench.db").display()), None),
            Database::Postgres => {
                let name = format!("bench_{}", ids::hex(6));
                postgres_admin(&config.postgres_admin_url, &format!("CREATE DATABASE {name}")).await?;
                (with_database(&config.postgres_admin_url, &name), Some((config.postgres_admin_url.clone(), name)))
            }
        };
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = tokio::process::Command::new(&config.binary);
        command
            .env("VERIFY_PUSH_BIND", addr.to_string())
            .env("VERIFY_PUSH_DATABASE_URL", &database_url)
            .env("VERIFY_PUSH_ACCOUNT_SID", &config.account_sid)
            .env("VERIFY_PUSH_AUTH_TOKEN", &config.auth_token)
            .env("VERIFY_PUSH_SWEEP_INTERVAL", "3600")
            // Setup creates Entities and Factors far faster than Twilio's rate limits allow.
            .env("VERIFY_PUSH_RATE_LIMITS", "off")
            .env("RUST_LOG", "warn")
            .env_remove("VERIFY_PUSH_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        for (name, value) in &config.extra_env {
            command.env(name, value);
        }
        let started = Instant::now();
        let mut child = command.spawn().with_context(|| format!("starting {}", config.binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = ServerProcess {
            child: None,
            pid,
            addr,
            base_url: format!("http://{addr}"),
            database_url,
            dir,
            postgres,
            keep: config.keep,
            startup: Duration::ZERO,
            idle_rss_kb: None,
        };
        loop {
            if let Some(200) = http::healthz(addr).await {
                server.startup = started.elapsed();
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                server.child = Some(child);
                server.stop().await;
                bail!("the server exited ({status}) before answering /healthz:\n{log}");
            }
            if started.elapsed() > Duration::from_secs(60) {
                server.child = Some(child);
                server.stop().await;
                bail!("the server did not answer /healthz within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.child = Some(child);
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.idle_rss_kb = proc_status(pid, "VmRSS");
        Ok(server)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its database.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        if self.keep {
            eprintln!("kept {} (database {})", self.dir.display(), self.database_url);
            return;
        }
        if let Some((admin, name)) = self.postgres.take() {
            if let Err(e) = postgres_admin(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await {
                eprintln!("warning: could not drop the PostgreSQL database {name}: {e:#}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resets the peak RSS (`VmHWM`) of `pid` to its current RSS. False when the kernel refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU time (user + system) of process `pid`, all threads, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here; in USER_HZ (100).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of every `postgres` process on this machine (the database's share of a PostgreSQL
/// run; its backends live as long as the server's pooled connections).
pub fn postgres_cpu_time() -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            if let Some(t) = cpu_time(pid) {
                total += t;
                found = true;
            }
        }
    }
    found.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_get_the_run_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b1"),
            "postgres://postgres@127.0.0.1:5432/b1"
        );
        assert_eq!(with_database("postgres://u@h/x?sslmode=disable", "b2"), "postgres://u@h/b2?sslmode=disable");
        assert_eq!(with_database("postgres://u@h", "b3"), "postgres://u@h/b3");
    }

    #[test]
    fn this_process_has_rss_and_cpu_time() {
        let pid = std::process::id();
        assert!(proc_status(pid, "VmRSS").is_some_and(|kb| kb > 0));
        assert!(cpu_time(pid).is_some());
    }
}
