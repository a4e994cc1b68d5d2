//! Entities: the users of a Service, addressed by their `identity`.

use super::script::Script;
use super::{on_pool, Arg, Page, Sql, Store, Window};

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
    /// Inserts a new Entity, counting it against its account's per-second limit when `limited`:
    /// a duplicate identity is a unique violation, the limit a CHECK violation
    /// ([`super::is_check_violation`]).
    pub async fn insert_entity(&self, e: &EntityRow, limited: bool) -> Result<(), sqlx::Error> {
        let mut script = Script::new().then(
            "INSERT INTO entities (sid, service_id, account_sid, service_sid, identity, date_created, \
             date_updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                Arg::text(&e.sid),
                Arg::Int(e.service_id),
                Arg::text(&e.account_sid),
                Arg::text(&e.service_sid),
                Arg::text(&e.identity),
                Arg::Int(e.date_created),
                Arg::Int(e.date_updated),
            ],
        );
        if limited {
            script = script.then(COUNT_ENTITY_CREATION, count_entity_creation_args(&e.account_sid, e.date_created));
        }
        self.run_script(script).await.map(|_| ())
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
