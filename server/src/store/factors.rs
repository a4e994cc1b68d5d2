//! Factors: a device key (push) bound to an Entity.

use sqlx::{Connection as _, FromRow as _, Row as _};

use super::deliveries::{record_event, NewEvent};
use super::entities::{count_entity_creation_args, EntityRow, COUNT_ENTITY_CREATION};
use super::live::{LiveEvent, Subject};
use super::script::Script;
use super::{bind_args, is_check_violation, on_pool, Arg, Page, Sql, Store, Window};
use crate::domain::rules::day_of;
use crate::domain::status::{EventType, FactorStatus, FactorType};

/// The sweeper's delete of a batch of stale unverified Factors.
static DELETE_STALE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
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
const UPSERT_ENTITY: &str = "INSERT INTO entities (sid, service_id, account_sid, service_sid, identity, \
    date_created, date_updated, factor_day, factors_that_day) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) \
    ON CONFLICT (service_id, identity) DO UPDATE SET factors_that_day = CASE \
    WHEN entities.factor_day = excluded.factor_day THEN entities.factors_that_day + 1 ELSE 1 END, \
    factor_day = excluded.factor_day \
    RETURNING id, sid, service_id, account_sid, service_sid, identity, date_created, date_updated, factors_that_day";

/// A live event about Factor `f` as it is now.
pub fn live_event(kind: EventType, f: &FactorRow, at: i64) -> LiveEvent {
    let row = serde_json::to_value(f).unwrap_or_default();
    let mut e = LiveEvent::new(kind, &f.account_sid, &f.service_sid, at, Subject::Factor(row));
    e.identity = Some(f.identity.clone());
    e.factor_sid = Some(f.sid.clone());
    e
}

impl Store {
    /// Creates the Factor, and its Entity when the identity is new, in one transaction, within
    /// `limits`. `entity` carries the Entity to create if needed; `factor`'s entity fields are
    /// filled in.
    pub async fn create_factor(
        &self,
        entity: &EntityRow,
        mut factor: FactorRow,
        limits: FactorLimits,
        event: &NewEvent,
    ) -> Result<FactorCreated, sqlx::Error> {
        let insert_factor = format!(
            "INSERT INTO factors ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16) RETURNING id",
            &COLUMNS[4..]
        );
        let count_entity =
            Sql::statement(COUNT_ENTITY_CREATION, count_entity_creation_args(&entity.account_sid, entity.date_created));
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(UPSERT_ENTITY)
                .bind(&entity.sid)
                .bind(entity.service_id)
                .bind(&entity.account_sid)
                .bind(&entity.service_sid)
                .bind(&entity.identity)
                .bind(entity.date_created)
                .bind(entity.date_updated)
                .bind(day_of(factor.date_created))
                .fetch_one(&mut *tx)
                .await?;
            let stored = EntityRow::from_row(&row)?;
            if let Some(per_day) = limits.per_day {
                // A new identity: the row returned is the one just inserted.
                if stored.sid == entity.sid {
                    let counted =
                        bind_args!(sqlx::query(&count_entity.text), &count_entity.args).execute(&mut *tx).await;
                    match counted {
                        Err(e) if is_check_violation(&e) => return Ok(FactorCreated::EntityRateLimited),
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
            .bind(factor.factor_type.as_str())
            .bind(&factor.binding_public_key)
            .fetch_one(&mut *tx)
            .await?;
            if same_type >= limits.per_type {
                return Ok(FactorCreated::LimitReached);
            }
            if same_key > 0 {
                return Ok(FactorCreated::DuplicateBinding);
            }
            factor.entity_id = stored.id;
            factor.entity_sid = stored.sid.clone();
            factor.id = sqlx::query_scalar::<_, i64>(&insert_factor)
                .bind(&factor.sid)
                .bind(factor.entity_id)
                .bind(&factor.account_sid)
                .bind(&factor.service_sid)
                .bind(&factor.entity_sid)
                .bind(&factor.identity)
                .bind(&factor.friendly_name)
                .bind(factor.factor_type.as_str())
                .bind(factor.status.as_str())
                .bind(&factor.binding_alg)
                .bind(&factor.binding_public_key)
                .bind(&factor.credential_sid)
                .bind(&factor.config)
                .bind(&factor.metadata)
                .bind(factor.date_created)
                .bind(factor.date_updated)
                .fetch_one(&mut *tx)
                .await?;
            record_event!(tx, event, self.backend());
            let live = [live_event(EventType::FactorCreated, &factor, factor.date_created)];
            if let Some(sql) = self.live.notify(self.backend(), &live) {
                bind_args!(sqlx::query(&sql.text), &sql.args).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            self.live.committed(self.backend(), &live);
            Ok(FactorCreated::Created(Box::new(factor)))
        })
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
