//! Challenges: one login request to one Factor.
//!
//! A pending Challenge past its `expiration_date` *is* expired, whether or not the sweeper has
//! written that yet: reads and list filters treat it so.

use super::deliveries::NewEvent;
use super::factors::FactorRow;
use super::pushes::{Announcing, NewPush};
use super::script::Script;
use super::{insert_sql, on_pool, violation, Arg, Page, Sql, Store, Violation, Window};
use std::sync::LazyLock;

use crate::domain::sid::ChallengeSid;
use crate::domain::status::{ChallengeStatus, FactorType};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChallengeRow {
    pub id: i64,
    pub sid: String,
    pub entity_id: i64,
    pub factor_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub entity_sid: String,
    pub identity: String,
    pub factor_sid: String,
    #[sqlx(try_from = "String")]
    pub factor_type: FactorType,
    #[sqlx(try_from = "String")]
    pub status: ChallengeStatus,
    pub responded_reason: String,
    /// `{"message", "date"?, "fields"}` as JSON text.
    pub details: String,
    pub hidden_details: Option<String>,
    pub metadata: Option<String>,
    pub expiration_date: i64,
    pub date_responded: Option<i64>,
    pub date_created: i64,
    pub date_updated: i64,
}

pub(crate) const COLUMNS: &str = "id, sid, entity_id, factor_id, account_sid, service_sid, entity_sid, \
    identity, factor_sid, factor_type, status, responded_reason, details, hidden_details, \
    metadata, expiration_date, date_responded, date_created, date_updated";

/// The columns a Challenge's creation sets, in the order of [`NewChallenge::args`].
const INSERT_COLUMNS: &str = "sid, entity_id, factor_id, account_sid, service_sid, entity_sid, identity, \
    factor_sid, factor_type, status, responded_reason, details, hidden_details, expiration_date, date_created, \
    date_updated";

/// What a new Challenge's `responded_reason` is.
const NOT_RESPONDED: &str = "none";

/// A Challenge to create for `factor`. It starts pending.
#[derive(Debug)]
pub struct NewChallenge<'a> {
    pub sid: ChallengeSid,
    pub factor: &'a FactorRow,
    /// `{"message", "date"?, "fields"}` as JSON text.
    pub details: String,
    pub hidden_details: Option<String>,
    pub expiration_date: i64,
    pub now: i64,
}

impl NewChallenge<'_> {
    /// The values of [`INSERT_COLUMNS`].
    fn args(&self) -> [Arg; 16] {
        let f = self.factor;
        [
            Arg::text(&self.sid),
            Arg::Int(f.entity_id),
            Arg::Int(f.id),
            Arg::text(&f.account_sid),
            Arg::text(&f.service_sid),
            Arg::text(&f.entity_sid),
            Arg::text(&f.identity),
            Arg::text(&f.sid),
            Arg::text(f.factor_type.as_str()),
            Arg::text(ChallengeStatus::Pending.as_str()),
            Arg::text(NOT_RESPONDED),
            Arg::text(&self.details),
            Arg::opt_text(self.hidden_details.as_deref()),
            Arg::Int(self.expiration_date),
            Arg::Int(self.now),
            Arg::Int(self.now),
        ]
    }

    /// What a push announcing this Challenge belongs to.
    fn announcing(&self) -> Announcing<'_> {
        Announcing {
            account_sid: &self.factor.account_sid,
            service_sid: &self.factor.service_sid,
            factor_sid: &self.factor.sid,
            challenge_sid: &self.sid,
            notification_sid: None,
        }
    }

    /// The row stored as `id`.
    fn row(self, id: i64) -> ChallengeRow {
        let f = self.factor;
        ChallengeRow {
            id,
            sid: self.sid.into(),
            entity_id: f.entity_id,
            factor_id: f.id,
            account_sid: f.account_sid.clone(),
            service_sid: f.service_sid.clone(),
            entity_sid: f.entity_sid.clone(),
            identity: f.identity.clone(),
            factor_sid: f.sid.clone(),
            factor_type: f.factor_type,
            status: ChallengeStatus::Pending,
            responded_reason: NOT_RESPONDED.to_owned(),
            details: self.details,
            hidden_details: self.hidden_details,
            metadata: None,
            expiration_date: self.expiration_date,
            date_responded: None,
            date_created: self.now,
            date_updated: self.now,
        }
    }
}

/// The outcome of [`Store::create_challenge`].
#[derive(Debug)]
pub enum ChallengeCreated {
    Created(Box<ChallengeRow>),
    /// The Factor was deleted since it was read.
    FactorGone,
}

/// The conditional answer: only a pending, unexpired Challenge takes it.
static RESPOND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE challenges SET status = ?, metadata = COALESCE(?, metadata), date_responded = ?, \
         date_updated = ? WHERE id = ? AND status = {PENDING} AND expiration_date > ? RETURNING id"
    )
});

/// The sweeper's expiry of a batch of overdue pending Challenges.
static EXPIRE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE challenges SET status = {EXPIRED}, date_updated = $1 WHERE status = {PENDING} AND id IN \
         (SELECT id FROM challenges WHERE status = {PENDING} AND expiration_date <= $1 LIMIT $2)"
    )
});

/// One pending Challenge expired now (a test control), as the sweeper expires an overdue one;
/// its expiration date moves to `now` when later, so it reads as expired everywhere.
static EXPIRE_ONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE challenges SET status = {EXPIRED}, expiration_date = CASE WHEN expiration_date > ? THEN ? \
         ELSE expiration_date END, date_updated = ? WHERE id = ? AND status = {PENDING} RETURNING id"
    )
});

static LIST_PENDING: LazyLock<String> = LazyLock::new(|| format!(" AND status = {PENDING} AND +expiration_date > ?"));
static LIST_EXPIRED: LazyLock<String> =
    LazyLock::new(|| format!(" AND (status = {EXPIRED} OR (status = {PENDING} AND expiration_date <= ?))"));

const PENDING: &str = ChallengeStatus::Pending.sql();
const EXPIRED: &str = ChallengeStatus::Expired.sql();

/// A Challenge list's filters.
#[derive(Debug, Default, Clone)]
pub struct ChallengeFilter {
    pub factor_sid: Option<String>,
    pub status: Option<ChallengeStatus>,
}

impl Store {
    /// Stores a Challenge and, in the same transaction, the push announcing it: both or neither.
    pub async fn create_challenge(
        &self,
        new: NewChallenge<'_>,
        push: Option<&NewPush>,
    ) -> Result<ChallengeCreated, sqlx::Error> {
        let mut script =
            Script::new().then(&format!("{} RETURNING id", insert_sql("challenges", INSERT_COLUMNS)), new.args());
        if let Some(push) = push {
            let (text, args) = push.insert(new.announcing());
            script = script.then(&text, args);
        }
        match self.run_insert(script).await {
            Ok(id) => Ok(ChallengeCreated::Created(Box::new(new.row(id)))),
            Err(e) if violation(&e) == Some(Violation::ForeignKey) => Ok(ChallengeCreated::FactorGone),
            Err(e) => Err(e),
        }
    }

    pub async fn challenge(
        &self,
        account_sid: &str,
        service_sid: &str,
        identity: &str,
        sid: &ChallengeSid,
    ) -> Result<Option<ChallengeRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM challenges WHERE sid = $1 AND service_sid = $2 \
             AND identity = $3 AND account_sid = $4"
        );
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, ChallengeRow>(&sql)
                .bind(sid.as_str())
                .bind(service_sid)
                .bind(identity)
                .bind(account_sid)
                .fetch_optional(pool)
                .await
        })
    }

    pub async fn list_challenges(
        &self,
        entity_id: i64,
        filter: &ChallengeFilter,
        now: i64,
        window: &Window,
    ) -> Result<Page<ChallengeRow>, sqlx::Error> {
        self.fetch_page(list_sql(entity_id, filter, now), window).await
    }

    /// Records a device's answer, only if the Challenge is still pending and unexpired at `now`.
    /// False when it was not (answered or expired meanwhile).
    pub async fn respond_challenge(
        &self,
        id: i64,
        status: ChallengeStatus,
        metadata: Option<&str>,
        now: i64,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let (text, args) = event.insert(self.backend());
        let script = Script::new()
            .then(
                &RESPOND,
                [
                    Arg::text(status.as_str()),
                    Arg::opt_text(metadata),
                    Arg::Int(now),
                    Arg::Int(now),
                    Arg::Int(id),
                    Arg::Int(now),
                ],
            )
            .then_if_returned(&text, args);
        Ok(!self.run_script(script).await?.is_empty())
    }

    /// A Challenge of `account_sid` named by its SID alone (the test controls' lookup).
    pub async fn account_challenge(&self, account_sid: &str, sid: &str) -> Result<Option<ChallengeRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM challenges WHERE sid = $1 AND account_sid = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, ChallengeRow>(&sql).bind(sid).bind(account_sid).fetch_optional(pool).await
        })
    }

    /// Expires the pending Challenge `id` at `now`, as if its expiration date had passed: the
    /// Challenge, and its pushes not yet sent (they expire with it, as they would have at its
    /// expiration date). False when it was not pending.
    pub async fn expire_challenge(&self, challenge: &ChallengeRow, now: i64) -> Result<bool, sqlx::Error> {
        let script = Script::new()
            .then(&EXPIRE_ONE, [Arg::Int(now), Arg::Int(now), Arg::Int(now), Arg::Int(challenge.id)])
            .then_if_returned(
                "UPDATE pushes SET expires_at = ? WHERE account_sid = ? AND challenge_sid = ? AND expires_at > ?",
                [Arg::Int(now), Arg::text(&challenge.account_sid), Arg::text(&challenge.sid), Arg::Int(now)],
            );
        Ok(!self.run_script(script).await?.is_empty())
    }

    /// Marks up to `batch` pending Challenges whose expiration has passed as expired. The outer
    /// `status` test is not redundant: PostgreSQL rechecks it on a row that an answer changed
    /// after the subquery read it, and then leaves the answer alone.
    pub async fn expire_challenges(&self, now: i64, batch: i64) -> Result<u64, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(&EXPIRE).bind(now).bind(batch).execute(pool).await.map(|r| r.rows_affected())
        })
    }
}

/// A Challenge list's query (without its window): an Entity's Challenges, filtered.
pub(crate) fn list_sql(entity_id: i64, filter: &ChallengeFilter, now: i64) -> Sql {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM challenges WHERE "));
    sql.push("entity_id = ?", [Arg::Int(entity_id)]);
    if let Some(factor_sid) = &filter.factor_sid {
        sql.push(" AND factor_id = (SELECT id FROM factors WHERE sid = ?)", [Arg::Text(factor_sid.clone())]);
    }
    match filter.status {
        None => {}
        Some(ChallengeStatus::Pending) => {
            // `+` keeps expiration_date from driving the plan: without statistics SQLite would
            // scan every pending challenge of the database (BENCHMARKS.md, device-poll at 1M).
            sql.push(&LIST_PENDING, [Arg::Int(now)]);
        }
        Some(ChallengeStatus::Expired) => {
            sql.push(&LIST_EXPIRED, [Arg::Int(now)]);
        }
        Some(other) => {
            sql.push(" AND status = ?", [Arg::text(other.as_str())]);
        }
    }
    sql
}
