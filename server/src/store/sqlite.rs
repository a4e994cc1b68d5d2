//! SQLite connections, handed out without sqlx's pool.
//!
//! sqlx runs each SQLite connection on a thread of its own; every statement is a round trip to it.
//! Its pool adds a second trip per use — a `ping` when a connection is returned, in a task spawned
//! for the purpose — and on the single writer that trip lies on the path of every write
//! (BENCHMARKS.md, "What changed" 4). A local file has no broken connections to detect, and sqlx
//! queues a dropped transaction's `ROLLBACK` on the connection itself, so here a connection goes
//! straight back to the idle list. Waiters are served in arrival order.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A fixed set of open connections to one database.
pub struct Connections {
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Arc<Semaphore>,
    size: usize,
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections").field("size", &self.size).finish_non_exhaustive()
    }
}

/// How long a caller waits for a connection before the request fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Connections {
    /// Opens `size` connections with `options`.
    pub async fn open(options: &SqliteConnectOptions, size: usize) -> Result<Arc<Connections>, sqlx::Error> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(SqliteConnection::connect_with(options).await?);
        }
        Ok(Arc::new(Connections { idle: Mutex::new(idle), permits: Arc::new(Semaphore::new(size)), size }))
    }

    /// A connection for the caller's exclusive use until the lease is dropped.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, sqlx::Error> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let conn = self.idle.lock().map_err(|_| sqlx::Error::PoolClosed)?.pop().ok_or(sqlx::Error::PoolClosed)?;
        Ok(Lease { owner: Arc::clone(self), conn: Some(conn), _permit: permit })
    }

    /// Closes every connection once its lease ends; later acquires fail.
    pub async fn close(&self) {
        self.permits.close();
        let idle = match self.idle.lock() {
            Ok(mut idle) => std::mem::take(&mut *idle),
            Err(_) => return,
        };
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

/// Copies the WAL into the database file every `every`, from `conns` (a connection of its own),
/// until they are closed. The writer runs with `wal_autocheckpoint=0`: otherwise the commit that
/// crosses 1,000 WAL pages does the checkpoint — copy and fsync — while every other write waits.
/// `PASSIVE` never waits for readers or the writer; a busy moment is caught up on the next round.
pub fn checkpoint_every(conns: Arc<Connections>, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Ok(mut lease) = conns.acquire().await else { return };
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *lease).await {
                tracing::warn!(%error, "SQLite WAL checkpoint failed; will retry");
            }
        }
    });
}

/// One connection, returned to its [`Connections`] on drop.
pub struct Lease {
    owner: Arc<Connections>,
    conn: Option<SqliteConnection>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Lease {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a lease holds its connection until dropped"))
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lease holds its connection until dropped"))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.owner.idle.lock()) {
            if !self.owner.permits.is_closed() {
                idle.push(conn);
            }
        }
        // The permit is released after this, with the connection already back.
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn one() -> Arc<Connections> {
        Connections::open(&SqliteConnectOptions::from_str("sqlite::memory:").unwrap(), 1).await.unwrap()
    }

    #[tokio::test]
    async fn a_connection_serves_one_lease_at_a_time_and_comes_back_on_drop() {
        let conns = one().await;
        let first = conns.acquire().await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), conns.acquire()).await;
        assert!(waiting.is_err(), "a second lease waits while the only connection is out");
        drop(first);
        let again = tokio::time::timeout(Duration::from_millis(500), conns.acquire()).await;
        assert!(again.is_ok_and(|lease| lease.is_ok()));
    }

    #[tokio::test]
    async fn a_transaction_dropped_mid_way_is_rolled_back_before_the_next_lease() {
        let conns = one().await;
        let mut lease = conns.acquire().await.unwrap();
        sqlx::query("CREATE TABLE t (v TEXT)").execute(&mut *lease).await.unwrap();
        let mut tx = lease.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES ('lost')").execute(&mut *tx).await.unwrap();
        drop(tx);
        drop(lease);
        let mut lease = conns.acquire().await.unwrap();
        let mut tx = lease.begin().await.unwrap(); // not "within a transaction"
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *tx).await.unwrap();
        assert_eq!(count, 0);
    }

    #[tokio::test]
    async fn closed_connections_refuse_new_leases() {
        let conns = one().await;
        conns.close().await;
        assert!(matches!(conns.acquire().await, Err(sqlx::Error::PoolClosed)));
    }
}
