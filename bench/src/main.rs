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
//! The flags are `cli.rs`; what they make of a run, `plan.rs`; running it against a server,
//! `run.rs` (the timed phase: `phase.rs`, the scenarios' work: `scenarios.rs`); the results,
//! `report.rs`. Signing (factor JWTs, challenge answers) is done before the timed phase wherever
//! the server's answer does not decide what is signed; see `scenarios.rs`. See BENCHMARKS.md for
//! figures.

mod cli;
mod http;
mod ids;
mod phase;
mod plan;
mod prefill;
mod record;
mod report;
mod run;
mod scenarios;
mod server;
mod setup;
mod sink;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::plan::Plan;
use crate::report::Out;

async fn bench(cli: Cli) -> anyhow::Result<bool> {
    let plan = Plan::from_cli(&cli)?;
    let mut out = Out::new(cli.json);
    let (rows, took) = run::run(&plan, &mut out).await?;
    out.finish(&rows, plan.smoke, took)
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
    match runtime.block_on(bench(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("verify-push-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
