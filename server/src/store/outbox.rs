//! What the two outboxes (pushes and webhook deliveries) share: the attempt log, the state
//! change that goes with each attempt, taking back claims whose lease lapsed, and clearing an
//! account's history.

use super::script::Script;
use super::{on_pool, Arg, Db, Sql, Store};

/// The error of an attempt whose outcome was never recorded: its instance stopped (a crash,
/// `kill -9`) or could not write before its lease lapsed. Its request may have reached the
/// receiver, so the repeat that follows may be a duplicate.
pub const INTERRUPTED: &str = "interrupted: the outcome of this attempt was never recorded (its instance stopped, \
    or could not record it, before its lease lapsed); the request may have been sent";

/// One of the two outboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    Pushes,
    WebhookDeliveries,
}

impl Outbox {
    /// (outbox table, attempts table, attempts' column naming the outbox row)
    fn tables(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Outbox::Pushes => ("pushes", "push_attempts", "push_id"),
            Outbox::WebhookDeliveries => ("webhook_deliveries", "webhook_attempts", "delivery_id"),
        }
    }
}

/// An attempt to record, and the state it leaves its row in.
#[derive(Debug, Clone)]
pub struct Settled {
    pub id: i64,
    pub attempts_before: i64,
    pub outcome: AttemptOutcome,
    /// The row's new status (`delivered`/`sent`, `retrying`, `failed`…).
    pub status: &'static str,
    pub next_attempt_at: i64,
}

/// One logged attempt.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AttemptRow {
    pub id: i64,
    /// The push or delivery it belongs to.
    pub owner_id: i64,
    pub attempt: i64,
    pub at: i64,
    pub http_status: Option<i64>,
    pub outcome: String,
    pub error: Option<String>,
    pub latency_ms: i64,
}

/// The result of one delivery attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// When the attempt was made.
    pub at: i64,
    pub http_status: Option<i64>,
    /// `sent`, `retry` or `failed`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub latency_ms: i64,
}

impl Store {
    /// Logs attempt number `attempts_before + 1` of row `id` and moves the row to `status`
    /// (due again at `next_attempt_at`), in one transaction.
    pub async fn record_attempt(
        &self,
        outbox: Outbox,
        id: i64,
        attempts_before: i64,
        outcome: &AttemptOutcome,
        status: &'static str,
        next_attempt_at: i64,
    ) -> Result<(), sqlx::Error> {
        let settled = Settled { id, attempts_before, outcome: outcome.clone(), status, next_attempt_at };
        self.record_attempts(outbox, std::slice::from_ref(&settled)).await
    }

    /// [`Store::record_attempt`] for several rows at once, in one transaction.
    pub async fn record_attempts(&self, outbox: Outbox, settled: &[Settled]) -> Result<(), sqlx::Error> {
        if settled.is_empty() {
            return Ok(());
        }
        let (table, attempts, owner) = outbox.tables();
        let insert = format!(
            "INSERT INTO {attempts} ({owner}, attempt, at, http_status, outcome, error, latency_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?)"
        );
        let update = format!(
            "UPDATE {table} SET status = ?, attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, \
             last_error = ?, date_updated = ? WHERE id = ?"
        );
        let mut script = Script::new();
        for s in settled {
            let o = &s.outcome;
            script = script
                .then(
                    &insert,
                    [
                        Arg::Int(s.id),
                        Arg::Int(s.attempts_before + 1),
                        Arg::Int(o.at),
                        Arg::opt_int(o.http_status),
                        Arg::text(o.outcome),
                        Arg::opt_text(o.error.as_deref()),
                        Arg::Int(o.latency_ms),
                    ],
                )
                .then(
                    &update,
                    [
                        Arg::text(s.status),
                        Arg::Int(s.next_attempt_at),
                        Arg::opt_text(o.error.as_deref()),
                        Arg::Int(o.at),
                        Arg::Int(s.id),
                    ],
                );
        }
        self.run_script(script).await.map(|_| ())
    }

    /// Takes back the rows whose claim lapsed — the instance that claimed them stopped mid-attempt
    /// (a crash, `kill -9`) — and logs that attempt ([`INTERRUPTED`], no HTTP status, at the
    /// claim's time), so that every request a receiver got is a recorded attempt, repeats after
    /// a crash included. Each row counts the attempt and is due again at once (`retrying`), or
    /// `failed` if it was its last. Claims leave lapsed rows to this; it returns how many it took.
    pub async fn reclaim_lapsed(&self, outbox: Outbox, now: i64) -> Result<u64, sqlx::Error> {
        let (table, attempts, owner) = outbox.tables();
        let columns = format!("{attempts} ({owner}, attempt, at, http_status, outcome, error, latency_ms)");
        // `now`, `error`, `now` (the placeholders of either backend).
        let set = |now: &str, error: &str| {
            format!(
                "status = CASE WHEN attempts + 1 < max_attempts THEN 'retrying' ELSE 'failed' END, \
                 attempts = attempts + 1, next_attempt_at = {now}, lease_until = NULL, last_error = {error}, \
                 date_updated = {now}"
            )
        };
        match &self.db {
            // One writer: the two statements see and change the same rows.
            Db::Sqlite { .. } => {
                let script = Script::new()
                    .then(
                        &format!(
                            "INSERT INTO {columns} SELECT id, attempts + 1, date_updated, NULL, \
                             CASE WHEN attempts + 1 < max_attempts THEN 'retry' ELSE 'failed' END, ?, 0 \
                             FROM {table} WHERE status = 'sending' AND lease_until <= ?"
                        ),
                        [Arg::text(INTERRUPTED), Arg::Int(now)],
                    )
                    .then(
                        &format!(
                            "UPDATE {table} SET {} WHERE status = 'sending' AND lease_until <= ? RETURNING id",
                            set("?", "?")
                        ),
                        [Arg::Int(now), Arg::text(INTERRUPTED), Arg::Int(now), Arg::Int(now)],
                    );
                Ok(u64::try_from(self.run_script(script).await?.len()).unwrap_or(u64::MAX))
            }
            // Instances race: each takes the lapsed rows no other is taking (`SKIP LOCKED`) and
            // logs the attempts of exactly those, in one statement. The claim's time is the
            // row's `date_updated` before this change.
            Db::Postgres(pool) => {
                let sql = format!(
                    "WITH lapsed AS (UPDATE {table} t SET {} FROM (SELECT id, date_updated AS claimed_at \
                     FROM {table} WHERE status = 'sending' AND lease_until <= $1 FOR UPDATE SKIP LOCKED) c \
                     WHERE t.id = c.id RETURNING t.id, t.attempts, t.status, c.claimed_at) \
                     INSERT INTO {columns} SELECT id, attempts, claimed_at, NULL, \
                     CASE WHEN status = 'failed' THEN 'failed' ELSE 'retry' END, $2, 0 FROM lapsed",
                    set("$1", "$2")
                );
                let done = sqlx::query(&sql).bind(now).bind(INTERRUPTED).execute(pool).await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// The attempts of the given rows, oldest first.
    pub async fn attempts(&self, outbox: Outbox, ids: &[i64]) -> Result<Vec<AttemptRow>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (_, attempts, owner) = outbox.tables();
        let mut sql = Sql::new(&format!(
            "SELECT id, {owner} AS owner_id, attempt, at, http_status, outcome, error, latency_ms FROM {attempts} \
             WHERE {owner} IN ("
        ));
        for (i, id) in ids.iter().enumerate() {
            sql.push(if i == 0 { "?" } else { ", ?" }, [Arg::Int(*id)]);
        }
        sql.push(") ORDER BY id", []);
        on_pool!(self, read, |pool| {
            super::bind_args!(sqlx::query_as::<_, AttemptRow>(&sql.text), &sql.args).fetch_all(pool).await
        })
    }

    /// Deletes an account's rows (and their attempts). Returns how many.
    pub async fn clear_outbox(&self, outbox: Outbox, account_sid: &str) -> Result<u64, sqlx::Error> {
        let sql = format!("DELETE FROM {} WHERE account_sid = $1", outbox.tables().0);
        on_pool!(self, write, |pool| {
            sqlx::query(&sql).bind(account_sid).execute(pool).await.map(|r| r.rows_affected())
        })
    }
}
