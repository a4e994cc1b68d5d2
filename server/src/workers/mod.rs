//! Background work of the server: the [`sweeper`], and what the two outbox workers
//! (`push::worker`, `webhooks::worker`) share: taking back lapsed claims and the retry backoff.

pub mod sweeper;

use crate::store::outbox::Outbox;
use crate::store::Store;

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
