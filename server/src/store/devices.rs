//! Virtual devices: the sealed key a virtual device signs with, keyed by its Factor. This layer
//! moves the ciphertext only; rows are read with their Factor's status and name (a device exists
//! while its Factor does: the foreign key cascades).

use super::{on_pool, Arg, Page, Sql, Store, Window};
use crate::domain::status::{DeviceStyle, FactorStatus};

/// A device as listed: its row joined with its Factor.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub factor_id: i64,
    pub factor_sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub identity: String,
    #[sqlx(try_from = "String")]
    pub style: DeviceStyle,
    /// PKCS#8 DER of the P-256 key, sealed (crypto/secretbox.rs).
    pub sealed_key: String,
    pub date_created: i64,
    #[sqlx(try_from = "String")]
    pub status: FactorStatus,
    pub friendly_name: String,
    /// The Factor's `config.credential_sid` (the `kid` of the device's factor JWTs).
    pub credential_sid: String,
}

/// The devices with their Factor's status and name, as one relation (so that the keyset window
/// and the filters name unambiguous columns).
const DEVICES: &str = "SELECT * FROM (SELECT d.id, d.factor_id, d.factor_sid, d.account_sid, d.service_sid, \
    d.identity, d.style, d.sealed_key, d.date_created, f.status, f.friendly_name, \
    f.credential_sid FROM virtual_devices d JOIN factors f ON f.id = d.factor_id) v WHERE ";

/// The filters of a device list.
#[derive(Debug, Default)]
pub struct DeviceFilter {
    pub service_sid: Option<String>,
    pub identity: Option<String>,
}

impl Store {
    /// Stores the key of the device of Factor `factor_id` (whose other columns are copied).
    pub async fn insert_device(
        &self,
        factor_id: i64,
        style: DeviceStyle,
        sealed_key: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO virtual_devices (factor_id, factor_sid, account_sid, service_sid, identity, style, \
                 sealed_key, date_created) SELECT id, sid, account_sid, service_sid, identity, $2, $3, $4 \
                 FROM factors WHERE id = $1",
            )
            .bind(factor_id)
            .bind(style.as_str())
            .bind(sealed_key)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// The device of Factor `factor_sid` of `account_sid`.
    pub async fn device(&self, account_sid: &str, factor_sid: &str) -> Result<Option<DeviceRow>, sqlx::Error> {
        let sql = format!("{DEVICES}factor_sid = $1 AND account_sid = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, DeviceRow>(&sql).bind(factor_sid).bind(account_sid).fetch_optional(pool).await
        })
    }

    pub async fn list_devices(
        &self,
        account_sid: &str,
        f: &DeviceFilter,
        window: &Window,
    ) -> Result<Page<DeviceRow>, sqlx::Error> {
        let mut sql = Sql::new(DEVICES);
        sql.push("account_sid = ?", [Arg::Text(account_sid.to_owned())]);
        sql.push_filters(&[("service_sid", &f.service_sid), ("identity", &f.identity)]);
        self.fetch_page(sql, window).await
    }
}
