//! Enrollment access tokens, and the server's own keys where they are kept in the database
//! (PostgreSQL without a key file; see `keys`).

use crate::domain::status::FactorType;
use sqlx::Connection as _;

use super::{on_pool, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessTokenRow {
    pub id: i64,
    pub sid: String,
    pub service_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub entity_identity: String,
    #[sqlx(try_from = "String")]
    pub factor_type: FactorType,
    pub factor_friendly_name: Option<String>,
    pub token: String,
    pub ttl: i64,
    pub date_created: i64,
}

const COLUMNS: &str = "id, sid, service_id, account_sid, service_sid, entity_identity, \
    factor_type, factor_friendly_name, token, ttl, date_created";

impl Store {
    pub async fn insert_access_token(&self, t: &AccessTokenRow) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "INSERT INTO access_tokens ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             RETURNING id",
            &COLUMNS[4..]
        );
        on_pool!(self, write, |pool| {
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(&t.sid)
                .bind(t.service_id)
                .bind(&t.account_sid)
                .bind(&t.service_sid)
                .bind(&t.entity_identity)
                .bind(t.factor_type.as_str())
                .bind(&t.factor_friendly_name)
                .bind(&t.token)
                .bind(t.ttl)
                .bind(t.date_created)
                .fetch_one(pool)
                .await
        })
    }

    pub async fn access_token(&self, service_id: i64, sid: &str) -> Result<Option<AccessTokenRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM access_tokens WHERE sid = $1 AND service_id = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, AccessTokenRow>(&sql).bind(sid).bind(service_id).fetch_optional(pool).await
        })
    }

    /// The value stored under `name`, if any.
    pub async fn server_key(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_scalar::<_, String>("SELECT value FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })
    }

    /// Deletes the key stored under `name` (it moved to the key file).
    pub async fn delete_server_key(&self, name: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM server_keys WHERE name = $1").bind(name).execute(pool).await.map(|_| ())
        })
    }

    /// The value stored under `name`, storing `proposed` first if there is none. Every instance
    /// sharing the database gets the same value, whichever proposed it first.
    pub async fn server_key_or_insert(&self, name: &str, proposed: &str) -> Result<String, sqlx::Error> {
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(proposed)
                .execute(&mut *tx)
                .await?;
            let value = sqlx::query_scalar::<_, String>("SELECT value FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(value)
        })
    }
}
