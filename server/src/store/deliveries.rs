//! Webhook deliveries. An event ([`NewEvent`]) is recorded inside the transaction of the change
//! that causes it, by one `INSERT … SELECT` (`NewEvent::insert`): one delivery per enabled
//! webhook of the Service whose `EventTypes` match (`*` matches all). Most changes send that
//! statement as part of their `Script` (`script.rs`); Factor creation runs it in its own
//! transaction. Workers claim deliveries with a lease, in order per
//! (webhook, factor); a lapsed lease is taken back by `Store::reclaim_lapsed` (`outbox.rs`).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::outbox::{Logged, Outbox};
use super::{on_pool, Arg, Backend, Page, Sql, Store, Window};

/// An event to record with a change.
use crate::domain::status::{DeliveryStatus, WebhookStatus};

/// A claimed delivery whose webhook was disabled or deleted: cancelled, if still this claim's.
static CANCEL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE webhook_deliveries SET status = {}, lease_until = NULL, last_error = $2, date_updated = $3 \
         WHERE id = $1 AND status = {}",
        DeliveryStatus::Cancelled.sql(),
        DeliveryStatus::Sending.sql()
    )
});

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub account_sid: String,
    pub service_sid: String,
    pub factor_sid: String,
    pub event_type: &'static str,
    /// Every field of the v2 payload (strings), without `uuid` (per delivery).
    pub fields: Map<String, Value>,
    pub max_attempts: i64,
    pub now: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub uuid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub webhook_sid: String,
    pub url: String,
    pub version: String,
    pub event_type: String,
    pub factor_sid: String,
    pub fields: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
}

/// Where a webhook's deliveries go now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookTarget {
    pub sid: String,
    pub service_sid: String,
    pub webhook_url: String,
    pub version: String,
    #[sqlx(try_from = "String")]
    pub status: WebhookStatus,
}

#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub service_sid: Option<String>,
    pub webhook_sid: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
}

pub(crate) const COLUMNS: &str =
    "id, uuid, account_sid, service_sid, webhook_sid, url, version, event_type, factor_sid, \
    fields, status, attempts, max_attempts, next_attempt_at, lease_until, last_error, date_created, date_updated";

/// A version-4 UUID made by the database, one per row (SQLite has no UUID function).
fn uuid_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "gen_random_uuid()::text",
        Backend::Sqlite => {
            "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' \
             || substr('89ab', 1 + (random() & 3), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
        }
    }
}

impl NewEvent {
    /// The statement that records this event: one delivery per enabled webhook of its Service
    /// subscribed to it (`EventTypes` holds `*` or the event's type), each with its own UUID —
    /// one `INSERT … SELECT`, as the number of webhooks is not known here. `?` placeholders; it
    /// ends in its `WHERE` clause (see [`super::script::Script::then_if_returned`]).
    pub(crate) fn insert(&self, backend: Backend) -> (String, Vec<Arg>) {
        let text = format!(
            "INSERT INTO webhook_deliveries (uuid, account_sid, service_sid, webhook_sid, url, version, event_type, \
             factor_sid, fields, status, attempts, max_attempts, next_attempt_at, lease_until, last_error, \
             date_created, date_updated) SELECT {}, ?, service_sid, sid, webhook_url, version, ?, ?, ?, {}, 0, \
             ?, ?, NULL, NULL, ?, ? FROM webhooks WHERE service_sid = ? AND status = {} \
             AND ((',' || event_types || ',') LIKE '%,*,%' OR (',' || event_types || ',') LIKE ?)",
            uuid_sql(backend),
            DeliveryStatus::Pending.sql(),
            WebhookStatus::Enabled.sql()
        );
        let args = vec![
            Arg::text(&self.account_sid),
            Arg::text(self.event_type),
            Arg::text(&self.factor_sid),
            Arg::Text(Value::Object(self.fields.clone()).to_string()),
            Arg::Int(self.max_attempts),
            Arg::Int(self.now),
            Arg::Int(self.now),
            Arg::Int(self.now),
            Arg::text(&self.service_sid),
            // Event types are letters and dots: nothing in them is a LIKE wildcard.
            Arg::Text(format!("%,{},%", self.event_type)),
        ];
        (text, args)
    }
}

impl Store {
    /// Claims due deliveries, longest due first, skipping any whose (webhook, factor) has an
    /// earlier delivery still outstanding: events reach each receiver in order per factor. (A
    /// lapsed lease is taken back by [`Store::reclaim_lapsed`], which logs its attempt.)
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, sqlx::Error> {
        let sql = claim_sql(self.backend());
        on_pool!(self, write, |pool| {
            sqlx::query_as::<_, DeliveryRow>(&sql).bind(now).bind(lease_until).bind(limit).fetch_all(pool).await
        })
    }

    /// Marks a claimed delivery cancelled (its webhook was disabled or deleted) without an
    /// attempt; not one that another claim settled meanwhile.
    pub async fn cancel_delivery(&self, id: i64, reason: &str, now: i64) -> Result<(), sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(&CANCEL).bind(id).bind(reason).bind(now).execute(pool).await.map(|_| ())
        })
    }

    /// The current URL, version and status of each of these webhooks that still exists, by SID.
    pub async fn webhook_targets(&self, sids: &[&str]) -> Result<HashMap<String, WebhookTarget>, sqlx::Error> {
        if sids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = Sql::new("SELECT sid, service_sid, webhook_url, version, status FROM webhooks WHERE sid IN (");
        for (i, sid) in sids.iter().enumerate() {
            sql.push(if i == 0 { "?" } else { ", ?" }, [Arg::text(sid)]);
        }
        sql.push(")", []);
        let rows: Vec<WebhookTarget> = on_pool!(self, read, |pool| {
            super::bind_args!(sqlx::query_as::<_, WebhookTarget>(&sql.text), &sql.args).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|t| (t.sid.clone(), t)).collect())
    }

    /// A page of an account's deliveries, each with its attempts (one statement: see [`Logged`]).
    pub async fn list_deliveries(
        &self,
        account_sid: &str,
        f: &DeliveryFilter,
        window: &Window,
    ) -> Result<Page<Logged<DeliveryRow>>, sqlx::Error> {
        let attempt_log = Outbox::WebhookDeliveries.attempt_log(self.backend());
        let mut sql = Sql::new(&format!("SELECT {COLUMNS}{attempt_log} FROM webhook_deliveries WHERE "));
        sql.push("account_sid = ?", [Arg::Text(account_sid.to_owned())]);
        sql.push_filters(&[
            ("service_sid", &f.service_sid),
            ("webhook_sid", &f.webhook_sid),
            ("event_type", &f.event_type),
            ("status", &f.status),
        ]);
        self.fetch_page(sql, window).await
    }
}

/// The claim of [`Store::claim_deliveries`] (`$1` now, `$2` lease end, `$3` limit). "Earlier open
/// delivery" is one seek into the partial index `webhook_deliveries_open` (migration 0004), whose
/// condition the subquery repeats word for word so that both engines may use it. There is no `ORDER
/// BY`: candidates stream from `webhook_deliveries_due` (longest due first) and the scan stops at
/// the limit, so a claim costs the same with a backlog of ten or of a million; sorting the backlog
/// made every claim O(backlog) on the writer (BENCHMARKS.md, "What changed" 5). Order per (webhook,
/// factor) comes from the `NOT EXISTS`, not from the scan.
pub(crate) fn claim_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let (pending, retrying, sending) =
        (DeliveryStatus::Pending.sql(), DeliveryStatus::Retrying.sql(), DeliveryStatus::Sending.sql());
    format!(
        "UPDATE webhook_deliveries SET status = {sending}, lease_until = $2, date_updated = $1 WHERE id IN (\
         SELECT d.id FROM webhook_deliveries d WHERE d.status IN ({pending}, {retrying}) AND d.next_attempt_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
         WHERE e.webhook_sid = d.webhook_sid AND e.factor_sid = d.factor_sid AND e.id < d.id \
         AND e.status IN ({pending}, {retrying}, {sending})) LIMIT $3{lock}) RETURNING {COLUMNS}"
    )
}
