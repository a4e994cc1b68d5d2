//! The push outbox: one row per push to send (or, in record mode, recorded), claimed by workers
//! with a lease so that a crashed worker's pushes are taken up again, and every attempt logged.

use super::outbox::{Logged, Outbox};
use super::{on_pool, placeholders, Arg, Backend, Page, Sql, Store, Window};
use crate::domain::status::{NotificationPlatform, PushStatus};

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

/// A push to store with the Challenge or Notification it announces (which give its SIDs).
#[derive(Debug, Clone)]
pub struct NewPush {
    pub platform: NotificationPlatform,
    /// The device token.
    pub target: String,
    /// The credential to send with; `None` in record mode.
    pub credential_sid: Option<String>,
    /// APNs topic (the app's bundle id).
    pub topic: String,
    /// The exact JSON body to send (APNs) or the `message` object (FCM).
    pub payload: String,
    pub expires_at: i64,
    /// `queued`, or `recorded` in record mode.
    pub status: PushStatus,
    pub max_attempts: i64,
    pub now: i64,
}

/// What a push announces: its Challenge, and the Notification that re-sends it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Announcing<'a> {
    pub account_sid: &'a str,
    pub service_sid: &'a str,
    pub factor_sid: &'a str,
    pub challenge_sid: &'a str,
    pub notification_sid: Option<&'a str>,
}

/// The columns a push's creation sets, in the order of [`NewPush::insert`]'s arguments.
const INSERT_COLUMNS: &str = "account_sid, service_sid, factor_sid, challenge_sid, notification_sid, platform, \
    target, credential_sid, topic, payload, expires_at, status, attempts, max_attempts, next_attempt_at, \
    date_created, date_updated";

impl NewPush {
    /// The INSERT of this push announcing `of`, `?` placeholders, for a [`super::script::Script`]
    /// (`SELECT … WHERE TRUE` rather than `VALUES`, so that it can be guarded).
    pub(crate) fn insert(&self, of: Announcing<'_>) -> (String, Vec<Arg>) {
        let text = format!("INSERT INTO pushes ({INSERT_COLUMNS}) SELECT {} WHERE TRUE", placeholders(INSERT_COLUMNS));
        let args = vec![
            Arg::text(of.account_sid),
            Arg::text(of.service_sid),
            Arg::text(of.factor_sid),
            Arg::text(of.challenge_sid),
            Arg::opt_text(of.notification_sid),
            Arg::text(self.platform.as_str()),
            Arg::text(&self.target),
            Arg::opt_text(self.credential_sid.as_deref()),
            Arg::text(&self.topic),
            Arg::text(&self.payload),
            Arg::Int(self.expires_at),
            Arg::text(self.status.as_str()),
            Arg::Int(0),
            Arg::Int(self.max_attempts),
            Arg::Int(self.now),
            Arg::Int(self.now),
            Arg::Int(self.now),
        ];
        (text, args)
    }
}

impl Store {
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
