//! The timed phase: `connections` tasks, each with its own keep-alive connection, run units of
//! work in a closed loop (or, with a rate, on a fixed schedule whose latency counts from the
//! scheduled time, so a stalled server cannot hide its queueing), recording every request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::Conn;
use crate::record::{Outcome, Recorder, UnitClock};
use crate::scenarios::Work;
use crate::server;

/// How one phase runs.
#[derive(Debug, Clone, Copy)]
pub struct PhaseSpec {
    pub warmup: Duration,
    pub duration: Duration,
    pub connections: usize,
    /// Units (requests, for single-request scenarios) per second over all connections; `None`
    /// is a closed loop: each connection sends its next unit as soon as the last one ended.
    pub rate: Option<f64>,
}

/// The figures of one phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub requests: u64,
    pub units: u64,
    pub errors: u64,
    pub error_samples: Vec<(String, u64)>,
    /// From the end of the warm-up to the last measured response.
    pub elapsed: Duration,
    pub latency: Percentiles,
    pub unit_latency: Option<Percentiles>,
    /// Set when a finite pool of work (device-approve) ran out, after this long in the window.
    pub exhausted_after: Option<Duration>,
    pub server_cpu: Option<Duration>,
    /// CPU of the PostgreSQL processes over the window (PostgreSQL runs on this machine).
    pub db_cpu: Option<Duration>,
    pub client_cpu: Option<Duration>,
    pub client_work: Duration,
    pub peak_rss_kb: Option<u64>,
    pub peak_rss_reset: bool,
}

impl PhaseResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn unit_rate(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Latency percentiles in milliseconds (nearest rank over every sample).
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut samples: Vec<u32>) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            f64::from(samples[rank - 1]) / 1000.0
        };
        Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99), max: at(1.0) }
    }
}

/// Runs one phase of `work` against `addr`.
pub async fn run_phase(
    work: Arc<Work>,
    addr: SocketAddr,
    spec: PhaseSpec,
    server_pid: Option<u32>,
    postgres: bool,
) -> PhaseResult {
    let connections = spec.connections.max(1);
    // Connect everyone first: connection set-up is not part of the measurement.
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut conn = Conn::new(addr);
        conn.connect().await.ok();
        conns.push(conn);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + spec.warmup;
    let stop_at = measure_from + spec.duration;
    let interval = spec.rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1e-6)));
    let exhausted = Arc::new(AtomicBool::new(false));
    let exhausted_at = Arc::new(std::sync::Mutex::new(None::<Instant>));

    let mut tasks = Vec::with_capacity(connections);
    for (worker, mut conn) in conns.into_iter().enumerate() {
        let (work, exhausted, exhausted_at) = (work.clone(), exhausted.clone(), exhausted_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new();
            tokio::time::sleep_until(start.into()).await;
            let offset = interval.map_or(Duration::ZERO, |i| i.mul_f64(worker as f64 / connections as f64));
            let mut n: u64 = 0;
            loop {
                if exhausted.load(Ordering::Relaxed) {
                    break;
                }
                let issued = match interval {
                    Some(i) => {
                        let due = start + offset + i.mul_f64(n as f64);
                        if due >= stop_at {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => {
                        let now = Instant::now();
                        if now >= stop_at {
                            break;
                        }
                        now
                    }
                };
                let clock = UnitClock { issued, measured: issued >= measure_from };
                let outcome = work.unit(&mut conn, &mut rec, worker, n, clock).await;
                if clock.measured && outcome == Outcome::Done {
                    rec.units += 1;
                    if work.multi_request() {
                        let us = u32::try_from(issued.elapsed().as_micros()).unwrap_or(u32::MAX);
                        rec.unit_latencies_us.push(us);
                    }
                }
                match outcome {
                    Outcome::Done | Outcome::Failed => {}
                    Outcome::Exhausted => {
                        if !exhausted.swap(true, Ordering::Relaxed) {
                            if let Ok(mut at) = exhausted_at.lock() {
                                *at = Some(Instant::now());
                            }
                        }
                        break;
                    }
                }
                n += 1;
            }
            rec
        }));
    }

    let own_pid = std::process::id();
    tokio::time::sleep_until(start.into()).await;
    let peak_rss_reset = server_pid.is_some_and(server::reset_peak_rss);
    tokio::time::sleep_until(measure_from.into()).await;
    let server_cpu_before = server_pid.and_then(server::cpu_time);
    let db_cpu_before = if postgres { server::postgres_cpu_time() } else { None };
    let client_cpu_before = server::cpu_time(own_pid);

    let mut recorders = Vec::with_capacity(connections);
    for task in tasks {
        match task.await {
            Ok(rec) => recorders.push(rec),
            Err(e) => {
                let mut rec = Recorder::new();
                rec.error("load generator task", &e.to_string());
                recorders.push(rec);
            }
        }
    }
    let server_cpu_after = server_pid.and_then(server::cpu_time);
    let db_cpu_after = if postgres { server::postgres_cpu_time() } else { None };
    let client_cpu_after = server::cpu_time(own_pid);
    let peak_rss_kb = server_pid.and_then(|pid| server::proc_status(pid, "VmHWM"));

    let last_end = recorders.iter().filter_map(|r| r.last_end).max();
    let exhausted_at = exhausted_at.lock().ok().and_then(|a| *a);
    let end = last_end.or(exhausted_at).unwrap_or(stop_at);
    let elapsed = end.saturating_duration_since(measure_from).max(Duration::from_millis(1));
    let mut samples = Vec::new();
    let mut unit_samples = Vec::new();
    let mut error_samples: BTreeMap<String, u64> = BTreeMap::new();
    let (mut requests, mut units, mut errors, mut client_work) = (0, 0, 0, Duration::ZERO);
    for rec in recorders {
        requests += rec.requests;
        units += rec.units;
        errors += rec.errors;
        client_work += rec.client_work;
        samples.extend(rec.latencies_us);
        unit_samples.extend(rec.unit_latencies_us);
        for (k, v) in rec.error_samples {
            *error_samples.entry(k).or_insert(0) += v;
        }
    }
    let mut error_samples: Vec<(String, u64)> = error_samples.into_iter().collect();
    error_samples.sort_by_key(|e| std::cmp::Reverse(e.1));
    error_samples.truncate(5);
    PhaseResult {
        requests,
        units,
        errors,
        error_samples,
        elapsed,
        latency: Percentiles::of(samples),
        unit_latency: if unit_samples.is_empty() { None } else { Some(Percentiles::of(unit_samples)) },
        exhausted_after: exhausted_at.map(|a| a.saturating_duration_since(measure_from)),
        server_cpu: match (server_cpu_before, server_cpu_after) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        db_cpu: match (db_cpu_before, db_cpu_after) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        client_cpu: match (client_cpu_before, client_cpu_after) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        client_work,
        peak_rss_kb,
        peak_rss_reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        let one = Percentiles::of(vec![1500]);
        assert_eq!((one.p50, one.max), (1.5, 1.5));
    }
}
