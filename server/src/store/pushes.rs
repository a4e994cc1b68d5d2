//! The push outbox: one row per push to send (or, in record mode, recorded), claimed by workers
//! with a lease so that a crashed worker's pushes are taken up again, and every attempt logged.

use super::challenges::ChallengeRow;
use super::live::{LiveEvent, Subject};
use super::outbox::{Logged, Outbox};
use super::script::Script;
use super::{on_pool, Arg, Backend, Page, Sql, Store, Window};
use crate::domain::status::{EventType, NotificationPlatform, PushStatus};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct PushRow {
    pub id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub factor_sid: String,
    pub challenge_sid: String,
    pub notification_sid: Option<String>,
    #[sqlx(try_from = "String")]
    pub platform: NotificationPlatform,
    /// The device token.
    pub target: String,
    /// The credential to send with; `None` in record mode.
    pub credential_sid: Option<String>,
    /// APNs topic (the app's bundle id).
    pub topic: String,
    /// The exact JSON body sent (APNs) or the `message` object (FCM).
    pub payload: String,
    pub expires_at: i64,
    #[sqlx(try_from = "String")]
    pub status: PushStatus,
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

/// The INSERT of a push, `?` placeholders in the order of [`push_args`].
/// (`SELECT … WHERE TRUE` rather than `VALUES`, so that it can be guarded.)
fn insert_push_sql() -> String {
    format!(
        "INSERT INTO pushes ({}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE TRUE",
        &COLUMNS[4..]
    )
}

fn push_args(p: &PushRow) -> [Arg; 19] {
    [
        Arg::text(&p.account_sid),
        Arg::text(&p.service_sid),
        Arg::text(&p.factor_sid),
        Arg::text(&p.challenge_sid),
        Arg::opt_text(p.notification_sid.as_deref()),
        Arg::text(p.platform.as_str()),
        Arg::text(&p.target),
        Arg::opt_text(p.credential_sid.as_deref()),
        Arg::text(&p.topic),
        Arg::text(&p.payload),
        Arg::Int(p.expires_at),
        Arg::text(p.status.as_str()),
        Arg::Int(p.attempts),
        Arg::Int(p.max_attempts),
        Arg::Int(p.next_attempt_at),
        Arg::opt_int(p.lease_until),
        Arg::opt_text(p.last_error.as_deref()),
        Arg::Int(p.date_created),
        Arg::Int(p.date_updated),
    ]
}

/// A live event about push `p` (`id`: `None` for the push stored with its Challenge).
pub fn live_event(kind: EventType, p: &PushRow, id: Option<i64>, at: i64) -> LiveEvent {
    let mut e = LiveEvent::new(kind, &p.account_sid, &p.service_sid, at, Subject::Push { id });
    e.factor_sid = Some(p.factor_sid.clone());
    e.challenge_sid = Some(p.challenge_sid.clone());
    e
}

impl Store {
    /// The push of a live event (`live::Subject::Push`), with its attempts: push `id`, or without
    /// one the push stored with Challenge `challenge_sid`; and that Challenge's identity.
    pub async fn push_of_event(
        &self,
        account_sid: &str,
        id: Option<i64>,
        challenge_sid: &str,
    ) -> Result<(Option<Logged<PushRow>>, Option<String>), sqlx::Error> {
        let attempt_log = Outbox::Pushes.attempt_log(self.backend());
        let mut sql = Sql::new(&format!("SELECT {COLUMNS}{attempt_log} FROM pushes WHERE "));
        sql.push("account_sid = ?", [Arg::text(account_sid)]);
        match id {
            Some(id) => sql.push(" AND id = ?", [Arg::Int(id)]),
            None => sql.push(" AND challenge_sid = ? AND notification_sid IS NULL", [Arg::text(challenge_sid)]),
        };
        let push = on_pool!(self, read, |pool| {
            super::bind_args!(sqlx::query_as::<_, Logged<PushRow>>(&sql.text), &sql.args).fetch_optional(pool).await
        })?;
        let identity = on_pool!(self, read, |pool| {
            sqlx::query_scalar::<_, String>("SELECT identity FROM challenges WHERE sid = $1")
                .bind(challenge_sid)
                .fetch_optional(pool)
                .await
        })?;
        Ok((push, identity))
    }

    /// Stores a Challenge and, in the same transaction, the push announcing it: both or neither.
    pub async fn insert_challenge_with_push(
        &self,
        c: &ChallengeRow,
        push: Option<&PushRow>,
    ) -> Result<i64, sqlx::Error> {
        let mut script = Script::new().then(
            &format!(
                "INSERT INTO challenges ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &super::challenges::COLUMNS[4..]
            ),
            [
                Arg::text(&c.sid),
                Arg::Int(c.entity_id),
                Arg::Int(c.factor_id),
                Arg::text(&c.account_sid),
                Arg::text(&c.service_sid),
                Arg::text(&c.entity_sid),
                Arg::text(&c.identity),
                Arg::text(&c.factor_sid),
                Arg::text(c.factor_type.as_str()),
                Arg::text(c.status.as_str()),
                Arg::text(&c.responded_reason),
                Arg::text(&c.details),
                Arg::opt_text(c.hidden_details.as_deref()),
                Arg::opt_text(c.metadata.as_deref()),
                Arg::Int(c.expiration_date),
                Arg::opt_int(c.date_responded),
                Arg::Int(c.date_created),
                Arg::Int(c.date_updated),
            ],
        );
        script = script.publish(super::challenges::live_event(EventType::ChallengeCreated, c, c.date_created));
        if let Some(p) = push {
            script = script.then(&insert_push_sql(), push_args(p));
            if p.status == PushStatus::Recorded {
                script = script.publish(live_event(EventType::PushRecorded, p, None, c.date_created));
            }
        }
        let ids = self.run_script(script).await?;
        ids.first().copied().ok_or(sqlx::Error::RowNotFound)
    }

    /// Stores a Notification and its push, unless the Challenge already has `max` Notifications.
    /// Returns false when the limit was reached.
    ///
    /// The no-op `UPDATE` locks the Challenge's row on PostgreSQL until the commit, so concurrent
    /// Notifications of one Challenge count one after the other, each seeing those committed
    /// before it (READ COMMITTED reads afresh per statement); SQLite has one writer.
    pub async fn insert_notification_with_push(
        &self,
        n: &NotificationRow,
        push: &PushRow,
        max: i64,
    ) -> Result<bool, sqlx::Error> {
        let script = Script::new()
            .then("UPDATE challenges SET date_updated = date_updated WHERE id = ?", [Arg::Int(n.challenge_id)])
            .then(
                "INSERT INTO notifications (sid, challenge_id, account_sid, service_sid, entity_sid, identity, \
                 challenge_sid, priority, ttl, date_created) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                 WHERE (SELECT COUNT(*) FROM notifications WHERE challenge_id = ?) < ? RETURNING id",
                [
                    Arg::text(&n.sid),
                    Arg::Int(n.challenge_id),
                    Arg::text(&n.account_sid),
                    Arg::text(&n.service_sid),
                    Arg::text(&n.entity_sid),
                    Arg::text(&n.identity),
                    Arg::text(&n.challenge_sid),
                    Arg::text(&n.priority),
                    Arg::Int(n.ttl),
                    Arg::Int(n.date_created),
                    Arg::Int(n.challenge_id),
                    Arg::Int(max),
                ],
            )
            .then_if_returned(&insert_push_sql(), push_args(push));
        Ok(!self.run_script(script).await?.is_empty())
    }

    /// Claims up to `limit` pushes that are due for sending, leasing them until `lease_until`
    /// (a lapsed lease is taken back by [`Store::reclaim_lapsed`], which logs its attempt).
    pub async fn claim_pushes(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<PushRow>, sqlx::Error> {
        let sql = claim_sql(self.backend());
        on_pool!(self, write, |pool| {
            sqlx::query_as::<_, PushRow>(&sql).bind(now).bind(lease_until).bind(limit).fetch_all(pool).await
        })
    }

    /// A page of an account's pushes, each with its attempts (one statement: see [`Logged`]).
    pub async fn list_pushes(
        &self,
        account_sid: &str,
        f: &PushFilter,
        window: &Window,
    ) -> Result<Page<Logged<PushRow>>, sqlx::Error> {
        let attempt_log = Outbox::Pushes.attempt_log(self.backend());
        let mut sql = Sql::new(&format!("SELECT {COLUMNS}{attempt_log} FROM pushes WHERE "));
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

/// The claim of [`Store::claim_pushes`] (`$1` now, `$2` lease end, `$3` limit): due pushes stream
/// from `pushes_due`, longest due first, and the scan stops at the limit — no sort of the whole
/// backlog. PostgreSQL skips rows another instance is claiming; SQLite has one writer.
pub(crate) fn claim_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let (sending, queued, retrying) = (PushStatus::Sending.sql(), PushStatus::Queued.sql(), PushStatus::Retrying.sql());
    format!(
        "UPDATE pushes SET status = {sending}, lease_until = $2, date_updated = $1 WHERE id IN (SELECT id FROM pushes \
         WHERE status IN ({queued}, {retrying}) AND next_attempt_at <= $1 LIMIT $3{lock}) RETURNING {COLUMNS}"
    )
}
