//! Whether the database can serve: which errors mean "unavailable" rather than a bug, the
//! outcome of recent writes, and the probes behind `/healthz`.
//!
//! A database that refuses connections, or a disk that is full, is not the request's fault nor
//! the server's: those errors answer 503/20503 and make `/healthz` report why. Health reads on
//! every call (one `SELECT 1`) but writes only while the last write failed: every write records
//! its outcome here (an atomic flag on success), so a load balancer polling a healthy server
//! costs no writes, and a server whose writes fail keeps probing until one succeeds again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection as _;

use super::{on_pool, Db, Store};

/// SQLSTATEs of a PostgreSQL that refuses or drops connections, or cannot take a write: class 08
/// (connection exception), class 53 (insufficient resources: disk full, out of memory, too many
/// connections), 57P01–57P05 (administrator or crash shutdown, cannot connect now, database
/// dropped, idle session timeout), 55000 (`database … is not currently accepting connections`,
/// `ALLOW_CONNECTIONS false`), 3D000 (the database does not exist) and 25006 (a write on a
/// read-only server: a standby after a failover).
fn postgres_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "57P04" | "57P05" | "55000" | "3D000" | "25006")
}

/// SQLite result codes of a database that cannot take a write: `SQLITE_IOERR` (10, any extended
/// code), `SQLITE_FULL` (13: disk full or `max_page_count` reached), `SQLITE_CANTOPEN` (14).
fn sqlite_unavailable(code: i64) -> bool {
    matches!(code & 0xff, 10 | 13 | 14)
}

/// Why the database cannot serve, if `err` means it is unavailable (for 503 and `/healthz`);
/// `None` for any other error (a bug, a constraint).
pub fn unavailable_reason(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::PoolTimedOut => Some("no database connection became free in time".to_owned()),
        sqlx::Error::PoolClosed => Some("the database connections are closed".to_owned()),
        sqlx::Error::Io(e) => Some(format!("cannot reach the database: {e}")),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            let unavailable = match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                Some(_) => code.parse::<i64>().is_ok_and(sqlite_unavailable),
                None => postgres_unavailable(&code),
            };
            unavailable.then(|| format!("{} ({code})", db.message()))
        }
        _ => None,
    }
}

/// Whether the latest write that succeeded or failed for want of the database failed.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    failing: AtomicBool,
}

impl WriteOutcome {
    fn record<T>(&self, result: &Result<T, sqlx::Error>) {
        match result {
            // A load before the store: the flag's cache line stays shared while writes succeed.
            Ok(_) if self.failing.load(Ordering::Relaxed) => self.failing.store(false, Ordering::Relaxed),
            Ok(_) => {}
            Err(err) if unavailable_reason(err).is_some() => self.failing.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
    }
}

/// What `/healthz` reports of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseState {
    Ok,
    /// Reads work, writes fail (disk full, read-only): the reason.
    Degraded(String),
    /// The database does not answer: the reason.
    Unavailable(String),
}

/// How long a health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The name of the row the write probe inserts and deletes in one transaction.
const WRITE_PROBE: &str = "health.write_probe";

impl Store {
    /// Runs a write and records its outcome (see the module's documentation).
    pub(crate) async fn recorded_write<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let result = write.await;
        self.writes.record(&result);
        result
    }

    /// The database's state: a read on every call; a write only while the last write failed.
    pub async fn health(&self) -> DatabaseState {
        if let Err(reason) = probe(self.ping()).await {
            return DatabaseState::Unavailable(self.connect_error().await.unwrap_or(reason));
        }
        if !self.writes.failing.load(Ordering::Relaxed) {
            return DatabaseState::Ok;
        }
        match probe(self.probe_write()).await {
            Ok(()) => DatabaseState::Ok,
            Err(reason) => DatabaseState::Degraded(reason),
        }
    }

    /// A write of a few pages, undone in the same transaction but committed (so it reaches the
    /// WAL or the disk), on the writer connection. It records its outcome.
    async fn probe_write(&self) -> Result<(), sqlx::Error> {
        let filler = "x".repeat(16 * 1024);
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM server_keys WHERE name = $1").bind(WRITE_PROBE).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2)")
                .bind(WRITE_PROBE)
                .bind(&filler)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM server_keys WHERE name = $1").bind(WRITE_PROBE).execute(&mut *tx).await?;
            tx.commit().await
        })
    }

    /// Why a new PostgreSQL connection is refused right now, if it is: the pool only says it
    /// timed out while it retries a server that is starting up or full.
    async fn connect_error(&self) -> Option<String> {
        let Db::Postgres(pool) = &self.db else { return None };
        let options = pool.connect_options();
        match tokio::time::timeout(PROBE_TIMEOUT, sqlx::PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                None
            }
            Ok(Err(e)) => Some(unavailable_reason(&e).unwrap_or_else(|| e.to_string())),
            Err(_) => None,
        }
    }

    /// Makes every SQLite write that needs a new page fail with `SQLITE_FULL`, as on a full
    /// disk (`PRAGMA max_page_count` on the writer), or lifts that limit. For fault tests.
    #[doc(hidden)]
    pub async fn simulate_full_disk(&self, full: bool) -> Result<(), sqlx::Error> {
        let Db::Sqlite { write, .. } = &self.db else { return Ok(()) };
        let mut conn = write.acquire().await?;
        let pages: i64 =
            if full { sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut *conn).await? } else { 1_073_741_823 };
        sqlx::query(&format!("PRAGMA max_page_count = {pages}")).execute(&mut *conn).await.map(|_| ())
    }
}

/// Runs a health check within [`PROBE_TIMEOUT`]; the error is the reason to report.
async fn probe(check: impl std::future::Future<Output = Result<(), sqlx::Error>>) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(unavailable_reason(&e).unwrap_or_else(|| e.to_string())),
        Err(_) => Err(format!("the database did not answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_refusals_and_full_disks_are_unavailability() {
        for code in ["08006", "08001", "53300", "53100", "57P01", "57P02", "57P03", "55000", "3D000", "25006"] {
            assert!(postgres_unavailable(code), "{code}");
        }
        for code in ["23505", "22021", "42P01", "40001", "57014"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
        for code in [13, 10, 10 | (3 << 8), 14] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        for code in [19, 2067, 1, 5] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
        assert!(unavailable_reason(&sqlx::Error::PoolTimedOut).is_some());
        assert!(unavailable_reason(&sqlx::Error::RowNotFound).is_none());
    }
}
