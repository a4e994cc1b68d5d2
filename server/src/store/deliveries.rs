//! Webhook deliveries. An event is recorded by [`record_event!`] inside the transaction of the
//! change that causes it: one delivery per enabled webhook of the Service whose `EventTypes`
//! match (`*` matches all). Workers claim them with a lease, in order per (webhook, factor).

use serde_json::{Map, Value};

use super::{on_pool, Arg, Db, Page, Sql, Store, Window};

/// An event to record with a change.
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
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
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

/// A random RFC 4122 version-4 UUID.
pub fn uuid_v4() -> String {
    let mut b = crate::domain::sid::random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Whether a webhook subscribed to `event_types` (comma-separated) receives `event`.
pub fn subscribes(event_types: &str, event: &str) -> bool {
    event_types.split(',').any(|t| t == "*" || t == event)
}

/// Inside an open transaction `$tx`: records `$event` (a `&NewEvent`) as one delivery per
/// matching enabled webhook.
macro_rules! record_event {
    ($tx:expr, $event:expr) => {{
        let event: &$crate::store::deliveries::NewEvent = $event;
        let hooks: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT sid, webhook_url, version, event_types FROM webhooks WHERE service_sid = $1 AND status = 'enabled' \
             ORDER BY id",
        )
        .bind(&event.service_sid)
        .fetch_all(&mut *$tx)
        .await?;
        let fields = serde_json::Value::Object(event.fields.clone()).to_string();
        for (sid, url, version, types) in hooks {
            if !$crate::store::deliveries::subscribes(&types, event.event_type) {
                continue;
            }
            sqlx::query(
                "INSERT INTO webhook_deliveries (uuid, account_sid, service_sid, webhook_sid, url, version, event_type, \
                 factor_sid, fields, status, attempts, max_attempts, next_attempt_at, lease_until, last_error, \
                 date_created, date_updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $11, NULL, \
                 NULL, $11, $11)",
            )
            .bind($crate::store::deliveries::uuid_v4())
            .bind(&event.account_sid)
            .bind(&event.service_sid)
            .bind(&sid)
            .bind(&url)
            .bind(&version)
            .bind(event.event_type)
            .bind(&event.factor_sid)
            .bind(&fields)
            .bind(event.max_attempts)
            .bind(event.now)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(crate) use record_event;

impl Store {
    /// Claims due deliveries, oldest first, skipping any whose (webhook, factor) has an earlier
    /// delivery still outstanding: events reach each receiver in order per factor.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, sqlx::Error> {
        let lock = match self.db {
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Db::Sqlite { .. } => "",
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'sending', lease_until = $2, date_updated = $1 WHERE id IN (\
             SELECT d.id FROM webhook_deliveries d WHERE ((d.status IN ('pending', 'retrying') AND d.next_attempt_at <= $1) \
             OR (d.status = 'sending' AND d.lease_until <= $1)) AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
             WHERE e.webhook_sid = d.webhook_sid AND e.factor_sid = d.factor_sid AND e.id < d.id \
             AND e.status IN ('pending', 'retrying', 'sending')) ORDER BY d.id LIMIT $3{lock}) RETURNING {COLUMNS}"
        );
        on_pool!(self, write, |pool| {
            sqlx::query_as::<_, DeliveryRow>(&sql).bind(now).bind(lease_until).bind(limit).fetch_all(pool).await
        })
    }

    /// Marks a delivery cancelled (its webhook was disabled or deleted) without an attempt.
    pub async fn cancel_delivery(&self, id: i64, reason: &str, now: i64) -> Result<(), sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'cancelled', lease_until = NULL, last_error = $2, date_updated = $3 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(reason)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// The current URL, version and status of a webhook (None when deleted).
    pub async fn webhook_target(
        &self,
        service_sid: &str,
        sid: &str,
    ) -> Result<Option<(String, String, String)>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT webhook_url, version, status FROM webhooks WHERE sid = $1 AND service_sid = $2",
            )
            .bind(sid)
            .bind(service_sid)
            .fetch_optional(pool)
            .await
        })
    }

    pub async fn list_deliveries(
        &self,
        account_sid: &str,
        f: &DeliveryFilter,
        window: &Window,
    ) -> Result<Page<DeliveryRow>, sqlx::Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM webhook_deliveries WHERE "));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, uuid_v4());
    }

    #[test]
    fn star_subscribes_to_everything() {
        assert!(subscribes("*", "factor.created"));
        assert!(subscribes("factor.verified,challenge.approved", "challenge.approved"));
        assert!(!subscribes("factor.verified", "challenge.approved"));
    }
}
