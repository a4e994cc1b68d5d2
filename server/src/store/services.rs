//! Verify Services.

use super::{on_pool, Arg, Page, Sql, Store, Window};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceRow {
    pub id: i64,
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub push_include_date: bool,
    pub push_apn_credential_sid: Option<String>,
    pub push_fcm_credential_sid: Option<String>,
    pub totp_issuer: Option<String>,
    pub totp_time_step: Option<i64>,
    pub totp_code_length: Option<i64>,
    pub totp_skew: Option<i64>,
    /// The SMS/WhatsApp/Passkeys settings the emulator stores and echoes, as a JSON object.
    pub settings: String,
    pub date_created: i64,
    pub date_updated: i64,
}

const COLUMNS: &str = "id, sid, account_sid, friendly_name, push_include_date, \
    push_apn_credential_sid, push_fcm_credential_sid, totp_issuer, totp_time_step, \
    totp_code_length, totp_skew, settings, date_created, date_updated";

/// Binds a Service's settable columns in order: friendly_name, push_include_date,
/// push_apn_credential_sid, push_fcm_credential_sid, totp_issuer, totp_time_step,
/// totp_code_length, totp_skew, settings.
macro_rules! bind_settable {
    ($query:expr, $s:expr) => {
        $query
            .bind(&$s.friendly_name)
            .bind($s.push_include_date)
            .bind(&$s.push_apn_credential_sid)
            .bind(&$s.push_fcm_credential_sid)
            .bind(&$s.totp_issuer)
            .bind($s.totp_time_step)
            .bind($s.totp_code_length)
            .bind($s.totp_skew)
            .bind(&$s.settings)
    };
}

impl Store {
    pub async fn insert_service(&self, s: &ServiceRow) -> Result<i64, sqlx::Error> {
        let sql = "INSERT INTO services (sid, account_sid, friendly_name, push_include_date, \
            push_apn_credential_sid, push_fcm_credential_sid, totp_issuer, totp_time_step, \
            totp_code_length, totp_skew, settings, date_created, date_updated) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";
        on_pool!(self, write, |pool| {
            bind_settable!(sqlx::query_scalar::<_, i64>(sql).bind(&s.sid).bind(&s.account_sid), s)
                .bind(s.date_created)
                .bind(s.date_updated)
                .fetch_one(pool)
                .await
        })
    }

    /// Writes an update of a Service, only if the row still holds `old`'s values, so that
    /// concurrent updates never overwrite each other. False when it changed meanwhile (read it
    /// again and reapply) or is gone.
    pub async fn update_service(&self, old: &ServiceRow, new: &ServiceRow) -> Result<bool, sqlx::Error> {
        // $2…$10 the new values, $11…$19 the old ones, $20 date_updated.
        let sql = "UPDATE services SET friendly_name = $2, push_include_date = $3, \
            push_apn_credential_sid = $4, push_fcm_credential_sid = $5, totp_issuer = $6, \
            totp_time_step = $7, totp_code_length = $8, totp_skew = $9, settings = $10, \
            date_updated = $20 WHERE id = $1 AND friendly_name = $11 AND push_include_date = $12 \
            AND push_apn_credential_sid IS NOT DISTINCT FROM $13 \
            AND push_fcm_credential_sid IS NOT DISTINCT FROM $14 AND totp_issuer IS NOT DISTINCT FROM $15 \
            AND totp_time_step IS NOT DISTINCT FROM $16 AND totp_code_length IS NOT DISTINCT FROM $17 \
            AND totp_skew IS NOT DISTINCT FROM $18 AND settings = $19";
        on_pool!(self, write, |pool| {
            let mut query = sqlx::query(sql).bind(old.id);
            for s in [new, old] {
                query = bind_settable!(query, s);
            }
            query.bind(new.date_updated).execute(pool).await.map(|r| r.rows_affected() > 0)
        })
    }

    /// The Service `sid` if it belongs to `account_sid`.
    pub async fn service(&self, account_sid: &str, sid: &str) -> Result<Option<ServiceRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM services WHERE sid = $1 AND account_sid = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, ServiceRow>(&sql).bind(sid).bind(account_sid).fetch_optional(pool).await
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
