//! Executing a plan against a server: start it (or resolve --url), set up the Service, its
//! webhook receiver, the enrolled devices and the prefill, prepare each scenario's work, run its
//! timed phases (`phase.rs`) and hand each result to the report as a row.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::phase::{self, PhaseSpec};
use crate::plan::{Plan, ServerPlan};
use crate::prefill::{self, PrefillReport};
use crate::report::{mb, Out, Row, ServerFacts};
use crate::scenarios::{self, Env, Scenario, Work};
use crate::server::{self, Database, ServerConfig, ServerProcess};
use crate::setup::{self, Backend};
use crate::{ids, sink};

/// A server to test: one this process started, or one given by --url.
struct UnderTest {
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

/// Executes `plan`: per group of scenarios a server (started, or the one given), its Service,
/// devices and prefill, then each scenario's phases; rows are printed to `out` as they come.
/// Returns the rows and how long they took (from the first server's start).
pub async fn run(plan: &Plan, out: &mut Out) -> anyhow::Result<(Vec<Row>, Duration)> {
    let tag = ids::hex(3);
    let config = match &plan.server {
        ServerPlan::Running { .. } => None,
        ServerPlan::Start { binary, build, postgres_admin_url, keep, extra_env } => Some(ServerConfig {
            binary: server::locate_binary(binary.as_deref(), *build)?,
            database: plan.database,
            postgres_admin_url: postgres_admin_url.clone(),
            account_sid: plan.account_sid.clone(),
            auth_token: plan.auth_token.clone(),
            keep: *keep,
            extra_env: extra_env.clone(),
        }),
    };
    let mut rows: Vec<Row> = Vec::new();
    let started = Instant::now();
    for group in plan.groups() {
        let mut target = match (&config, &plan.server) {
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
                UnderTest {
                    base_url: process.base_url.clone(),
                    addr: process.addr,
                    pid: Some(process.pid),
                    database_url: Some(process.database_url.clone()),
                    process: Some(process),
                }
            }
            (None, ServerPlan::Running { url, pid, database_url }) => {
                let (base_url, addr) = resolve(url)?;
                UnderTest { process: None, base_url, addr, pid: *pid, database_url: database_url.clone() }
            }
            (None, ServerPlan::Start { .. }) => bail!("no server"),
        };
        let facts = target.process.as_ref().map(|p| ServerFacts { startup: p.startup, idle_rss_kb: p.idle_rss_kb });
        let outcome = run_group(plan, &group, &target, &tag, facts, out).await;
        if let Some(process) = target.process.as_mut() {
            if outcome.is_err() {
                eprintln!("server log (last lines):\n{}", process.log_tail());
            }
            process.stop().await;
        }
        rows.extend(outcome?);
    }
    Ok((rows, started.elapsed()))
}

async fn run_group(
    plan: &Plan,
    group: &[Scenario],
    target: &UnderTest,
    tag: &str,
    facts: Option<ServerFacts>,
    out: &mut Out,
) -> anyhow::Result<Vec<Row>> {
    let backend = Backend::new(&target.base_url, target.addr, &plan.account_sid, &plan.auth_token)?;
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
    target: &UnderTest,
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
                    let result = phase::run_phase(work, target.addr, calib, target.pid, pg).await;
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
    let result = phase::run_phase(work.clone(), target.addr, spec, target.pid, pg).await;
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
            phase::run_phase(work.clone(), target.addr, PhaseSpec { rate: Some(half), ..spec }, target.pid, pg).await;
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
