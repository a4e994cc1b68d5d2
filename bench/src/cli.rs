//! The command line: flags only (what they mean for a run is `plan.rs`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::server::Database;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    CreateChallenge,
    DeviceApprove,
    DevicePoll,
    FullFlow,
    Enroll,
    /// Every scenario, one after the other.
    All,
    /// Every scenario for about 2 s at low concurrency on SQLite (with a small prefill), failing
    /// on any error and never on a timing: for CI.
    Smoke,
}

/// Load generator for verify-push-server (issue #6). Starts the server itself (a fresh SQLite
/// file or PostgreSQL database per run) unless --url is given.
#[derive(Parser, Debug)]
#[command(name = "verify-push-bench", version)]
pub struct Cli {
    #[arg(value_enum)]
    pub target: Target,
    /// Database of the server it starts.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub database: Database,
    /// Seconds measured per scenario (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds of unmeasured load before the measurement.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Concurrent keep-alive connections (each is a client: the backend or a device).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Challenges stored before the timed phase (written with SQL), spread over many entities.
    #[arg(long, default_value_t = 0)]
    pub prefill: u64,
    /// Entities (each with a verified push factor) the prefill creates.
    #[arg(long, default_value_t = 10_000)]
    pub prefill_entities: u64,
    /// Enrolled devices (users) the scenarios act as.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Open loop: units per second over all connections, latency counted from the scheduled
    /// time. Default: closed loop (each connection sends as soon as its last answer came).
    #[arg(long)]
    pub rate: Option<f64>,
    /// After each peak measurement, measure again at 50 % of the peak rate (open loop).
    #[arg(long)]
    pub half_load: bool,
    /// device-approve pool size (default: sized from a 2 s calibration run).
    #[arg(long)]
    pub pool: Option<usize>,
    /// Machine-readable results on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Use a server that is already running instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
    /// Account of the server (--url); a server the bench starts gets a generated one.
    #[arg(long, env = "VERIFY_PUSH_ACCOUNT_SID")]
    pub account_sid: Option<String>,
    #[arg(long, env = "VERIFY_PUSH_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// With --url: the server's process id, to report its memory and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// With --url and --prefill: the server's database URL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// The verify-push-server binary (default: beside this one, built first under cargo run).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Do not run `cargo build -p verify-push-server` first.
    #[arg(long)]
    pub no_build: bool,
    /// PostgreSQL URL used to create and drop a database per run.
    #[arg(long, env = "VERIFY_PUSH_BENCH_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// Threads of the load generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Extra environment for the server, NAME=VALUE (e.g. VERIFY_PUSH_WORKERS=1). Repeatable.
    #[arg(long = "server-env")]
    pub server_env: Vec<String>,
    /// Keep the server's folder and database afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Do not subscribe a webhook (by default the Service has one, `EventTypes=*`, pointing at a
    /// receiver in this process, so approvals and enrolments also enqueue and deliver events).
    #[arg(long)]
    pub no_webhook: bool,
}
