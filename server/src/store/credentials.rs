//! Push credentials (Notify's Credential resource). The secret material is stored encrypted;
//! this layer only moves the ciphertext.

use super::script::Script;
use super::{insert_sql, on_pool, Arg, Page, Sql, Store, Window};
use crate::domain::sid::CredentialSid;
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

/// The columns a credential's creation sets.
const INSERT_COLUMNS: &str = "sid, account_sid, friendly_name, type, sandbox, secret, date_created, date_updated";

/// A push credential to store.
#[derive(Debug)]
pub struct NewCredential<'a> {
    pub sid: CredentialSid,
    pub account_sid: &'a str,
    pub friendly_name: Option<&'a str>,
    pub r#type: CredentialType,
    pub sandbox: bool,
    /// The sealed secret material.
    pub secret: String,
    pub now: i64,
}

impl Store {
    /// Stores a credential.
    pub async fn create_credential(&self, new: NewCredential<'_>) -> Result<CredentialRow, sqlx::Error> {
        let args = [
            Arg::text(&new.sid),
            Arg::text(new.account_sid),
            Arg::opt_text(new.friendly_name),
            Arg::text(new.r#type.as_str()),
            Arg::Bool(new.sandbox),
            Arg::text(&new.secret),
            Arg::Int(new.now),
            Arg::Int(new.now),
        ];
        let script = Script::new().then(&format!("{} RETURNING id", insert_sql("credentials", INSERT_COLUMNS)), args);
        let id = self.run_insert(script).await?;
        Ok(CredentialRow {
            id,
            sid: new.sid.into(),
            account_sid: new.account_sid.to_owned(),
            friendly_name: new.friendly_name.map(str::to_owned),
            r#type: new.r#type,
            sandbox: new.sandbox,
            secret: new.secret,
            date_created: new.now,
            date_updated: new.now,
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
