//! Accounts (`AC…` + auth token) and their API keys (`SK…` + secret).
//!
//! An account's auth token is kept as given: webhook signatures are HMACs keyed with it
//! (docs/protocol/webhooks.md#signature). API key secrets are only needed for comparison, so only
//! their SHA-256 is stored.

use super::{bind_args, on_pool, Arg, Sql, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub sid: String,
    pub auth_token: String,
    pub friendly_name: String,
    pub date_created: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub sid: String,
    pub account_sid: String,
    pub secret_sha256: Vec<u8>,
    pub date_created: i64,
}

impl Store {
    /// Creates the account, or sets its token and name when it exists.
    pub async fn upsert_account(&self, a: &AccountRow) -> Result<(), sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO accounts (sid, auth_token, friendly_name, date_created) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (sid) DO UPDATE SET \
                 auth_token = excluded.auth_token, friendly_name = excluded.friendly_name",
            )
            .bind(&a.sid)
            .bind(&a.auth_token)
            .bind(&a.friendly_name)
            .bind(a.date_created)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// Stores `a` only if no account exists at all. True when it was stored.
    pub async fn insert_first_account(&self, a: &AccountRow) -> Result<bool, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO accounts (sid, auth_token, friendly_name, date_created) \
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM accounts)",
            )
            .bind(&a.sid)
            .bind(&a.auth_token)
            .bind(&a.friendly_name)
            .bind(a.date_created)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })
    }

    pub async fn account(&self, sid: &str) -> Result<Option<AccountRow>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, AccountRow>(
                "SELECT sid, auth_token, friendly_name, date_created FROM accounts WHERE sid = $1",
            )
            .bind(sid)
            .fetch_optional(pool)
            .await
        })
    }

    pub async fn accounts(&self) -> Result<Vec<AccountRow>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, AccountRow>(
                "SELECT sid, auth_token, friendly_name, date_created FROM accounts ORDER BY date_created, sid",
            )
            .fetch_all(pool)
            .await
        })
    }

    pub async fn upsert_api_key(&self, k: &ApiKeyRow) -> Result<(), sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO api_keys (sid, account_sid, secret_sha256, date_created) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (sid) DO UPDATE SET \
                 account_sid = excluded.account_sid, secret_sha256 = excluded.secret_sha256",
            )
            .bind(&k.sid)
            .bind(&k.account_sid)
            .bind(&k.secret_sha256)
            .bind(k.date_created)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    pub async fn api_key(&self, sid: &str) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, ApiKeyRow>(
                "SELECT sid, account_sid, secret_sha256, date_created FROM api_keys WHERE sid = $1",
            )
            .bind(sid)
            .fetch_optional(pool)
            .await
        })
    }

    /// Deletes every API key but `keep`; returns how many were deleted.
    pub async fn delete_api_keys_except(&self, keep: &[String]) -> Result<u64, sqlx::Error> {
        let mut sql = Sql::new("DELETE FROM api_keys");
        if !keep.is_empty() {
            let marks = vec!["?"; keep.len()].join(", ");
            sql.push(&format!(" WHERE sid NOT IN ({marks})"), keep.iter().map(|k| Arg::text(k)));
        }
        on_pool!(self, write, |pool| {
            bind_args!(sqlx::query(&sql.text), &sql.args).execute(pool).await.map(|r| r.rows_affected())
        })
    }
}
