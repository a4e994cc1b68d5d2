//! Time as the server sees it. Handlers and workers take `now` from a [`Clock`], so tests
//! can move time instead of sleeping.
//!
//! In production the clock is an [`EmulatedClock`]: a base clock (the system's) moved by an
//! offset, or frozen at an instant, as the test controls set it (README, "Test controls"). Its
//! state is one row of the database, so every instance on it shares it; each instance keeps it
//! in memory, applies its own changes at once and learns of other instances' changes from
//! PostgreSQL's notifications or, at the latest, from a re-read every second
//! ([`EmulatedClock::follow`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::emulator::ClockRow;
use crate::store::Store;

/// A source of the current Unix time in seconds.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> i64;

    /// Changes whenever the clock jumps (set, advanced, frozen, reset), so that waits for a time
    /// (the workers' polls, the sweeper's interval) end at once; `None` for clocks that only tick.
    fn jumps(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// Waits until the clock behind `jumps` jumps; forever when it never does.
pub async fn jumped(jumps: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = jumps {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// A clock that stands still until told to move. For tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(now)))
    }
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// How the test controls move the clock (`POST /_emulator/Clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Seconds forward (or back, when negative).
    Advance(i64),
    /// To this Unix time.
    Set(i64),
    /// Back to the base clock, no longer frozen (unless frozen again by the same change).
    Reset,
}

/// One change of the clock: a move, a freeze or thaw, or both (the move first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub moves: Option<Move>,
    pub freeze: Option<bool>,
}

/// The clock's state as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub now: i64,
    /// `now` minus the base clock's time.
    pub offset_seconds: i64,
    pub frozen: bool,
}

/// Why a change was refused.
#[derive(Debug)]
pub enum Refused {
    /// It would put `now` before `newest`, the newest date the database holds.
    BeforeNewest {
        moves: Move,
        newest: i64,
    },
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Refused {
        Refused::Database(e)
    }
}

/// Reads `row` at base time `base`.
fn reading(row: &ClockRow, base: i64) -> Reading {
    let now = row.frozen_at.unwrap_or(base.saturating_add(row.offset_seconds));
    Reading { now, offset_seconds: now - base, frozen: row.frozen_at.is_some() }
}

/// The row after `change` at base time `base` (offset and frozen instant; the version is the
/// store's).
fn changed(row: &ClockRow, change: Change, base: i64) -> ClockRow {
    let before = reading(row, base);
    let (now, mut frozen) = match change.moves {
        None => (before.now, before.frozen),
        Some(Move::Advance(seconds)) => (before.now.saturating_add(seconds), before.frozen),
        Some(Move::Set(at)) => (at, before.frozen),
        Some(Move::Reset) => (base, false),
    };
    if let Some(freeze) = change.freeze {
        frozen = freeze;
    }
    ClockRow { offset_seconds: now - base, frozen_at: frozen.then_some(now), version: row.version }
}

/// The server's clock under the test controls: a base clock moved by the stored offset, or
/// frozen at the stored instant.
pub struct EmulatedClock {
    base: SharedClock,
    store: Store,
    row: RwLock<ClockRow>,
    jumps: watch::Sender<u64>,
}

impl EmulatedClock {
    /// The clock as stored (it survives restarts and is shared by every instance on `store`).
    pub async fn load(store: Store, base: SharedClock) -> Result<Arc<EmulatedClock>, sqlx::Error> {
        let row = store.clock_row().await?;
        Ok(Arc::new(EmulatedClock { base, store, row: RwLock::new(row), jumps: watch::Sender::new(0) }))
    }

    fn row(&self) -> ClockRow {
        *self.row.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The clock now.
    pub fn reading(&self) -> Reading {
        reading(&self.row(), self.base.now())
    }

    /// Takes `row` when it is newer than the cached one; tells waiters that the clock jumped.
    fn adopt(&self, row: ClockRow) {
        let mut cached = self.row.write().unwrap_or_else(PoisonError::into_inner);
        if row.version != cached.version {
            *cached = row;
            drop(cached);
            self.jumps.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Applies `change` to the stored clock (compare-and-set, so concurrent changes on any
    /// instance all land) and returns the new reading. A change that would move `now` back
    /// before the newest date the database holds is refused: rows would then read as made in
    /// the future, and expiry and ordering by date would disagree with the order of events.
    pub async fn change(&self, change: Change) -> Result<Reading, Refused> {
        loop {
            let row = self.store.clock_row().await?;
            let base = self.base.now();
            let next = changed(&row, change, base);
            let (before, after) = (reading(&row, base), reading(&next, base));
            if let Some(moves) = change.moves.filter(|_| after.now < before.now) {
                let newest = self.store.newest_date().await?;
                if after.now < newest {
                    return Err(Refused::BeforeNewest { moves, newest });
                }
            }
            if let Some(saved) = self.store.save_clock(row.version, next.offset_seconds, next.frozen_at).await? {
                self.adopt(saved);
                return Ok(reading(&saved, self.base.now()));
            }
        }
    }

    /// Keeps the cached clock in step with the database until the task is aborted: on
    /// PostgreSQL a notification on [`crate::store::emulator::CLOCK_CHANNEL`] re-reads it at
    /// once; on either engine it is re-read every second.
    pub async fn follow(self: Arc<Self>) {
        const EVERY: Duration = Duration::from_secs(1);
        let mut listener = match self.store.listen_for_clock().await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for clock changes; re-reading every second");
                None
            }
        };
        loop {
            match &mut listener {
                Some((l, schema)) => {
                    if let Ok(Err(e)) = tokio::time::timeout(EVERY, async {
                        loop {
                            match l.recv().await {
                                Ok(n) if n.payload() == schema.as_str() => return Ok(()),
                                Ok(_) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    })
                    .await
                    {
                        tracing::warn!(error = %e, "clock notifications interrupted; reconnecting");
                        tokio::time::sleep(EVERY).await;
                    }
                }
                None => tokio::time::sleep(EVERY).await,
            }
            match self.store.clock_row().await {
                Ok(row) => self.adopt(row),
                Err(e) => tracing::warn!(error = %e, "cannot read the clock; will retry"),
            }
        }
    }
}

impl Clock for EmulatedClock {
    fn now(&self) -> i64 {
        self.reading().now
    }

    fn jumps(&self) -> Option<watch::Receiver<u64>> {
        Some(self.jumps.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_700_000_000;

    fn row(offset_seconds: i64, frozen_at: Option<i64>) -> ClockRow {
        ClockRow { offset_seconds, frozen_at, version: 3 }
    }

    #[test]
    fn moves_shift_the_offset_and_a_frozen_clock_stays_frozen() {
        let advance = |s| Change { moves: Some(Move::Advance(s)), freeze: None };
        assert_eq!(changed(&row(10, None), advance(300), BASE), row(310, None));
        let frozen = changed(&row(0, Some(BASE - 50)), advance(100), BASE);
        assert_eq!(frozen.frozen_at, Some(BASE + 50));
        assert_eq!(reading(&frozen, BASE + 1000).now, BASE + 50, "frozen time does not tick");
        let set = changed(&row(0, None), Change { moves: Some(Move::Set(BASE + 7)), freeze: None }, BASE);
        assert_eq!(reading(&set, BASE + 2).now, BASE + 9, "after Set the clock ticks on from there");
    }

    #[test]
    fn freeze_holds_now_thaw_resumes_from_it_and_reset_returns_to_the_base() {
        let frozen = changed(&row(60, None), Change { moves: None, freeze: Some(true) }, BASE);
        assert_eq!(frozen.frozen_at, Some(BASE + 60));
        let thawed = changed(&frozen, Change { moves: None, freeze: Some(false) }, BASE + 500);
        assert_eq!(reading(&thawed, BASE + 500), Reading { now: BASE + 60, offset_seconds: -440, frozen: false });
        let reset = changed(&frozen, Change { moves: Some(Move::Reset), freeze: None }, BASE + 9);
        assert_eq!(reset, row(0, None));
        let reset_frozen = changed(&thawed, Change { moves: Some(Move::Reset), freeze: Some(true) }, BASE + 9);
        assert_eq!(reset_frozen.frozen_at, Some(BASE + 9));
    }
}
