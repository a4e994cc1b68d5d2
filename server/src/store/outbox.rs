//! What the two outboxes (pushes and webhook deliveries) share: the attempt log, the state
//! change that goes with each attempt, and clearing an account's history.

use super::script::Script;
use super::{on_pool, Arg, Sql, Store};

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
        // Only the claim that made this attempt settles the row: a worker whose lease lapsed and
        // whose row was claimed again (or cancelled) meanwhile finds the attempts counter moved
        // on (or the row no longer sending) and leaves the newer state alone.
        let update = format!(
            "UPDATE {table} SET status = ?, attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, \
             last_error = ?, date_updated = ? WHERE id = ? AND status = 'sending' AND attempts = ?"
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
                        Arg::Int(s.attempts_before),
                    ],
                );
        }
        self.run_script(script).await.map(|_| ())
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

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use super::*;
    use crate::store::Db;

    async fn delivery_state(store: &Store) -> (String, i64) {
        let Db::Sqlite { read, .. } = &store.db else { unreachable!() };
        sqlx::query_as("SELECT status, attempts FROM webhook_deliveries")
            .fetch_one(&mut *read.acquire().await.unwrap())
            .await
            .unwrap()
    }

    fn outcome(at: i64, outcome: &'static str) -> AttemptOutcome {
        AttemptOutcome { at, http_status: Some(200), outcome, error: None, latency_ms: 1 }
    }

    /// A worker stalls past its lease, another claims the row again and settles it: the first
    /// one's late result must not overwrite that, nor may a late cancel.
    #[tokio::test]
    async fn a_lapsed_claim_does_not_overwrite_a_newer_settlement() {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        let insert = "INSERT INTO webhook_deliveries (uuid, account_sid, service_sid, webhook_sid, url, version, \
            event_type, factor_sid, fields, status, attempts, max_attempts, next_attempt_at, date_created, date_updated) \
            VALUES ('u', 'AC', 'VA', 'YW', 'http://h', 'v2', 'factor.created', 'YF', '{}', 'pending', 0, 5, 0, 0, 0)";
        store.run_script(Script::new().then(insert, [])).await.unwrap();
        let first = store.claim_deliveries(100, 110, 10).await.unwrap();
        let second = store.claim_deliveries(111, 121, 10).await.unwrap();
        assert_eq!((first.len(), second.len()), (1, 1), "the lapsed lease is claimed again");
        let id = second[0].id;
        store.record_attempt(Outbox::WebhookDeliveries, id, 0, &outcome(112, "sent"), "delivered", 112).await.unwrap();
        store.record_attempt(Outbox::WebhookDeliveries, id, 0, &outcome(113, "retry"), "retrying", 200).await.unwrap();
        store.cancel_delivery(id, "webhook deleted", 114).await.unwrap();
        assert_eq!(delivery_state(&store).await, ("delivered".to_owned(), 1));
        assert_eq!(
            store.attempts(Outbox::WebhookDeliveries, &[id]).await.unwrap().len(),
            2,
            "both attempts are logged"
        );
    }
}
