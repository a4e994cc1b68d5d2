//! What one unit of timed work records: its timing, each request's latency, errors. Shared by
//! the scenarios (which run units) and the phase (which schedules them and sums the records).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::http::{Conn, Response};

/// How a unit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// An error was recorded.
    Failed,
    /// A finite pool of work ran out (not an error).
    Exhausted,
}

/// What one unit of work is told about its timing.
#[derive(Debug, Clone, Copy)]
pub struct UnitClock {
    /// When the unit was due (its latency counts from here).
    pub issued: Instant,
    /// Whether it falls inside the measured window (after the warm-up).
    pub measured: bool,
}

/// Per-connection recording.
pub struct Recorder {
    pub latencies_us: Vec<u32>,
    pub unit_latencies_us: Vec<u32>,
    pub requests: u64,
    pub units: u64,
    pub errors: u64,
    pub error_samples: BTreeMap<String, u64>,
    pub last_end: Option<Instant>,
    /// Client-side CPU work inside the timed phase (signing answers in full-flow and enroll).
    pub client_work: Duration,
}

const MAX_ERROR_SAMPLES: usize = 8;

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            latencies_us: Vec::with_capacity(64 * 1024),
            unit_latencies_us: Vec::new(),
            requests: 0,
            units: 0,
            errors: 0,
            error_samples: BTreeMap::new(),
            last_end: None,
            client_work: Duration::ZERO,
        }
    }

    /// Records an error (errors count inside and outside the measured window: any fails the run).
    pub fn error(&mut self, what: &str, detail: &str) {
        self.errors += 1;
        let detail: String = detail.chars().take(240).collect();
        let key = format!("{what}: {detail}");
        if self.error_samples.len() < MAX_ERROR_SAMPLES || self.error_samples.contains_key(&key) {
            *self.error_samples.entry(key).or_insert(0) += 1;
        }
    }

    /// Sends one request; its latency counts from `since`. A transport error or a non-2xx status
    /// is an error and gives `None`.
    pub async fn call(
        &mut self,
        conn: &mut Conn,
        request: &[u8],
        since: Instant,
        measured: bool,
        what: &str,
    ) -> Option<Response> {
        let result = conn.send(request).await;
        let end = Instant::now();
        if measured {
            self.requests += 1;
            self.latencies_us.push(u32::try_from(end.duration_since(since).as_micros()).unwrap_or(u32::MAX));
            self.last_end = Some(end);
        }
        match result {
            Ok(response) if response.is_success() => Some(response),
            Ok(response) => {
                self.error(what, &format!("HTTP {} {}", response.status, response.text()));
                None
            }
            Err(e) => {
                self.error(what, &e);
                None
            }
        }
    }
}
