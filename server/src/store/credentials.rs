//! Push credentials (Notify's Credential resource). The secret material is stored encrypted;
//! this layer only moves the ciphertext.

use super::{on_pool, Arg, Page, Sql, Store, Window};
use crate::domain::status::CredentialType;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CredentialRow {
    pub id: i64,
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: Option<String>,
    /// `apn` or `fcm`.
    #[sqlx(try_from = "String")]
    pub r#type: CredentialType,
    pub sandbox: bool,
    pub secret: String,
    pub date_created: i64,
    pub date_updated: i64,
}

const COLUMNS: &str = "id, sid, account_sid, friendly_name, type, sandbox, secret, date_created, date_updated";

impl Store {
    pub async fn insert_credential(&self, c: &CredentialRow) -> Result<i64, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO credentials (sid, account_sid, friendly_name, type, sandbox, secret, date_created, \
                 date_updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(&c.sid)
            .bind(&c.account_sid)
            .bind(&c.friendly_name)
            .bind(c.r#type.as_str())
            .bind(c.sandbox)
            .bind(&c.secret)
            .bind(c.date_created)
            .bind(c.date_updated)
            .fetch_one(pool)
            .await
        })
    }

    pub async fn update_credential(&self, c: &CredentialRow) -> Result<(), sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE credentials SET friendly_name = $2, sandbox = $3, secret = $4, date_updated = $5 WHERE id = $1",
            )
            .bind(c.id)
            .bind(&c.friendly_name)
            .bind(c.sandbox)
            .bind(&c.secret)
            .bind(c.date_updated)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// The sealed secret of some credential, if any exists (to check the credentials key at start).
    pub async fn any_credential_secret(&self) -> Result<Option<String>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_scalar::<_, String>("SELECT secret FROM credentials LIMIT 1").fetch_optional(pool).await
        })
    }

    /// The credential `sid` of `account_sid`.
    pub async fn credential(&self, account_sid: &str, sid: &str) -> Result<Option<CredentialRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM credentials WHERE sid = $1 AND account_sid = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, CredentialRow>(&sql).bind(sid).bind(account_sid).fetch_optional(pool).await
        })
    }

    pub async fn delete_credential(&self, account_sid: &str, sid: &str) -> Result<bool, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM credentials WHERE sid = $1 AND account_sid = $2")
                .bind(sid)
                .bind(account_sid)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
    }

    pub async fn list_credentials(
        &self,
        account_sid: &str,
        window: &Window,
    ) -> Result<Page<CredentialRow>, sqlx::Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM credentials WHERE "));
        sql.push("account_sid = ?", [Arg::Text(account_sid.to_owned())]);
        self.fetch_page(sql, window).await
    }
}
