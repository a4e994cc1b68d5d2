//! Periodic clean-up: pending Challenges past their expiration become `expired` (reads already
//! show them so; this makes the stored state agree), and unverified Factors older than the
//! configured lifetime are deleted, as Twilio does after 1 to 24 hours.

use std::time::Duration;

use crate::clock::{jumped, SharedClock};
use crate::store::Store;

const BATCH: i64 = 1000;

/// One sweep. Returns (challenges expired, factors deleted).
pub async fn sweep(store: &Store, now: i64, unverified_factor_ttl: i64) -> Result<(u64, u64), sqlx::Error> {
    let mut expired = 0;
    loop {
        let n = store.expire_challenges(now, BATCH).await?;
        expired += n;
        if n < BATCH as u64 {
            break;
        }
    }
    let mut deleted = 0;
    loop {
        let n = store.delete_stale_unverified_factors(now - unverified_factor_ttl, BATCH).await?;
        deleted += n;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok((expired, deleted))
}

/// Sweeps every `interval`, and at once when the clock jumps, until the task is aborted.
pub async fn run(store: Store, clock: SharedClock, interval: Duration, unverified_factor_ttl: i64) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut jumps = clock.jumps();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = jumped(&mut jumps) => {}
        }
        match sweep(&store, clock.now(), unverified_factor_ttl).await {
            Ok((0, 0)) => {}
            Ok((expired, deleted)) => {
                tracing::info!(expired, deleted, "sweep: expired challenges, deleted stale unverified factors");
            }
            Err(e) => tracing::warn!(error = %e, "sweep failed; will retry"),
        }
    }
}
