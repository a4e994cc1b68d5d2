//! Factors: a device key (push) bound to an Entity.

use sqlx::{Connection as _, FromRow as _, Row as _};

use std::sync::LazyLock;

use super::deliveries::NewEvent;
use super::entities::{self, count_entity_creation_args, EntityRow, NewEntity, COUNT_ENTITY_CREATION};
use super::live::{LiveEvent, Subject};
use super::script::Script;
use super::services::ServiceRow;
use super::{bind_args, insert_sql, on_pool, violation, Arg, Page, Sql, Store, Violation, Window};
use crate::domain::rules::day_of;
use crate::domain::sid::{CredentialSid, EntitySid, FactorSid};
use crate::domain::status::{EventType, FactorStatus, FactorType};

/// The sweeper's delete of a batch of stale unverified Factors.
static DELETE_STALE: LazyLock<String> = LazyLock::new(|| {
    let unverified = FactorStatus::Unverified.sql();
    format!(
        "DELETE FROM factors WHERE status = {unverified} AND id IN (SELECT id FROM factors \
         WHERE status = {unverified} AND date_created <= $1 LIMIT $2)"
    )
});

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct FactorRow {
    pub id: i64,
    pub sid: String,
    pub entity_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub entity_sid: String,
    pub identity: String,
    pub friendly_name: String,
    #[sqlx(try_from = "String")]
    pub factor_type: FactorType,
    #[sqlx(try_from = "String")]
    pub status: FactorStatus,
    pub binding_alg: String,
    /// Base64 SPKI DER, as the device sent it.
    pub binding_public_key: String,
    /// The `config.credential_sid` the SDK uses as its JWT `kid`.
    pub credential_sid: String,
    /// The push config (`sdk_version`, `app_id`, `notification_platform`, `notification_token`)
    /// as a JSON object.
    pub config: String,
    pub metadata: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
}

const COLUMNS: &str = "id, sid, entity_id, account_sid, service_sid, entity_sid, identity, \
    friendly_name, factor_type, status, binding_alg, binding_public_key, credential_sid, config, \
    metadata, date_created, date_updated";

/// The columns a Factor's creation sets.
const INSERT_COLUMNS: &str = "sid, entity_id, account_sid, service_sid, entity_sid, identity, friendly_name, \
    factor_type, status, binding_alg, binding_public_key, credential_sid, config, metadata, date_created, \
    date_updated";

/// A Factor to create for `identity` in `service` (with its Entity, `entity_sid`, if the
/// identity is new). It starts unverified.
#[derive(Debug)]
pub struct NewFactor<'a> {
    pub sid: FactorSid,
    pub service: &'a ServiceRow,
    pub identity: &'a str,
    /// The SID of the Entity, if this creation creates it.
    pub entity_sid: EntitySid,
    pub friendly_name: &'a str,
    pub factor_type: FactorType,
    pub binding_alg: &'a str,
    /// Base64 SPKI DER, as the device sent it.
    pub binding_public_key: &'a str,
    pub credential_sid: CredentialSid,
    /// The config as a JSON object.
    pub config: String,
    pub metadata: Option<String>,
    pub now: i64,
}

impl NewFactor<'_> {
    /// The values of [`INSERT_COLUMNS`], for `entity`.
    fn args(&self, entity: &EntityRow) -> [Arg; 16] {
        [
            Arg::text(&self.sid),
            Arg::Int(entity.id),
            Arg::text(&entity.account_sid),
            Arg::text(&entity.service_sid),
            Arg::text(&entity.sid),
            Arg::text(&entity.identity),
            Arg::text(self.friendly_name),
            Arg::text(self.factor_type.as_str()),
            Arg::text(FactorStatus::Unverified.as_str()),
            Arg::text(self.binding_alg),
            Arg::text(self.binding_public_key),
            Arg::text(&self.credential_sid),
            Arg::text(&self.config),
            Arg::opt_text(self.metadata.as_deref()),
            Arg::Int(self.now),
            Arg::Int(self.now),
        ]
    }
}

/// The outcome of [`Store::create_factor`].
#[derive(Debug)]
pub enum FactorCreated {
    Created(Box<FactorRow>),
    /// The Entity already has `per_type` Factors of this type.
    LimitReached,
    /// The Entity already has a Factor with this public key.
    DuplicateBinding,
    /// The Entity had `per_day` Factor creations today.
    DailyLimitReached,
    /// The identity is new and its account created its most Entities this second.
    EntityRateLimited,
    /// The Service was deleted meanwhile.
    ServiceGone,
}

/// The limits a Factor creation is held to.
#[derive(Debug, Clone, Copy)]
pub struct FactorLimits {
    /// Factors of one type an Entity may hold.
    pub per_type: i64,
    /// Factor creations per Entity per day, when rate limits are on; the Entity creation a new
    /// identity causes then counts against its account's per-second limit too.
    pub per_day: Option<i64>,
}

/// Creates the Entity, or counts a Factor creation on it: `factors_that_day` restarts each day.
/// On PostgreSQL the row stays locked until the transaction ends (inserted or updated alike),
/// so Factor creations on one Entity run one after the other and each one's checks see the
/// Factors the others stored (READ COMMITTED: every statement reads what committed before it).
/// `?`: the Entity's [`entities::INSERT_COLUMNS`], then the day.
static UPSERT_ENTITY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO entities ({}, factor_day, factors_that_day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) \
         ON CONFLICT (service_id, identity) DO UPDATE SET factors_that_day = CASE \
         WHEN entities.factor_day = excluded.factor_day THEN entities.factors_that_day + 1 ELSE 1 END, \
         factor_day = excluded.factor_day \
         RETURNING id, sid, service_id, account_sid, service_sid, identity, date_created, date_updated, factors_that_day",
        entities::INSERT_COLUMNS
    )
});

/// A live event about Factor `f` as it is now.
pub fn live_event(kind: EventType, f: &FactorRow, at: i64) -> LiveEvent {
    let row = serde_json::to_value(f).unwrap_or_default();
    let mut e = LiveEvent::new(kind, &f.account_sid, &f.service_sid, at, Subject::Factor(row));
    e.identity = Some(f.identity.clone());
    e.factor_sid = Some(f.sid.clone());
    e
}

impl Store {
    /// Creates the Factor, and its Entity when the identity is new, within `limits`, with the
    /// event `event` makes of the stored Factor.
    ///
    /// An interactive transaction, the one exception to the Script rule (docs/ARCHITECTURE.md,
    /// "Writes"): which statement comes next depends on what the upsert returned (a new Entity
    /// counts against its account, a day's count past the limit refuses) and on the counts read
    /// after it, and a refusal must roll back the counters already bumped.
    pub async fn create_factor(
        &self,
        new: &NewFactor<'_>,
        limits: FactorLimits,
        event: impl FnOnce(&FactorRow) -> NewEvent,
    ) -> Result<FactorCreated, sqlx::Error> {
        let entity =
            NewEntity { sid: new.entity_sid.clone(), service: new.service, identity: new.identity, now: new.now };
        let upsert = Sql::statement(&UPSERT_ENTITY, entity.args().into_iter().chain([Arg::Int(day_of(new.now))]));
        let count_entity =
            Sql::statement(COUNT_ENTITY_CREATION, count_entity_creation_args(&entity.service.account_sid, new.now));
        let insert_factor = format!("{} RETURNING {COLUMNS}", insert_sql("factors", INSERT_COLUMNS));
        let backend = self.backend();
        let created = on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row = bind_args!(sqlx::query(&upsert.text), &upsert.args).fetch_one(&mut *tx).await?;
            let stored = EntityRow::from_row(&row)?;
            if let Some(per_day) = limits.per_day {
                // A new identity: the row returned is the one just inserted.
                if stored.sid == entity.sid.as_str() {
                    let counted =
                        bind_args!(sqlx::query(&count_entity.text), &count_entity.args).execute(&mut *tx).await;
                    match counted {
                        Err(e) if violation(&e) == Some(Violation::Check) => {
                            return Ok(FactorCreated::EntityRateLimited)
                        }
                        other => other.map(|_| ())?,
                    }
                }
                if row.try_get::<i64, _>("factors_that_day")? > per_day {
                    return Ok(FactorCreated::DailyLimitReached);
                }
            }
            let (same_type, same_key): (i64, i64) = sqlx::query_as(
                "SELECT \
                   (SELECT COUNT(*) FROM factors WHERE entity_id = $1 AND factor_type = $2), \
                   (SELECT COUNT(*) FROM factors WHERE entity_id = $1 AND binding_public_key = $3)",
            )
            .bind(stored.id)
            .bind(new.factor_type.as_str())
            .bind(new.binding_public_key)
            .fetch_one(&mut *tx)
            .await?;
            if same_type >= limits.per_type {
                return Ok(FactorCreated::LimitReached);
            }
            if same_key > 0 {
                return Ok(FactorCreated::DuplicateBinding);
            }
            let insert = Sql::statement(&insert_factor, new.args(&stored));
            let factor =
                bind_args!(sqlx::query_as::<_, FactorRow>(&insert.text), &insert.args).fetch_one(&mut *tx).await?;
            let (text, args) = event(&factor).insert(backend);
            let record = Sql::statement(&text, args);
            bind_args!(sqlx::query(&record.text), &record.args).execute(&mut *tx).await?;
            let live = [live_event(EventType::FactorCreated, &factor, factor.date_created)];
            if let Some(sql) = self.live.notify(backend, &live) {
                bind_args!(sqlx::query(&sql.text), &sql.args).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            self.live.committed(self.backend(), &live);
            Ok(FactorCreated::Created(Box::new(factor)))
        });
        match created {
            Err(e) if violation(&e) == Some(Violation::ForeignKey) => Ok(FactorCreated::ServiceGone),
            other => other,
        }
    }

    /// The Factor `sid` of `identity` in Service `service_sid` of `account_sid`.
    pub async fn factor(
        &self,
        account_sid: &str,
        service_sid: &str,
        identity: &str,
        sid: &str,
    ) -> Result<Option<FactorRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM factors WHERE sid = $1 AND service_sid = $2 AND identity = $3 \
             AND account_sid = $4"
        );
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, FactorRow>(&sql)
                .bind(sid)
                .bind(service_sid)
                .bind(identity)
                .bind(account_sid)
                .fetch_optional(pool)
                .await
        })
    }

    /// The Factor `sid` in whatever account, Service and Entity holds it (the seed file checks
    /// that a fixed Factor SID is not another's).
    pub async fn factor_anywhere(&self, sid: &FactorSid) -> Result<Option<FactorRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM factors WHERE sid = $1");
        on_pool!(self, read, |pool| sqlx::query_as::<_, FactorRow>(&sql).bind(sid.as_str()).fetch_optional(pool).await)
    }

    /// The Factor whose `config.credential_sid` is `credential_sid` (a device JWT's `kid`).
    pub async fn factor_by_credential(&self, credential_sid: &str) -> Result<Option<FactorRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM factors WHERE credential_sid = $1");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, FactorRow>(&sql).bind(credential_sid).fetch_optional(pool).await
        })
    }

    /// Writes an update of a Factor's mutable fields (name, status, config, date_updated), with
    /// the event it causes, only if the row still holds `old`'s values: concurrent updates never
    /// overwrite each other and a status moves once. False when the row changed meanwhile (read
    /// it again and reapply) or is gone.
    pub async fn update_factor(
        &self,
        old: &FactorRow,
        new: &FactorRow,
        event: Option<&NewEvent>,
    ) -> Result<bool, sqlx::Error> {
        let mut script = Script::new().then(
            "UPDATE factors SET friendly_name = ?, status = ?, config = ?, date_updated = ? \
             WHERE id = ? AND friendly_name = ? AND status = ? AND config = ? RETURNING id",
            [
                Arg::text(&new.friendly_name),
                Arg::text(new.status.as_str()),
                Arg::text(&new.config),
                Arg::Int(new.date_updated),
                Arg::Int(old.id),
                Arg::text(&old.friendly_name),
                Arg::text(old.status.as_str()),
                Arg::text(&old.config),
            ],
        );
        if let Some(event) = event {
            let (text, args) = event.insert(self.backend());
            script = script.then_if_returned(&text, args);
        }
        if old.status != FactorStatus::Verified && new.status == FactorStatus::Verified {
            script = script.publish_if_returned(live_event(EventType::FactorVerified, new, new.date_updated));
        }
        Ok(!self.run_script(script).await?.is_empty())
    }

    /// Deletes a Factor and its Challenges, recording `event` when it existed. False when there
    /// was none.
    pub async fn delete_factor(&self, factor: &FactorRow, event: &NewEvent) -> Result<bool, sqlx::Error> {
        let (text, args) = event.insert(self.backend());
        let script = Script::new()
            .then("DELETE FROM factors WHERE id = ? RETURNING id", [Arg::Int(factor.id)])
            .then_if_returned(&text, args)
            .publish_if_returned(live_event(EventType::FactorDeleted, factor, event.now));
        Ok(!self.run_script(script).await?.is_empty())
    }

    pub async fn list_factors(&self, entity_id: i64, window: &Window) -> Result<Page<FactorRow>, sqlx::Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM factors WHERE "));
        sql.push("entity_id = ?", [Arg::Int(entity_id)]);
        self.fetch_page(sql, window).await
    }

    /// Deletes up to `batch` unverified Factors created at or before `cutoff`. Returns how many.
    /// The outer `status` test is not redundant: PostgreSQL rechecks it on a row that a
    /// concurrent verification changed after the subquery read it, and then keeps the Factor.
    pub async fn delete_stale_unverified_factors(&self, cutoff: i64, batch: i64) -> Result<u64, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(&DELETE_STALE).bind(cutoff).bind(batch).execute(pool).await.map(|r| r.rows_affected())
        })
    }
}
