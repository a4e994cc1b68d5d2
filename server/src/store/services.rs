//! Verify Services.

use super::script::Script;
use super::{bind_args, insert_sql, on_pool, Arg, Page, Sql, Store, Window};
use crate::domain::sid::ServiceSid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceRow {
    pub id: i64,
    pub sid: String,
    pub account_sid: String,
    #[sqlx(flatten)]
    pub settings: ServiceSettings,
    pub date_created: i64,
    pub date_updated: i64,
}

/// What a Service's creator or updater sets: every column but its keys and dates.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceSettings {
    pub friendly_name: String,
    pub push_include_date: bool,
    pub push_apn_credential_sid: Option<String>,
    pub push_fcm_credential_sid: Option<String>,
    pub totp_issuer: Option<String>,
    pub totp_time_step: Option<i64>,
    pub totp_code_length: Option<i64>,
    pub totp_skew: Option<i64>,
    /// The SMS/WhatsApp/Passkeys settings the emulator stores and echoes, as a JSON object.
    #[sqlx(rename = "settings")]
    pub other: String,
}

impl ServiceSettings {
    /// A new Service's settings: `friendly_name`, everything else unset.
    pub fn named(friendly_name: &str) -> ServiceSettings {
        ServiceSettings {
            friendly_name: friendly_name.to_owned(),
            push_include_date: false,
            push_apn_credential_sid: None,
            push_fcm_credential_sid: None,
            totp_issuer: None,
            totp_time_step: None,
            totp_code_length: None,
            totp_skew: None,
            other: "{}".to_owned(),
        }
    }

    /// The settable columns' arguments, in the order of [`SETTABLE`].
    fn args(&self) -> [Arg; 9] {
        [
            Arg::text(&self.friendly_name),
            Arg::Bool(self.push_include_date),
            Arg::opt_text(self.push_apn_credential_sid.as_deref()),
            Arg::opt_text(self.push_fcm_credential_sid.as_deref()),
            Arg::opt_text(self.totp_issuer.as_deref()),
            Arg::opt_int(self.totp_time_step),
            Arg::opt_int(self.totp_code_length),
            Arg::opt_int(self.totp_skew),
            Arg::text(&self.other),
        ]
    }
}

/// A Service to create.
#[derive(Debug)]
pub struct NewService<'a> {
    pub sid: ServiceSid,
    pub account_sid: &'a str,
    pub settings: ServiceSettings,
    pub now: i64,
}

const COLUMNS: &str = "id, sid, account_sid, friendly_name, push_include_date, \
    push_apn_credential_sid, push_fcm_credential_sid, totp_issuer, totp_time_step, \
    totp_code_length, totp_skew, settings, date_created, date_updated";

/// The columns a Service's creator or updater sets, in the order of [`ServiceSettings::args`].
const SETTABLE: &str = "friendly_name, push_include_date, push_apn_credential_sid, \
    push_fcm_credential_sid, totp_issuer, totp_time_step, totp_code_length, totp_skew, settings";

impl Store {
    /// Creates a Service.
    pub async fn create_service(&self, new: NewService<'_>) -> Result<ServiceRow, sqlx::Error> {
        let columns = format!("sid, account_sid, {SETTABLE}, date_created, date_updated");
        let mut args = vec![Arg::text(&new.sid), Arg::text(new.account_sid)];
        args.extend(new.settings.args());
        args.extend([Arg::Int(new.now), Arg::Int(new.now)]);
        let script = Script::new().then(&format!("{} RETURNING id", insert_sql("services", &columns)), args);
        let id = self.run_insert(script).await?;
        Ok(ServiceRow {
            id,
            sid: new.sid.into(),
            account_sid: new.account_sid.to_owned(),
            settings: new.settings,
            date_created: new.now,
            date_updated: new.now,
        })
    }

    /// Writes `new` over a Service's settings at `now`, only if the row still holds `old`'s
    /// values, so that concurrent updates never overwrite each other. The updated row, or `None`
    /// when it changed meanwhile (read it again and reapply) or is gone.
    pub async fn update_service(
        &self,
        old: &ServiceRow,
        new: ServiceSettings,
        now: i64,
    ) -> Result<Option<ServiceRow>, sqlx::Error> {
        let sql = Sql::statement(
            "UPDATE services SET friendly_name = ?, push_include_date = ?, push_apn_credential_sid = ?, \
             push_fcm_credential_sid = ?, totp_issuer = ?, totp_time_step = ?, totp_code_length = ?, totp_skew = ?, \
             settings = ?, date_updated = ? WHERE id = ? AND friendly_name = ? AND push_include_date = ? \
             AND push_apn_credential_sid IS NOT DISTINCT FROM ? AND push_fcm_credential_sid IS NOT DISTINCT FROM ? \
             AND totp_issuer IS NOT DISTINCT FROM ? AND totp_time_step IS NOT DISTINCT FROM ? \
             AND totp_code_length IS NOT DISTINCT FROM ? AND totp_skew IS NOT DISTINCT FROM ? AND settings = ?",
            new.args().into_iter().chain([Arg::Int(now), Arg::Int(old.id)]).chain(old.settings.args()),
        );
        let updated = on_pool!(self, write, |pool| {
            bind_args!(sqlx::query(&sql.text), &sql.args).execute(pool).await.map(|r| r.rows_affected() > 0)
        })?;
        Ok(updated.then(|| ServiceRow { settings: new, date_updated: now, ..old.clone() }))
    }

    /// The Service `sid` if it belongs to `account_sid`.
    pub async fn service(&self, account_sid: &str, sid: &ServiceSid) -> Result<Option<ServiceRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM services WHERE sid = $1 AND account_sid = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, ServiceRow>(&sql).bind(sid.as_str()).bind(account_sid).fetch_optional(pool).await
        })
    }

    /// Deletes a Service and, by cascade, everything beneath it. False when there was none.
    pub async fn delete_service(&self, account_sid: &str, sid: &str) -> Result<bool, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM services WHERE sid = $1 AND account_sid = $2")
                .bind(sid)
                .bind(account_sid)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
    }

    pub async fn list_services(&self, account_sid: &str, window: &Window) -> Result<Page<ServiceRow>, sqlx::Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM services WHERE "));
        sql.push("account_sid = ?", [Arg::Text(account_sid.to_owned())]);
        self.fetch_page(sql, window).await
    }
}
