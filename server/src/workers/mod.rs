//! When background work runs. The push and webhook outboxes each have a worker whose pass
//! (claim what is due → send → record the attempts) lives with its outbox (`push/worker.rs`,
//! `webhooks/worker.rs`); here are the loops that repeat those passes and the sweeper
//! (`sweeper.rs`), and [`Workers::drain`], which runs all of them by hand until nothing is due
//! at the current clock (tests call it instead of sleeping;
//! docs/ARCHITECTURE.md, "Background work"). Taking back lapsed claims and the retry backoff,
//! shared by both outboxes, live here too.

pub mod sweeper;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use crate::clock::{jumped, SharedClock};
use crate::store::outbox::Outbox;
use crate::store::Store;

/// One pass of an outbox worker at `now`: claims the rows due, sends them and records each
/// attempt.
pub trait Pass: Send + Sync + 'static {
    /// Which outbox the pass claims from (its lapsed claims are taken back before it).
    const OUTBOX: Outbox;

    /// Runs one pass; returns how many rows it claimed (0: nothing was due).
    fn pass(&self, now: i64) -> impl Future<Output = usize> + Send;
}

/// An outbox worker of this process. Its passes never overlap: the background loop and
/// [`Workers::drain`] take turns, so once a drain's pass claims nothing, no claim of this
/// process is in flight.
pub struct OutboxWorker<P> {
    pass: P,
    store: Store,
    poll: Duration,
    wake: Arc<Notify>,
    /// Held for a whole pass; holds the clock second of the last lapsed-claim take-back.
    turn: Mutex<i64>,
}

impl<P: Pass> OutboxWorker<P> {
    /// `wake` (notified when a row is enqueued) cuts short the `poll` wait after an idle pass.
    pub fn new(pass: P, store: Store, poll: Duration, wake: Arc<Notify>) -> Arc<OutboxWorker<P>> {
        Arc::new(OutboxWorker { pass, store, poll, wake, turn: Mutex::new(i64::MIN) })
    }

    /// Waits for its turn, takes back lapsed claims, then runs a pass.
    async fn once(&self, now: i64) -> usize {
        let mut reclaimed = self.turn.lock().await;
        reclaim_lapsed(&self.store, P::OUTBOX, now, &mut reclaimed).await;
        self.pass.pass(now).await
    }

    /// Passes until the task is aborted, waiting after each pass that claimed nothing (until a
    /// wake-up, the poll interval, or a jump of the clock).
    async fn run(self: Arc<Self>, clock: SharedClock) {
        let mut jumps = clock.jumps();
        loop {
            if self.once(clock.now()).await == 0 {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.poll) => {}
                    // A retry due at the new time goes now, not at the next poll.
                    () = jumped(&mut jumps) => {}
                }
            }
        }
    }

    /// Passes at `now` until one claims nothing; returns the rows claimed (each an attempt, or a
    /// cancelled webhook delivery).
    async fn drain(&self, now: i64) -> usize {
        let mut claimed = 0;
        loop {
            match self.once(now).await {
                0 => return claimed,
                n => claimed += n,
            }
        }
    }
}

/// The background work of one server: the push (`P`) and webhook (`W`) outbox workers and the
/// sweeper. Generic so that this layer stays below the senders it schedules (`startup` names
/// them: [`crate::startup::ServerWorkers`]).
pub struct Workers<P, W> {
    pub push: Arc<OutboxWorker<P>>,
    pub webhooks: Arc<OutboxWorker<W>>,
    pub store: Store,
    pub clock: SharedClock,
    pub sweep_interval: Duration,
    pub unverified_factor_ttl: i64,
}

/// What [`Workers::drain`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Pushes claimed (each one delivery attempt).
    pub pushes: usize,
    /// Webhook deliveries claimed (each one attempt, or cancelled: its webhook is gone).
    pub deliveries: usize,
    /// Challenges the sweep marked expired.
    pub expired_challenges: u64,
    /// Stale unverified Factors the sweep deleted.
    pub deleted_factors: u64,
}

impl<P, W> Clone for Workers<P, W> {
    fn clone(&self) -> Self {
        Workers {
            push: Arc::clone(&self.push),
            webhooks: Arc::clone(&self.webhooks),
            store: self.store.clone(),
            clock: self.clock.clone(),
            sweep_interval: self.sweep_interval,
            unverified_factor_ttl: self.unverified_factor_ttl,
        }
    }
}

impl<P: Pass, W: Pass> Workers<P, W> {
    /// Starts the three loops.
    pub fn spawn(&self) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(self.push.clone().run(self.clock.clone())),
            tokio::spawn(self.webhooks.clone().run(self.clock.clone())),
            tokio::spawn(sweeper::run(
                self.store.clone(),
                self.clock.clone(),
                self.sweep_interval,
                self.unverified_factor_ttl,
            )),
        ]
    }

    /// Runs the work due at the clock's current time until none is left: a sweep first when
    /// `sweep` is set, then push passes until one claims nothing, then webhook passes likewise.
    /// A pass waits for a pass of the background loop in flight, so on return no claim of this
    /// server is open; rows rescheduled for later (a retry's backoff) stay for a later drain.
    pub async fn drain(&self, sweep: bool) -> Drained {
        let now = self.clock.now();
        let mut drained = Drained::default();
        if sweep {
            match sweeper::sweep(&self.store, now, self.unverified_factor_ttl).await {
                Ok((expired, deleted)) => (drained.expired_challenges, drained.deleted_factors) = (expired, deleted),
                Err(e) => tracing::warn!(error = %e, "drain: sweep failed"),
            }
        }
        drained.pushes = self.push.drain(now).await;
        drained.deliveries = self.webhooks.drain(now).await;
        drained
    }
}

/// How long a claim is its worker's: longer than any attempt can take (`timeout`); after that
/// (a crash) it is taken back and claimed again.
pub fn lease(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_secs()).unwrap_or(60) * 2 + 5
}

/// Takes back `outbox`'s lapsed claims ([`Store::reclaim_lapsed`]) when the clock has moved on
/// since `last` (so at most once a second: leases are whole seconds), before a worker claims.
pub async fn reclaim_lapsed(store: &Store, outbox: Outbox, now: i64, last: &mut i64) {
    if now <= *last {
        return;
    }
    *last = now;
    match store.reclaim_lapsed(outbox, now).await {
        Ok(0) => {}
        Ok(taken) => tracing::warn!(?outbox, taken, "took back claims whose lease lapsed (their instance stopped)"),
        Err(e) => tracing::warn!(?outbox, error = %e, "cannot take back lapsed claims; will retry"),
    }
}

/// Seconds before attempt `attempts + 1`: 2^attempts, at most `max`, with ±25 % jitter.
pub fn backoff(attempts: i64, max: i64) -> i64 {
    let max = max.max(1);
    let base = 1i64.checked_shl(u32::try_from(attempts.clamp(0, 30)).unwrap_or(30)).unwrap_or(max).min(max);
    let jitter = i64::from(crate::domain::sid::random_bytes::<1>()[0]) * base / 510; // 0 ..= base / 2
    (base - base / 4 + jitter).max(1)
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempts in 1..=12 {
            let base = (1i64 << attempts).min(300);
            let b = backoff(attempts, 300);
            assert!(b >= base - base / 4 && b <= base + base / 4 + 1, "{attempts}: {b}");
        }
        assert!(backoff(40, 300) <= 376);
        assert!(backoff(40, 1) <= 2);
    }
}
