//! verify-push-bench: drives the real HTTP API of verify-push-server end to end, as a backend and
//! as many devices, and prints requests/s, latency percentiles, errors and the server's memory.
//!
//! ```sh
//! cargo run --release -p verify-push-bench -- create-challenge            # SQLite, a server it starts
//! cargo run --release -p verify-push-bench -- all --database postgres --prefill 1000000
//! cargo run --release -p verify-push-bench -- smoke                       # CI: every scenario, ~2 s each
//! cargo run --release -p verify-push-bench -- device-poll --url http://127.0.0.1:8080
//! ```
//!
//! Signing (factor JWTs, challenge answers) is done before the timed phase wherever the server's
//! answer does not decide what is signed; see `scenarios.rs`. See BENCHMARKS.md for figures.

mod http;
mod ids;
mod prefill;
mod runner;
mod scenarios;
mod server;
mod setup;
mod sink;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

use crate::prefill::PrefillReport;
use crate::runner::{PhaseResult, PhaseSpec};
use crate::scenarios::{Env, Scenario, Work};
use crate::server::{Database, ServerConfig, ServerProcess};
use crate::setup::Backend;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
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
struct Cli {
    #[arg(value_enum)]
    target: Target,
    /// Database of the server it starts.
    #[arg(long, value_enum, default_value = "sqlite")]
    database: Database,
    /// Seconds measured per scenario (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of unmeasured load before the measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Concurrent keep-alive connections (each is a client: the backend or a device).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Challenges stored before the timed phase (written with SQL), spread over many entities.
    #[arg(long, default_value_t = 0)]
    prefill: u64,
    /// Entities (each with a verified push factor) the prefill creates.
    #[arg(long, default_value_t = 10_000)]
    prefill_entities: u64,
    /// Enrolled devices (users) the scenarios act as.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Open loop: units per second over all connections, latency counted from the scheduled
    /// time. Default: closed loop (each connection sends as soon as its last answer came).
    #[arg(long)]
    rate: Option<f64>,
    /// After each peak measurement, measure again at 50 % of the peak rate (open loop).
    #[arg(long)]
    half_load: bool,
    /// device-approve pool size (default: sized from a 2 s calibration run).
    #[arg(long)]
    pool: Option<usize>,
    /// Machine-readable results on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Use a server that is already running instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Account of the server (--url); a server the bench starts gets a generated one.
    #[arg(long, env = "VERIFY_PUSH_ACCOUNT_SID")]
    account_sid: Option<String>,
    #[arg(long, env = "VERIFY_PUSH_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// With --url: the server's process id, to report its memory and CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// With --url and --prefill: the server's database URL.
    #[arg(long)]
    database_url: Option<String>,
    /// The verify-push-server binary (default: beside this one, built first under cargo run).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Do not run `cargo build -p verify-push-server` first.
    #[arg(long)]
    no_build: bool,
    /// PostgreSQL URL used to create and drop a database per run.
    #[arg(long, env = "VERIFY_PUSH_BENCH_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Threads of the load generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Extra environment for the server, NAME=VALUE (e.g. VERIFY_PUSH_WORKERS=1). Repeatable.
    #[arg(long = "server-env")]
    server_env: Vec<String>,
    /// Keep the server's folder and database afterwards.
    #[arg(long)]
    keep: bool,
    /// Do not subscribe a webhook (by default the Service has one, `EventTypes=*`, pointing at a
    /// receiver in this process, so approvals and enrolments also enqueue and deliver events).
    #[arg(long)]
    no_webhook: bool,
}

/// The settings every scenario of a run uses.
#[derive(Debug, Clone)]
struct Plan {
    scenarios: Vec<Scenario>,
    database: Database,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    users: usize,
    prefill: u64,
    prefill_entities: u64,
    rate: Option<f64>,
    half_load: bool,
    pool: Option<usize>,
    /// One server (and one prefill) for all scenarios, instead of a fresh one each.
    share_server: bool,
    calibrate: bool,
    smoke: bool,
    webhook: bool,
    /// Longest wait for the webhook backlog to drain after a phase.
    settle_limit: Duration,
}

impl Plan {
    fn from_cli(cli: &Cli) -> anyhow::Result<Plan> {
        let scenarios = match cli.target {
            Target::CreateChallenge => vec![Scenario::CreateChallenge],
            Target::DeviceApprove => vec![Scenario::DeviceApprove],
            Target::DevicePoll => vec![Scenario::DevicePoll],
            Target::FullFlow => vec![Scenario::FullFlow],
            Target::Enroll => vec![Scenario::Enroll],
            Target::All | Target::Smoke => Scenario::ALL.to_vec(),
        };
        if cli.target == Target::Smoke {
            return Ok(Plan {
                scenarios,
                database: cli.database,
                duration: Duration::from_secs(2),
                warmup: Duration::from_millis(300),
                connections: 4,
                users: 8,
                prefill: 2_000,
                prefill_entities: 50,
                rate: None,
                half_load: false,
                pool: Some(4_000),
                share_server: true,
                calibrate: false,
                smoke: true,
                webhook: !cli.no_webhook,
                settle_limit: Duration::from_secs(10),
            });
        }
        if !(cli.duration > 0.0 && cli.warmup >= 0.0) {
            bail!("--duration must be positive and --warmup not negative");
        }
        let duration = Duration::from_secs_f64(cli.duration);
        let warmup = Duration::from_secs_f64(cli.warmup);
        let phases = if cli.half_load { 2 } else { 1 };
        if (duration + warmup) * phases > Duration::from_secs(500) {
            bail!("device factor JWTs are valid for 600 s: keep (--warmup + --duration) × phases within 500 s");
        }
        if cli.users == 0 || cli.connections == 0 {
            bail!("--users and --connections must be at least 1");
        }
        Ok(Plan {
            scenarios,
            database: cli.database,
            duration,
            warmup,
            connections: cli.connections,
            users: cli.users,
            prefill: cli.prefill,
            prefill_entities: cli.prefill_entities,
            rate: cli.rate,
            half_load: cli.half_load,
            pool: cli.pool,
            share_server: cli.prefill > 0 || cli.url.is_some(),
            calibrate: cli.pool.is_none(),
            smoke: false,
            webhook: !cli.no_webhook,
            settle_limit: Duration::from_secs(180),
        })
    }
}

/// One line of the results table.
struct Row {
    scenario: String,
    database: &'static str,
    prefill: u64,
    connections: usize,
    target_rate: Option<f64>,
    result: PhaseResult,
    warmup: Duration,
    server: Option<ServerFacts>,
    notes: Vec<String>,
    /// Webhook deliveries the bench's receiver got from the start of the warm-up to the end.
    webhooks: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct ServerFacts {
    startup: Duration,
    idle_rss_kb: Option<u64>,
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "-".to_owned(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

const HEADER: &str = "scenario               database  prefill    conns   secs  requests     req/s   p50 ms   p95 ms   p99 ms   max ms  errors  peak RSS MB";

impl Row {
    fn line(&self) -> String {
        let r = &self.result;
        let l = r.latency;
        format!(
            "{:<22} {:<9} {:>8} {:>6} {:>6.1} {:>9} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>12}",
            self.scenario,
            self.database,
            self.prefill,
            self.connections,
            r.elapsed.as_secs_f64(),
            r.requests,
            r.rate(),
            l.p50,
            l.p95,
            l.p99,
            l.max,
            r.errors,
            mb(r.peak_rss_kb),
        )
    }

    fn details(&self) -> Vec<String> {
        let r = &self.result;
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        let mut out = Vec::new();
        let per_req = |d: Duration| d.as_secs_f64() * 1e6 / (r.requests.max(1) as f64);
        let mut cpu = Vec::new();
        if let Some(s) = r.server_cpu {
            cpu.push(format!("server CPU {:.0} µs/request ({:.2} cores)", per_req(s), s.as_secs_f64() / secs));
        }
        if let Some(d) = r.db_cpu {
            cpu.push(format!("PostgreSQL CPU {:.0} µs/request ({:.2} cores)", per_req(d), d.as_secs_f64() / secs));
        }
        if let Some(c) = r.client_cpu {
            cpu.push(format!("load generator CPU {:.0} µs/request ({:.2} cores)", per_req(c), c.as_secs_f64() / secs));
        }
        if !r.client_work.is_zero() {
            cpu.push(format!("signing in the loop {:.0} µs/request (wall)", per_req(r.client_work)));
        }
        if !cpu.is_empty() {
            out.push(cpu.join(", "));
        }
        if let Some(u) = r.unit_latency {
            out.push(format!(
                "{} units ({:.1}/s); per unit p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r.units,
                r.unit_rate(),
                u.p50,
                u.p95,
                u.p99,
                u.max
            ));
        }
        if let Some(rate) = self.target_rate {
            out.push(format!("open loop at {rate:.0}/s (latency from the scheduled send time)"));
        }
        if let Some(after) = r.exhausted_after {
            out.push(format!(
                "the pool of pending challenges ran out after {:.1} s (not an error)",
                after.as_secs_f64()
            ));
        }
        if r.peak_rss_kb.is_some() && !r.peak_rss_reset {
            out.push("peak RSS is the process's lifetime peak (could not reset it)".to_owned());
        }
        if let Some(n) = self.webhooks {
            let secs = (r.elapsed.as_secs_f64() + self.warmup_secs()).max(1e-9);
            out.push(format!("webhook deliveries received during the phase: {n} ({:.0}/s)", n as f64 / secs));
        }
        out.extend(self.notes.iter().cloned());
        for (e, n) in &r.error_samples {
            out.push(format!("ERROR ×{n}: {e}"));
        }
        out
    }

    fn warmup_secs(&self) -> f64 {
        self.warmup.as_secs_f64()
    }

    fn json(&self) -> Value {
        let r = &self.result;
        let l = r.latency;
        json!({
            "scenario": self.scenario,
            "database": self.database,
            "prefill": self.prefill,
            "connections": self.connections,
            "target_rate": self.target_rate,
            "seconds": r.elapsed.as_secs_f64(),
            "requests": r.requests,
            "requests_per_second": r.rate(),
            "latency_ms": {"p50": l.p50, "p95": l.p95, "p99": l.p99, "max": l.max},
            "units": r.units,
            "units_per_second": r.unit_rate(),
            "unit_latency_ms": r.unit_latency.map(|u| json!({"p50": u.p50, "p95": u.p95, "p99": u.p99, "max": u.max})),
            "errors": r.errors,
            "error_samples": r.error_samples.iter().map(|(e, n)| json!({"error": e, "count": n})).collect::<Vec<_>>(),
            "peak_rss_mb": r.peak_rss_kb.map(|kb| kb as f64 / 1024.0),
            "server_cpu_seconds": r.server_cpu.map(|d| d.as_secs_f64()),
            "client_cpu_seconds": r.client_cpu.map(|d| d.as_secs_f64()),
            "postgres_cpu_seconds": r.db_cpu.map(|d| d.as_secs_f64()),
            "client_signing_seconds": r.client_work.as_secs_f64(),
            "pool_exhausted_after_seconds": r.exhausted_after.map(|d| d.as_secs_f64()),
            "server_startup_ms": self.server.map(|s| s.startup.as_secs_f64() * 1000.0),
            "server_idle_rss_mb": self.server.and_then(|s| s.idle_rss_kb).map(|kb| kb as f64 / 1024.0),
            "webhook_deliveries_received": self.webhooks,
            "notes": self.notes,
        })
    }
}

/// Where results are printed: stdout, or stderr when stdout carries JSON.
struct Out {
    json: bool,
    header_printed: bool,
}

impl Out {
    fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn row(&mut self, row: &Row) {
        if !self.header_printed {
            self.say(HEADER);
            self.header_printed = true;
        }
        self.say(&row.line());
        for d in row.details() {
            self.say(&format!("    {d}"));
        }
    }
}

/// A server to test: one this process started, or one given by --url.
struct Target2 {
    process: Option<ServerProcess>,
    base_url: String,
    addr: SocketAddr,
    pid: Option<u32>,
    database_url: Option<String>,
}

fn resolve(url: &str) -> anyhow::Result<(String, SocketAddr)> {
    let base = url.trim_end_matches('/').trim_end_matches("/v2").to_owned();
    let Some(rest) = base.strip_prefix("http://") else { bail!("--url must be http://HOST:PORT (plain HTTP)") };
    let hostport = rest.split('/').next().unwrap_or(rest);
    let with_port = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:80") };
    let addr = with_port.to_socket_addrs()?.next().with_context(|| format!("cannot resolve {hostport}"))?;
    Ok((base, addr))
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let plan = Plan::from_cli(&cli)?;
    let mut out = Out { json: cli.json, header_printed: false };
    let tag = ids::hex(3);
    let (account_sid, auth_token) = match (&cli.url, &cli.account_sid, &cli.auth_token) {
        (Some(_), Some(sid), Some(token)) => (sid.clone(), token.clone()),
        (Some(_), _, _) => bail!("--url needs --account-sid and --auth-token (or VERIFY_PUSH_ACCOUNT_SID/_AUTH_TOKEN)"),
        (None, _, _) => (format!("AC{}", ids::hex(16)), ids::hex(16)),
    };
    let config = match &cli.url {
        Some(_) => None,
        None => Some(ServerConfig {
            binary: server::locate_binary(cli.server_bin.as_deref(), !cli.no_build)?,
            database: plan.database,
            postgres_admin_url: cli.postgres_url.clone(),
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
            keep: cli.keep,
            extra_env: cli
                .server_env
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
                    None => bail!("--server-env takes NAME=VALUE, not {kv:?}"),
                })
                .collect::<anyhow::Result<_>>()?,
        }),
    };
    let groups: Vec<Vec<Scenario>> = if plan.share_server {
        vec![plan.scenarios.clone()]
    } else {
        plan.scenarios.iter().map(|s| vec![*s]).collect()
    };

    let mut rows: Vec<Row> = Vec::new();
    let started = Instant::now();
    for group in groups {
        let mut target = match (&config, &cli.url) {
            (Some(config), _) => {
                let process = ServerProcess::start(config).await?;
                let facts = ServerFacts { startup: process.startup, idle_rss_kb: process.idle_rss_kb };
                out.say(&format!(
                    "server: {} on {}, start to /healthz 200 in {:.1} ms, idle RSS {} MB (pid {})",
                    config.binary.display(),
                    plan.database.name(),
                    facts.startup.as_secs_f64() * 1000.0,
                    mb(facts.idle_rss_kb),
                    process.pid
                ));
                Target2 {
                    base_url: process.base_url.clone(),
                    addr: process.addr,
                    pid: Some(process.pid),
                    database_url: Some(process.database_url.clone()),
                    process: Some(process),
                }
            }
            (None, Some(url)) => {
                let (base_url, addr) = resolve(url)?;
                Target2 { process: None, base_url, addr, pid: cli.server_pid, database_url: cli.database_url.clone() }
            }
            (None, None) => bail!("no server"),
        };
        let facts = target.process.as_ref().map(|p| ServerFacts { startup: p.startup, idle_rss_kb: p.idle_rss_kb });
        let outcome = run_group(&plan, &group, &target, &account_sid, &auth_token, &tag, facts, &mut out).await;
        if let Some(process) = target.process.as_mut() {
            if outcome.is_err() {
                eprintln!("server log (last lines):\n{}", process.log_tail());
            }
            process.stop().await;
        }
        rows.extend(outcome?);
    }

    let errors: u64 = rows.iter().map(|r| r.result.errors).sum();
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&rows.iter().map(Row::json).collect::<Vec<_>>())?);
    }
    let took = started.elapsed().as_secs_f64();
    if plan.smoke {
        if errors == 0 {
            eprintln!("smoke: every scenario ran without an error ({} scenarios, {took:.1} s)", rows.len());
        } else {
            eprintln!("smoke: FAILED with {errors} errors ({took:.1} s)");
        }
    } else if errors > 0 {
        eprintln!("FAILED: {errors} errors (see ERROR lines above)");
    }
    Ok(errors == 0)
}

#[allow(clippy::too_many_arguments)]
async fn run_group(
    plan: &Plan,
    group: &[Scenario],
    target: &Target2,
    account_sid: &str,
    auth_token: &str,
    tag: &str,
    facts: Option<ServerFacts>,
    out: &mut Out,
) -> anyhow::Result<Vec<Row>> {
    let backend = Backend::new(&target.base_url, target.addr, account_sid, auth_token)?;
    let t = Instant::now();
    let service_sid = backend.create_service(&format!("bench {tag}")).await?;
    let sink = match plan.webhook {
        true => {
            let sink = sink::Sink::start().await?;
            let path = format!("/v2/Services/{service_sid}/Webhooks");
            let form =
                [("FriendlyName", "bench"), ("EventTypes", "*"), ("WebhookUrl", sink.url.as_str()), ("Version", "v2")];
            backend.post(&path, &form).await.context("subscribing the bench's webhook receiver")?;
            Some(sink)
        }
        false => None,
    };
    let users = setup::enroll_users(&backend, &service_sid, plan.users, tag).await?;
    eprintln!("setup: service {service_sid}, {} devices enrolled in {:.1} s", users.len(), t.elapsed().as_secs_f64());
    if let Some(sink) = &sink {
        // The enrolments' factor.created/verified events: delivered before anything is measured.
        sink.settle(Duration::from_secs(1), plan.settle_limit.min(Duration::from_secs(60))).await;
    }
    let env = Env { backend, service_sid, users, tag: tag.to_owned() };

    let mut prefill_report: Option<PrefillReport> = None;
    if plan.prefill > 0 {
        let url = target.database_url.as_deref().context("--prefill with --url needs --database-url")?;
        eprintln!("prefill: writing {} challenges over {} entities …", plan.prefill, plan.prefill_entities);
        let report = prefill::run(url, &env.service_sid, plan.prefill, plan.prefill_entities, !plan.smoke).await?;
        eprintln!(
            "prefill: {} challenges, {} entities in {:.1} s",
            report.challenges,
            report.entities,
            report.took.as_secs_f64()
        );
        prefill_report = Some(report);
    }

    let mut rows = Vec::new();
    for &scenario in group {
        let mut notes = Vec::new();
        if let Some(p) = &prefill_report {
            notes.push(format!(
                "prefill {} challenges over {} entities took {:.1} s",
                p.challenges,
                p.entities,
                p.took.as_secs_f64()
            ));
        }
        for row in run_scenario(plan, scenario, &env, target, facts, notes, sink.as_ref()).await? {
            out.row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

async fn run_scenario(
    plan: &Plan,
    scenario: Scenario,
    env: &Env,
    target: &Target2,
    facts: Option<ServerFacts>,
    notes: Vec<String>,
    sink: Option<&sink::Sink>,
) -> anyhow::Result<Vec<Row>> {
    let spec =
        PhaseSpec { warmup: plan.warmup, duration: plan.duration, connections: plan.connections, rate: plan.rate };
    let setup_concurrency = plan.connections.clamp(4, 32);
    // PostgreSQL's CPU is measured when it runs on this machine (the server runs here too).
    let pg = plan.database == Database::Postgres && target.process.is_some();
    let t = Instant::now();
    let mut extra_notes = Vec::new();
    // What the timed phase needs, prepared (and signed) before it.
    let work: Work = match scenario {
        Scenario::CreateChallenge => scenarios::create_challenge(env),
        Scenario::DevicePoll => {
            scenarios::seed_pending(env, 2, setup_concurrency).await?;
            scenarios::device_poll(env)
        }
        Scenario::FullFlow => scenarios::full_flow(env),
        Scenario::Enroll => scenarios::enroll_work(env, 256)?,
        Scenario::DeviceApprove => {
            let size = match (plan.pool, plan.calibrate) {
                (Some(n), _) => n,
                (None, _) => {
                    let calibration_size = (plan.connections * 40).max(3_000);
                    eprintln!("device-approve: calibrating with {calibration_size} pending challenges for 2 s …");
                    let items = scenarios::approve_pool(env, calibration_size, setup_concurrency).await?;
                    let work = Arc::new(scenarios::device_approve(env, &items));
                    let calib = PhaseSpec { warmup: Duration::ZERO, duration: Duration::from_secs(2), ..spec };
                    let result = runner::run_phase(work, target.addr, calib, target.pid, pg).await;
                    settle(sink, scenario, plan.settle_limit).await;
                    if result.errors > 0 {
                        let row = Row {
                            scenario: "device-approve (calibration)".into(),
                            database: plan.database.name(),
                            prefill: plan.prefill,
                            connections: plan.connections,
                            target_rate: None,
                            result,
                            warmup: Duration::ZERO,
                            server: facts,
                            notes: Vec::new(),
                            webhooks: None,
                        };
                        return Ok(vec![row]);
                    }
                    let rate = match plan.rate {
                        Some(r) => r.min(result.rate()),
                        None => result.rate(),
                    };
                    let per_phase = (plan.warmup + plan.duration).as_secs_f64() * 1.35;
                    let phases = if plan.half_load { 1.5 } else { 1.0 };
                    let size = (rate * per_phase * phases) as usize + plan.connections * 20 + 500;
                    extra_notes.push(format!("pool sized from a 2 s calibration at {rate:.0}/s: {size} challenges"));
                    size
                }
            };
            eprintln!("device-approve: creating and signing {size} pending challenges …");
            let items = scenarios::approve_pool(env, size, setup_concurrency).await?;
            scenarios::device_approve(env, &items)
        }
    };
    eprintln!("{}: prepared in {:.1} s; measuring …", scenario.name(), t.elapsed().as_secs_f64());
    let work = Arc::new(work);
    let mut rows = Vec::new();
    let received = sink.map(sink::Sink::received);
    let result = runner::run_phase(work.clone(), target.addr, spec, target.pid, pg).await;
    let webhooks = sink.map(sink::Sink::received).zip(received).map(|(a, b)| a - b);
    let peak_units = result.unit_rate();
    let mut notes_all = notes.clone();
    notes_all.extend(extra_notes.iter().cloned());
    if let Some(note) = settle(sink, scenario, plan.settle_limit).await {
        notes_all.push(note);
    }
    rows.push(Row {
        scenario: scenario.name().to_owned(),
        database: plan.database.name(),
        prefill: plan.prefill,
        connections: plan.connections,
        target_rate: plan.rate,
        result,
        warmup: plan.warmup,
        server: facts,
        notes: notes_all,
        webhooks,
    });
    if plan.half_load && rows[0].result.errors == 0 {
        let half = peak_units * 0.5;
        let received = sink.map(sink::Sink::received);
        let result =
            runner::run_phase(work.clone(), target.addr, PhaseSpec { rate: Some(half), ..spec }, target.pid, pg).await;
        let webhooks = sink.map(sink::Sink::received).zip(received).map(|(a, b)| a - b);
        let mut notes = notes;
        notes.push("50 % of the peak rate measured just before".into());
        if let Some(note) = settle(sink, scenario, plan.settle_limit).await {
            notes.push(note);
        }
        rows.push(Row {
            scenario: format!("{} @50%", scenario.name()),
            database: plan.database.name(),
            prefill: plan.prefill,
            connections: plan.connections,
            target_rate: Some(half),
            result,
            warmup: plan.warmup,
            server: facts,
            notes,
            webhooks,
        });
    }
    if let Some(left) = work.remaining() {
        if left > 0 {
            eprintln!("device-approve: {left} pending challenges were left unanswered");
        }
    }
    Ok(rows)
}

/// After a phase of a scenario that raises webhook events, waits for the server's delivery
/// backlog to drain (no delivery for 2 s; at most 180 s, 10 s in smoke), so that it does not weigh on the next
/// phase, and says how long the webhooks lagged.
async fn settle(sink: Option<&sink::Sink>, scenario: Scenario, limit: Duration) -> Option<String> {
    let sink = sink?;
    if !matches!(scenario, Scenario::DeviceApprove | Scenario::FullFlow | Scenario::Enroll) {
        return None;
    }
    let (took, more, drained) = sink.settle(Duration::from_secs(2), limit).await;
    Some(if drained {
        format!("webhook backlog after the phase: {more} deliveries, drained in {:.1} s", took.as_secs_f64())
    } else {
        format!(
            "webhook backlog after the phase: still delivering after {:.0} s ({more} delivered meanwhile)",
            limit.as_secs_f64()
        )
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("verify-push-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("verify-push-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
