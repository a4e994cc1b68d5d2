//! What the two outboxes (pushes and webhook deliveries) share: the attempt log, the state
//! change that goes with each attempt, listing rows with their attempts, taking back claims whose
//! lease lapsed, and clearing an account's history.

use super::live::LiveEvent;
use super::script::Script;
use super::{on_pool, Arg, Backend, Db, Store};
use crate::domain::status::{AttemptResult, PushStatus};

// The outbox states both tables share are the same words in both enums (a test checks it).
const SENDING: &str = PushStatus::Sending.sql();
const RETRYING: &str = PushStatus::Retrying.sql();
const FAILED: &str = PushStatus::Failed.sql();
const RETRY: &str = AttemptResult::Retry.sql();
const FAILED_ATTEMPT: &str = AttemptResult::Failed.sql();

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

    /// `, (…) AS attempt_log`: appended to a list's columns, each row's attempts as one JSON
    /// array (see [`Logged`]), oldest first, from the attempts' `(owner, id)` index.
    pub(crate) fn attempt_log(self, backend: Backend) -> String {
        let (table, attempts, owner) = self.tables();
        let fields = "a.attempt, a.at, a.http_status, a.outcome, a.error, a.latency_ms";
        let array = match backend {
            Backend::Sqlite => format!("json_group_array(json_array({fields}) ORDER BY a.id)"),
            Backend::Postgres => format!("COALESCE(json_agg(json_build_array({fields}) ORDER BY a.id), '[]')::text"),
        };
        format!(", (SELECT {array} FROM {attempts} a WHERE a.{owner} = {table}.id) AS attempt_log")
    }
}

/// A listed row with its attempts, read by one statement — one snapshot on both engines — so
/// the attempts shown are exactly those of the state shown. (Read by a second query, the
/// attempts could include one recorded after the row was read: a push shown `sending` with its
/// attempt already logged as a retry.)
#[derive(Debug)]
pub struct Logged<T> {
    pub row: T,
    pub attempts: Vec<AttemptRow>,
}

impl<'r, R, T> sqlx::FromRow<'r, R> for Logged<T>
where
    R: sqlx::Row,
    T: sqlx::FromRow<'r, R>,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let log: String = row.try_get("attempt_log")?;
        let attempts = serde_json::from_str(&log).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Logged { row: T::from_row(row)?, attempts })
    }
}

/// An attempt to record, and the state it leaves its row in.
#[derive(Debug, Clone)]
pub struct Settled {
    pub id: i64,
    pub attempts_before: i64,
    pub outcome: AttemptOutcome,
    /// The row's new status: a [`PushStatus`] or [`DeliveryStatus`] as text.
    pub status: &'static str,
    pub next_attempt_at: i64,
    /// The live event this attempt settles the row with (a final outcome), if any.
    pub event: Option<LiveEvent>,
}

/// One logged attempt (decoded from the JSON array of [`Outbox::attempt_log`], field by field
/// in this order).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at: i64,
    pub http_status: Option<i64>,
    pub outcome: AttemptResult,
    pub error: Option<String>,
    pub latency_ms: i64,
}

/// The result of one delivery attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// When the attempt was made.
    pub at: i64,
    pub http_status: Option<i64>,
    pub outcome: AttemptResult,
    pub error: Option<String>,
    pub latency_ms: i64,
}

impl Store {
    /// Logs attempt number `attempts_before + 1` of row `settled.id` and moves the row to
    /// `settled.status` (due again at `next_attempt_at`), in one transaction.
    pub async fn record_attempt(&self, outbox: Outbox, settled: Settled) -> Result<(), sqlx::Error> {
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
        // Only the claim that made this attempt settles the row: a worker whose lease lapsed and
        // whose row was claimed again (or cancelled) meanwhile finds the attempts counter moved
        // on (or the row no longer sending) and leaves the newer state alone.
        let update = format!(
            "UPDATE {table} SET status = ?, attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, \
             last_error = ?, date_updated = ? WHERE id = ? AND status = {SENDING} AND attempts = ?"
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
                        Arg::text(o.outcome.as_str()),
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
                        Arg::Int(s.attempts_before),
                    ],
                );
            if let Some(event) = &s.event {
                script = script.publish(event.clone());
            }
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
                "status = CASE WHEN attempts + 1 < max_attempts THEN {RETRYING} ELSE {FAILED} END, \
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
                             CASE WHEN attempts + 1 < max_attempts THEN {RETRY} ELSE {FAILED_ATTEMPT} END, ?, 0 \
                             FROM {table} WHERE status = {SENDING} AND lease_until <= ?"
                        ),
                        [Arg::text(INTERRUPTED), Arg::Int(now)],
                    )
                    .then(
                        &format!(
                            "UPDATE {table} SET {} WHERE status = {SENDING} AND lease_until <= ? RETURNING id",
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
                     FROM {table} WHERE status = {SENDING} AND lease_until <= $1 FOR UPDATE SKIP LOCKED) c \
                     WHERE t.id = c.id RETURNING t.id, t.attempts, t.status, c.claimed_at) \
                     INSERT INTO {columns} SELECT id, attempts, claimed_at, NULL, \
                     CASE WHEN status = {FAILED} THEN {FAILED_ATTEMPT} ELSE {RETRY} END, $2, 0 FROM lapsed",
                    set("$1", "$2")
                );
                let done = sqlx::query(&sql).bind(now).bind(INTERRUPTED).execute(pool).await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Deletes an account's rows (and their attempts). Returns how many.
    pub async fn clear_outbox(&self, outbox: Outbox, account_sid: &str) -> Result<u64, sqlx::Error> {
        let sql = format!("DELETE FROM {} WHERE account_sid = $1", outbox.tables().0);
        on_pool!(self, write, |pool| {
            sqlx::query(&sql).bind(account_sid).execute(pool).await.map(|r| r.rows_affected())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use super::*;
    use crate::domain::status::DeliveryStatus;
    use crate::store::Db;

    #[test]
    fn both_outboxes_spell_their_shared_states_alike() {
        assert_eq!(PushStatus::Sending.as_str(), DeliveryStatus::Sending.as_str());
        assert_eq!(PushStatus::Retrying.as_str(), DeliveryStatus::Retrying.as_str());
        assert_eq!(PushStatus::Failed.as_str(), DeliveryStatus::Failed.as_str());
    }

    async fn delivery_state(store: &Store) -> (String, i64) {
        let Db::Sqlite { read, .. } = &store.db else { unreachable!() };
        sqlx::query_as("SELECT status, attempts FROM webhook_deliveries")
            .fetch_one(&mut *read.acquire().await.unwrap())
            .await
            .unwrap()
    }

    fn outcome(at: i64, outcome: AttemptResult) -> AttemptOutcome {
        AttemptOutcome { at, http_status: Some(200), outcome, error: None, latency_ms: 1 }
    }

    /// A worker stalls past its lease, the row is taken back and claimed again, and that claim
    /// settles it: the first worker's late result must not overwrite that, nor may a late cancel.
    #[tokio::test]
    async fn a_lapsed_claim_does_not_overwrite_a_newer_settlement() {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        let insert = format!(
            "INSERT INTO webhook_deliveries (uuid, account_sid, service_sid, webhook_sid, url, version, \
             event_type, factor_sid, fields, status, attempts, max_attempts, next_attempt_at, date_created, \
             date_updated) VALUES ('u', 'AC', 'VA', 'YW', 'http://h', 'v2', 'factor.created', 'YF', '{{}}', {}, \
             0, 5, 0, 0, 0)",
            DeliveryStatus::Pending.sql()
        );
        store.run_script(Script::new().then(&insert, [])).await.unwrap();
        let first = store.claim_deliveries(100, 110, 10).await.unwrap();
        assert_eq!(store.reclaim_lapsed(Outbox::WebhookDeliveries, 111).await.unwrap(), 1, "the lease lapsed");
        let second = store.claim_deliveries(111, 121, 10).await.unwrap();
        assert_eq!((first.len(), second.len()), (1, 1), "the lapsed claim is claimed again");
        let id = second[0].id;
        let (sent, retry) = (outcome(112, AttemptResult::Sent), outcome(113, AttemptResult::Retry));
        let (delivered, retrying) = (DeliveryStatus::Delivered.as_str(), DeliveryStatus::Retrying.as_str());
        let settle = |attempts_before, outcome, status, next_attempt_at| Settled {
            id,
            attempts_before,
            outcome,
            status,
            next_attempt_at,
            event: None,
        };
        store.record_attempt(Outbox::WebhookDeliveries, settle(1, sent, delivered, 112)).await.unwrap();
        store.record_attempt(Outbox::WebhookDeliveries, settle(0, retry, retrying, 200)).await.unwrap();
        store.cancel_delivery(id, "webhook deleted", 114).await.unwrap();
        assert_eq!(delivery_state(&store).await, (DeliveryStatus::Delivered.to_string(), 2));
        let Db::Sqlite { read, .. } = &store.db else { unreachable!() };
        let logged: Vec<String> = sqlx::query_scalar("SELECT outcome FROM webhook_attempts ORDER BY id")
            .fetch_all(&mut *read.acquire().await.unwrap())
            .await
            .unwrap();
        let logged: Vec<AttemptResult> = logged.iter().map(|o| o.parse().unwrap()).collect();
        let expected = [AttemptResult::Retry, AttemptResult::Sent, AttemptResult::Retry];
        assert_eq!(logged, expected, "the interrupted, the settling and the late attempt are logged");
    }
}
