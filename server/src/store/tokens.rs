//! Enrollment access tokens, and the server's own keys where they are kept in the database
//! (PostgreSQL without a key file; see `keys`).

use crate::domain::sid::AccessTokenSid;
use crate::domain::status::FactorType;

use super::script::Script;
use super::services::ServiceRow;
use super::{insert_sql, on_pool, Arg, Store};

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

/// The columns an access token's creation sets.
const INSERT_COLUMNS: &str = "sid, service_id, account_sid, service_sid, entity_identity, factor_type, \
    factor_friendly_name, token, ttl, date_created";

/// An enrolment access token to store, for `identity` in `service`.
#[derive(Debug)]
pub struct NewAccessToken<'a> {
    pub sid: AccessTokenSid,
    pub service: &'a ServiceRow,
    pub identity: &'a str,
    pub factor_type: FactorType,
    pub factor_friendly_name: Option<&'a str>,
    /// The sealed token.
    pub token: String,
    pub ttl: i64,
    pub now: i64,
}

impl Store {
    /// Stores an access token.
    pub async fn create_access_token(&self, new: NewAccessToken<'_>) -> Result<AccessTokenRow, sqlx::Error> {
        let args = [
            Arg::text(&new.sid),
            Arg::Int(new.service.id),
            Arg::text(&new.service.account_sid),
            Arg::text(&new.service.sid),
            Arg::text(new.identity),
            Arg::text(new.factor_type.as_str()),
            Arg::opt_text(new.factor_friendly_name),
            Arg::text(&new.token),
            Arg::Int(new.ttl),
            Arg::Int(new.now),
        ];
        let script = Script::new().then(&format!("{} RETURNING id", insert_sql("access_tokens", INSERT_COLUMNS)), args);
        let id = self.run_insert(script).await?;
        Ok(AccessTokenRow {
            id,
            sid: new.sid.into(),
            service_id: new.service.id,
            account_sid: new.service.account_sid.clone(),
            service_sid: new.service.sid.clone(),
            entity_identity: new.identity.to_owned(),
            factor_type: new.factor_type,
            factor_friendly_name: new.factor_friendly_name.map(str::to_owned),
            token: new.token,
            ttl: new.ttl,
            date_created: new.now,
        })
    }

    pub async fn access_token(
        &self,
        service_id: i64,
        sid: &AccessTokenSid,
    ) -> Result<Option<AccessTokenRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM access_tokens WHERE sid = $1 AND service_id = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, AccessTokenRow>(&sql).bind(sid.as_str()).bind(service_id).fetch_optional(pool).await
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
    /// sharing the database gets the same value, whichever proposed it first: one statement, whose
    /// no-op update of an existing key returns the value stored.
    pub async fn server_key_or_insert(&self, name: &str, proposed: &str) -> Result<String, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query_scalar::<_, String>(
                "INSERT INTO server_keys (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = server_keys.value RETURNING value",
            )
            .bind(name)
            .bind(proposed)
            .fetch_one(pool)
            .await
        })
    }
}
