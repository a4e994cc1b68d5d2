//! Entities: the users of a Service, addressed by their `identity`.

use super::script::Script;
use super::services::ServiceRow;
use super::{insert_sql, on_pool, violation, Arg, Page, Sql, Store, Violation, Window};
use crate::domain::sid::EntitySid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntityRow {
    pub id: i64,
    pub sid: String,
    pub service_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub identity: String,
    pub date_created: i64,
    pub date_updated: i64,
}

const COLUMNS: &str = "id, sid, service_id, account_sid, service_sid, identity, date_created, date_updated";

/// The columns an Entity's creation sets, in the order of [`NewEntity::args`].
pub(crate) const INSERT_COLUMNS: &str =
    "sid, service_id, account_sid, service_sid, identity, date_created, date_updated";

/// An Entity to create in `service`.
#[derive(Debug)]
pub struct NewEntity<'a> {
    pub sid: EntitySid,
    pub service: &'a ServiceRow,
    pub identity: &'a str,
    pub now: i64,
}

impl NewEntity<'_> {
    /// The values of [`INSERT_COLUMNS`].
    pub(crate) fn args(&self) -> [Arg; 7] {
        [
            Arg::text(&self.sid),
            Arg::Int(self.service.id),
            Arg::text(&self.service.account_sid),
            Arg::text(&self.service.sid),
            Arg::text(self.identity),
            Arg::Int(self.now),
            Arg::Int(self.now),
        ]
    }

    /// The row stored as `id`.
    pub(crate) fn row(&self, id: i64) -> EntityRow {
        EntityRow {
            id,
            sid: self.sid.to_string(),
            service_id: self.service.id,
            account_sid: self.service.account_sid.clone(),
            service_sid: self.service.sid.clone(),
            identity: self.identity.to_owned(),
            date_created: self.now,
            date_updated: self.now,
        }
    }
}

/// The outcome of [`Store::create_entity`].
#[derive(Debug)]
pub enum EntityCreated {
    Created(EntityRow),
    /// The Service has an Entity of this identity.
    Exists,
    /// The account created its most Entities this second.
    RateLimited,
    /// The Service was deleted meanwhile.
    ServiceGone,
}

/// Counts one Entity creation of an account in a second (`?` account, `?` second): the counter
/// restarts each second, and its CHECK fails the statement past
/// [`crate::domain::rules::MAX_ENTITIES_PER_ACCOUNT_PER_SECOND`]. On PostgreSQL the upsert locks
/// the account's counter until the creating transaction ends, so concurrent creations (on any
/// instance) count one after the other.
pub(crate) const COUNT_ENTITY_CREATION: &str = "INSERT INTO entity_creations (account_sid, second, created) \
    VALUES (?, ?, 1) ON CONFLICT (account_sid) DO UPDATE SET created = CASE \
    WHEN entity_creations.second = excluded.second THEN entity_creations.created + 1 ELSE 1 END, \
    second = excluded.second";

pub(crate) fn count_entity_creation_args(account_sid: &str, now: i64) -> [Arg; 2] {
    [Arg::text(account_sid), Arg::Int(now)]
}

impl Store {
    /// Creates an Entity, counting it against its account's per-second limit when `limited`.
    pub async fn create_entity(&self, new: &NewEntity<'_>, limited: bool) -> Result<EntityCreated, sqlx::Error> {
        let insert = format!("{} RETURNING id", insert_sql("entities", INSERT_COLUMNS));
        let mut script = Script::new().then(&insert, new.args());
        if limited {
            script = script.then(COUNT_ENTITY_CREATION, count_entity_creation_args(&new.service.account_sid, new.now));
        }
        match self.run_insert(script).await {
            Ok(id) => Ok(EntityCreated::Created(new.row(id))),
            Err(e) => match violation(&e) {
                Some(Violation::Unique) => Ok(EntityCreated::Exists),
                Some(Violation::Check) => Ok(EntityCreated::RateLimited),
                Some(Violation::ForeignKey) => Ok(EntityCreated::ServiceGone),
                None => Err(e),
            },
        }
    }

    pub async fn entity(&self, service_id: i64, identity: &str) -> Result<Option<EntityRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM entities WHERE service_id = $1 AND identity = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, EntityRow>(&sql).bind(service_id).bind(identity).fetch_optional(pool).await
        })
    }

    /// Deletes an Entity with its Factors and Challenges. False when there was none.
    pub async fn delete_entity(&self, service_id: i64, identity: &str) -> Result<bool, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM entities WHERE service_id = $1 AND identity = $2")
                .bind(service_id)
                .bind(identity)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
    }

    pub async fn list_entities(&self, service_id: i64, window: &Window) -> Result<Page<EntityRow>, sqlx::Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM entities WHERE "));
        sql.push("service_id = ?", [Arg::Int(service_id)]);
        self.fetch_page(sql, window).await
    }
}
