//! What a run does, decided from the command line before anything starts: the scenarios and how
//! they are grouped on servers, durations, connections, users, the prefill, and which server
//! (one to start, or one already running) with which account. No side effects here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::cli::{Cli, Target};
use crate::ids;
use crate::scenarios::Scenario;
use crate::server::Database;

/// The settings every scenario of a run uses.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub database: Database,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    pub users: usize,
    pub prefill: u64,
    pub prefill_entities: u64,
    pub rate: Option<f64>,
    pub half_load: bool,
    pub pool: Option<usize>,
    /// One server (and one prefill) for all scenarios, instead of a fresh one each.
    pub share_server: bool,
    pub calibrate: bool,
    pub smoke: bool,
    pub webhook: bool,
    /// Longest wait for the webhook backlog to drain after a phase.
    pub settle_limit: Duration,
    pub account_sid: String,
    pub auth_token: String,
    pub server: ServerPlan,
}

/// The server a run measures.
#[derive(Debug, Clone)]
pub enum ServerPlan {
    /// Started by the bench on a fresh database (one per group of scenarios).
    Start {
        /// `--server-bin`, else the binary beside the bench's own.
        binary: Option<PathBuf>,
        /// Run `cargo build -p verify-push-server` first (under `cargo run`).
        build: bool,
        postgres_admin_url: String,
        keep: bool,
        extra_env: Vec<(String, String)>,
    },
    /// Already running at `url` (`--url`).
    Running { url: String, pid: Option<u32>, database_url: Option<String> },
}

impl Plan {
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Plan> {
        let scenarios = match cli.target {
            Target::CreateChallenge => vec![Scenario::CreateChallenge],
            Target::DeviceApprove => vec![Scenario::DeviceApprove],
            Target::DevicePoll => vec![Scenario::DevicePoll],
            Target::FullFlow => vec![Scenario::FullFlow],
            Target::Enroll => vec![Scenario::Enroll],
            Target::All | Target::Smoke => Scenario::ALL.to_vec(),
        };
        let (account_sid, auth_token) = account(cli)?;
        let mut plan = Plan {
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
            account_sid,
            auth_token,
            server: server(cli)?,
        };
        if cli.target == Target::Smoke {
            return Ok(plan);
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
        plan.duration = duration;
        plan.warmup = warmup;
        plan.connections = cli.connections;
        plan.users = cli.users;
        plan.prefill = cli.prefill;
        plan.prefill_entities = cli.prefill_entities;
        plan.rate = cli.rate;
        plan.half_load = cli.half_load;
        plan.pool = cli.pool;
        plan.share_server = cli.prefill > 0 || cli.url.is_some();
        plan.calibrate = cli.pool.is_none();
        plan.smoke = false;
        plan.settle_limit = Duration::from_secs(180);
        Ok(plan)
    }

    /// The scenarios run on each server: all on one, or each on a fresh one.
    pub fn groups(&self) -> Vec<Vec<Scenario>> {
        if self.share_server {
            vec![self.scenarios.clone()]
        } else {
            self.scenarios.iter().map(|s| vec![*s]).collect()
        }
    }
}

/// The account: given with --url, else generated for the server the bench starts.
fn account(cli: &Cli) -> anyhow::Result<(String, String)> {
    Ok(match (&cli.url, &cli.account_sid, &cli.auth_token) {
        (Some(_), Some(sid), Some(token)) => (sid.clone(), token.clone()),
        (Some(_), _, _) => bail!("--url needs --account-sid and --auth-token (or VERIFY_PUSH_ACCOUNT_SID/_AUTH_TOKEN)"),
        (None, _, _) => (format!("AC{}", ids::hex(16)), ids::hex(16)),
    })
}

fn server(cli: &Cli) -> anyhow::Result<ServerPlan> {
    if let Some(url) = &cli.url {
        return Ok(ServerPlan::Running {
            url: url.clone(),
            pid: cli.server_pid,
            database_url: cli.database_url.clone(),
        });
    }
    let extra_env = cli
        .server_env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!("--server-env takes NAME=VALUE, not {kv:?}"),
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ServerPlan::Start {
        binary: cli.server_bin.clone(),
        build: !cli.no_build,
        postgres_admin_url: cli.postgres_url.clone(),
        keep: cli.keep,
        extra_env,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("verify-push-bench").chain(args.iter().copied()))?;
        Plan::from_cli(&cli)
    }

    #[test]
    fn smoke_is_every_scenario_briefly_on_one_server() -> anyhow::Result<()> {
        let p = plan(&["smoke", "--duration", "600"])?;
        assert_eq!(p.scenarios, Scenario::ALL.to_vec());
        assert_eq!((p.duration, p.connections, p.users, p.prefill), (Duration::from_secs(2), 4, 8, 2_000));
        assert!(p.smoke && p.share_server && !p.calibrate);
        assert_eq!(p.groups().len(), 1);
        Ok(())
    }

    #[test]
    fn all_gets_a_fresh_server_per_scenario_unless_prefilled() -> anyhow::Result<()> {
        let p = plan(&["all", "--duration", "5", "--server-env", "VERIFY_PUSH_WORKERS=1"])?;
        assert_eq!(p.groups().len(), Scenario::ALL.len());
        assert!(p.calibrate && !p.smoke);
        let ServerPlan::Start { extra_env, build, .. } = &p.server else { panic!("a server to start") };
        assert_eq!(extra_env, &[("VERIFY_PUSH_WORKERS".to_owned(), "1".to_owned())]);
        assert!(*build);
        assert_eq!(plan(&["all", "--prefill", "10"])?.groups().len(), 1);
        Ok(())
    }

    #[test]
    fn bad_settings_are_refused() {
        for args in [
            &["enroll", "--duration", "0"][..],
            &["enroll", "--duration", "400", "--half-load"],
            &["enroll", "--users", "0"],
            &["enroll", "--server-env", "NOEQUALS"],
            &["enroll", "--url", "http://127.0.0.1:1"],
        ] {
            assert!(plan(args).is_err(), "{args:?} was accepted");
        }
    }
}
