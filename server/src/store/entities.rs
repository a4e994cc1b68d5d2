//! Entities: the users of a Service, addressed by their `identity`.

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

impl Store {
    /// Inserts a new Entity; a duplicate identity is a unique violation.
    pub async fn insert_entity(&self, e: &EntityRow) -> Result<i64, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO entities (sid, service_id, account_sid, service_sid, identity, \
                 date_created, date_updated) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&e.sid)
            .bind(e.service_id)
            .bind(&e.account_sid)
            .bind(&e.service_sid)
            .bind(&e.identity)
            .bind(e.date_created)
            .bind(e.date_updated)
            .fetch_one(pool)
            .await
        })
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
