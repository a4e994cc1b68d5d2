//! Results → text and JSON: one table line per phase with its details, the JSON array of
//! `--json`, and the run's verdict. (`bench/tables.py` turns saved runs into BENCHMARKS.md's
//! tables.)

use std::time::Duration;

use serde_json::{json, Value};

use crate::phase::PhaseResult;

/// One line of the results table.
pub struct Row {
    pub scenario: String,
    pub database: &'static str,
    pub prefill: u64,
    pub connections: usize,
    pub target_rate: Option<f64>,
    pub result: PhaseResult,
    pub warmup: Duration,
    pub server: Option<ServerFacts>,
    pub notes: Vec<String>,
    /// Webhook deliveries the bench's receiver got from the start of the warm-up to the end.
    pub webhooks: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct ServerFacts {
    pub startup: Duration,
    pub idle_rss_kb: Option<u64>,
}

pub fn mb(kb: Option<u64>) -> String {
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

    pub fn json(&self) -> Value {
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
pub struct Out {
    json: bool,
    header_printed: bool,
}

impl Out {
    pub fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    pub fn row(&mut self, row: &Row) {
        if !self.header_printed {
            self.say(HEADER);
            self.header_printed = true;
        }
        self.say(&row.line());
        for d in row.details() {
            self.say(&format!("    {d}"));
        }
    }

    pub fn new(json: bool) -> Out {
        Out { json, header_printed: false }
    }

    /// The JSON of every row (with `--json`) and the verdict: true when no request failed.
    pub fn finish(&self, rows: &[Row], smoke: bool, took: Duration) -> anyhow::Result<bool> {
        let errors: u64 = rows.iter().map(|r| r.result.errors).sum();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&rows.iter().map(Row::json).collect::<Vec<_>>())?);
        }
        let took = took.as_secs_f64();
        if smoke {
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
}
