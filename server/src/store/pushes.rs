//! The push outbox: one row per push to send (or, in record mode, recorded), claimed by workers
//! with a lease so that a crashed worker's pushes are taken up again, and every attempt logged.

use super::challenges::ChallengeRow;
use super::{on_pool, Arg, Db, Page, Sql, Store, Window};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct PushRow {
    pub id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub factor_sid: String,
    pub challenge_sid: String,
    pub notification_sid: Option<String>,
    /// `apn` or `fcm`.
    pub platform: String,
    /// The device token.
    pub target: String,
    /// The credential to send with; `None` in record mode.
    pub credential_sid: Option<String>,
    /// APNs topic (the app's bundle id).
    pub topic: String,
    /// The exact JSON body sent (APNs) or the `message` object (FCM).
    pub payload: String,
    pub expires_at: i64,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub sid: String,
    pub challenge_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub entity_sid: String,
    pub identity: String,
    pub challenge_sid: String,
    pub priority: String,
    pub ttl: i64,
    pub date_created: i64,
}

/// Filters of the push inspection list.
#[derive(Debug, Default, Clone)]
pub struct PushFilter {
    pub service_sid: Option<String>,
    pub factor_sid: Option<String>,
    pub challenge_sid: Option<String>,
    pub platform: Option<String>,
    pub status: Option<String>,
}

const COLUMNS: &str = "id, account_sid, service_sid, factor_sid, challenge_sid, notification_sid, platform, target, \
    credential_sid, topic, payload, expires_at, status, attempts, max_attempts, next_attempt_at, lease_until, \
    last_error, date_created, date_updated";

macro_rules! insert_push {
    ($tx:expr, $p:expr) => {
        sqlx::query(&format!(
            "INSERT INTO pushes ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19)",
            &COLUMNS[4..]
        ))
        .bind(&$p.account_sid)
        .bind(&$p.service_sid)
        .bind(&$p.factor_sid)
        .bind(&$p.challenge_sid)
        .bind(&$p.notification_sid)
        .bind(&$p.platform)
        .bind(&$p.target)
        .bind(&$p.credential_sid)
        .bind(&$p.topic)
        .bind(&$p.payload)
        .bind($p.expires_at)
        .bind(&$p.status)
        .bind($p.attempts)
        .bind($p.max_attempts)
        .bind($p.next_attempt_at)
        .bind($p.lease_until)
        .bind(&$p.last_error)
        .bind($p.date_created)
        .bind($p.date_updated)
        .execute(&mut *$tx)
        .await?
    };
}

impl Store {
    /// Stores a Challenge and, in the same transaction, the push announcing it: both or neither.
    pub async fn insert_challenge_with_push(
        &self,
        c: &ChallengeRow,
        push: Option<&PushRow>,
    ) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "INSERT INTO challenges ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13, $14, $15, $16, $17, $18) RETURNING id",
            &super::challenges::COLUMNS[4..]
        );
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let id = sqlx::query_scalar::<_, i64>(&sql)
                .bind(&c.sid)
                .bind(c.entity_id)
                .bind(c.factor_id)
                .bind(&c.account_sid)
                .bind(&c.service_sid)
                .bind(&c.entity_sid)
                .bind(&c.identity)
                .bind(&c.factor_sid)
                .bind(&c.factor_type)
                .bind(&c.status)
                .bind(&c.responded_reason)
                .bind(&c.details)
                .bind(&c.hidden_details)
                .bind(&c.metadata)
                .bind(c.expiration_date)
                .bind(c.date_responded)
                .bind(c.date_created)
                .bind(c.date_updated)
                .fetch_one(&mut *tx)
                .await?;
            if let Some(p) = push {
                insert_push!(tx, p);
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Stores a Notification and its push, unless the Challenge already has `max` Notifications.
    /// Returns false when the limit was reached.
    pub async fn insert_notification_with_push(
        &self,
        n: &NotificationRow,
        push: &PushRow,
        max: i64,
    ) -> Result<bool, sqlx::Error> {
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE challenge_id = $1")
                .bind(n.challenge_id)
                .fetch_one(&mut *tx)
                .await?;
            if existing >= max {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO notifications (sid, challenge_id, account_sid, service_sid, entity_sid, identity, \
                 challenge_sid, priority, ttl, date_created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&n.sid)
            .bind(n.challenge_id)
            .bind(&n.account_sid)
            .bind(&n.service_sid)
            .bind(&n.entity_sid)
            .bind(&n.identity)
            .bind(&n.challenge_sid)
            .bind(&n.priority)
            .bind(n.ttl)
            .bind(n.date_created)
            .execute(&mut *tx)
            .await?;
            insert_push!(tx, push);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Claims up to `limit` pushes that are due (or whose sender's lease ran out) for sending,
    /// leasing them until `lease_until`.
    pub async fn claim_pushes(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<PushRow>, sqlx::Error> {
        let due = "SELECT id FROM pushes WHERE (status IN ('queued', 'retrying') AND next_attempt_at <= $1) \
                   OR (status = 'sending' AND lease_until <= $1) ORDER BY id LIMIT $3";
        // PostgreSQL: skip rows another instance is claiming. SQLite has one writer.
        let lock = match self.db {
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Db::Sqlite { .. } => "",
        };
        let sql = format!(
            "UPDATE pushes SET status = 'sending', lease_until = $2, date_updated = $1 WHERE id IN ({due}{lock}) \
             RETURNING {COLUMNS}"
        );
        on_pool!(self, write, |pool| {
            sqlx::query_as::<_, PushRow>(&sql).bind(now).bind(lease_until).bind(limit).fetch_all(pool).await
        })
    }

    pub async fn list_pushes(
        &self,
        account_sid: &str,
        f: &PushFilter,
        window: &Window,
    ) -> Result<Page<PushRow>, sqlx::Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM pushes WHERE "));
        sql.push("account_sid = ?", [Arg::Text(account_sid.to_owned())]);
        sql.push_filters(&[
            ("service_sid", &f.service_sid),
            ("factor_sid", &f.factor_sid),
            ("challenge_sid", &f.challenge_sid),
            ("platform", &f.platform),
            ("status", &f.status),
        ]);
        self.fetch_page(sql, window).await
    }
}
