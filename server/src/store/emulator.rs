//! The test controls' state (README, "Test controls"): the emulated clock's one row, shared by
//! every instance on the database, and the reset of an account's data.

use sqlx::postgres::PgListener;

use super::script::Script;
use super::{on_pool, Arg, Db, Store};

/// The channel on which PostgreSQL announces a clock change to every instance (the payload is
/// the schema whose clock changed, so servers on other schemas of one database ignore it).
pub const CLOCK_CHANNEL: &str = "verify_push_clock";

/// The emulated clock as stored: `now` is real time + `offset_seconds`, or `frozen_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct ClockRow {
    pub offset_seconds: i64,
    pub frozen_at: Option<i64>,
    /// Grows with every change.
    pub version: i64,
}

/// Every table that holds an account's data below the account itself (each has `account_sid`),
/// children before parents where no foreign key cascades. [`Store::reset_account`] empties them
/// of one account; the account and its API keys stay. A new per-account table is one line here.
const ACCOUNT_TABLES: &[&str] = &[
    "pushes",
    "webhook_deliveries",
    // Cascades to entities, factors (and their virtual devices), challenges, notifications,
    // access tokens and webhooks.
    "services",
    "credentials",
    "entity_creations",
];

/// Every table's newest date column (`date_updated` where a row has one: it is never before
/// `date_created`): the newest of them is how far back the clock may be set
/// ([`Store::newest_date`]).
const DATED_COLUMNS: &[(&str, &str)] = &[
    ("accounts", "date_created"),
    ("api_keys", "date_created"),
    ("services", "date_updated"),
    ("entities", "date_updated"),
    ("factors", "date_updated"),
    ("challenges", "date_updated"),
    ("webhooks", "date_updated"),
    ("credentials", "date_updated"),
    ("pushes", "date_updated"),
    ("webhook_deliveries", "date_updated"),
    ("virtual_devices", "date_created"),
];

impl Store {
    /// The stored clock.
    pub async fn clock_row(&self) -> Result<ClockRow, sqlx::Error> {
        const SQL: &str = "SELECT offset_seconds, frozen_at, version FROM emulator_clock WHERE id = 1";
        on_pool!(self, read, |pool| sqlx::query_as::<_, ClockRow>(SQL).fetch_one(pool).await)
    }

    /// Stores `next` if the row is still at version `seen` (compare-and-set); returns the row
    /// with its new version, or `None` when another change came first. On PostgreSQL the same
    /// statement notifies [`CLOCK_CHANNEL`] (delivered at commit).
    pub async fn save_clock(
        &self,
        seen: i64,
        offset_seconds: i64,
        frozen_at: Option<i64>,
    ) -> Result<Option<ClockRow>, sqlx::Error> {
        const UPDATE: &str = "UPDATE emulator_clock SET offset_seconds = $1, frozen_at = $2, version = version + 1 \
             WHERE id = 1 AND version = $3 RETURNING offset_seconds, frozen_at, version";
        let notify = format!(
            "WITH changed AS ({UPDATE}) SELECT changed.*, pg_notify('{CLOCK_CHANNEL}', current_schema())::text AS notified \
             FROM changed"
        );
        let sql = match self.backend() {
            super::Backend::Sqlite => UPDATE,
            super::Backend::Postgres => notify.as_str(),
        };
        on_pool!(self, write, |pool| {
            sqlx::query_as::<_, ClockRow>(sql)
                .bind(offset_seconds)
                .bind(frozen_at)
                .bind(seen)
                .fetch_optional(pool)
                .await
        })
    }

    /// The newest `date_created`/`date_updated` the database holds (0 when empty).
    pub async fn newest_date(&self) -> Result<i64, sqlx::Error> {
        let parts: Vec<String> = DATED_COLUMNS.iter().map(|(t, c)| format!("SELECT MAX({c}) AS d FROM {t}")).collect();
        let sql = format!("SELECT COALESCE(MAX(d), 0) FROM ({}) dates", parts.join(" UNION ALL "));
        on_pool!(self, read, |pool| sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await)
    }

    /// A listener on [`CLOCK_CHANNEL`] and this store's schema (PostgreSQL only).
    pub async fn listen_for_clock(&self) -> Result<Option<(PgListener, String)>, sqlx::Error> {
        let Db::Postgres(pool) = &self.db else { return Ok(None) };
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text").fetch_one(pool).await?;
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CLOCK_CHANNEL).await?;
        Ok(Some((listener, schema)))
    }

    /// Deletes every row of `account_sid` in [`ACCOUNT_TABLES`], in one transaction.
    pub async fn reset_account(&self, account_sid: &str) -> Result<(), sqlx::Error> {
        let script = ACCOUNT_TABLES.iter().fold(Script::new(), |script, table| {
            script.then(&format!("DELETE FROM {table} WHERE account_sid = ?"), [Arg::text(account_sid)])
        });
        self.run_script(script).await.map(|_| ())
    }
}
