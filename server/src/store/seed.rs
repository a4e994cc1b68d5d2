//! The seed file's writes (README, "Seed file"): every resource it names, in one transaction.
//!
//! The one exception to the Script rule (`script.rs`): the seed runs once at start, before the
//! server listens, and its statements depend on what earlier ones found (a webhook without a
//! fixed SID is updated if the Service has one of that name, else created), so it runs as a plain
//! sqlx transaction on the writer rather than as a `Script` (docs/ARCHITECTURE.md, "Seed file").
//! Each resource is inserted if missing (`ON CONFLICT DO NOTHING`) and updated only where a value
//! differs, so a second start with the same file writes nothing and `date_created` stays.

use super::accounts::{AccountRow, ApiKeyRow};
use super::credentials::CredentialRow;
use super::services::ServiceRow;
use super::webhooks::WebhookRow;
use super::{on_pool, Backend, Store};

/// Everything a seed file puts in place, as rows (their `id` and `service_id` are ignored: the
/// database assigns them; a webhook's Service is found by `service_sid`).
#[derive(Debug, Default)]
pub struct SeedWrites {
    pub accounts: Vec<AccountRow>,
    pub api_keys: Vec<ApiKeyRow>,
    /// A credential whose material is unchanged carries the stored ciphertext (sealing again
    /// would differ every time).
    pub credentials: Vec<CredentialRow>,
    pub services: Vec<ServiceRow>,
    /// With `fixed_sid`, the webhook is found by its SID; without, by (Service, friendly name),
    /// and `row.sid` is used only if it is created.
    pub webhooks: Vec<(WebhookRow, bool)>,
}

impl SeedWrites {
    /// Only what belongs to `account_sid` (its API keys stay as they are: a reset keeps them).
    pub fn of_account(mut self, account_sid: &str) -> SeedWrites {
        self.accounts.retain(|a| a.sid == account_sid);
        self.api_keys.retain(|k| k.account_sid == account_sid);
        self.credentials.retain(|c| c.account_sid == account_sid);
        self.services.retain(|s| s.account_sid == account_sid);
        self.webhooks.retain(|(w, _)| w.account_sid == account_sid);
        self
    }
}

/// What a seed's transaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl SeedCounts {
    fn add(&mut self, created: u64, updated: u64) {
        match (created, updated) {
            (0, 0) => self.unchanged += 1,
            (0, _) => self.updated += 1,
            _ => self.created += 1,
        }
    }
}

/// Which account, if any, holds the resource `sid` of a table keyed by `sid` (`services`,
/// `credentials`) — to refuse a seed that names another account's.
#[derive(Debug, Clone, Copy)]
pub enum Owned {
    Service,
    Credential,
}

impl Store {
    /// The account that holds the Service or credential `sid`, if it exists.
    pub async fn owner_of(&self, kind: Owned, sid: &str) -> Result<Option<String>, sqlx::Error> {
        let sql = match kind {
            Owned::Service => "SELECT account_sid FROM services WHERE sid = $1",
            Owned::Credential => "SELECT account_sid FROM credentials WHERE sid = $1",
        };
        on_pool!(self, read, |pool| sqlx::query_scalar::<_, String>(sql).bind(sid).fetch_optional(pool).await)
    }

    /// The Service that holds the webhook `sid`, if it exists.
    pub async fn webhook_service(&self, sid: &str) -> Result<Option<String>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_scalar::<_, String>("SELECT service_sid FROM webhooks WHERE sid = $1")
                .bind(sid)
                .fetch_optional(pool)
                .await
        })
    }

    /// Writes `w` in one transaction (see the module's documentation): all of it or nothing.
    /// On PostgreSQL, instances starting at once take turns (a transaction-scoped advisory lock),
    /// so a webhook without a fixed SID is not created twice.
    pub async fn apply_seed(&self, w: &SeedWrites) -> Result<SeedCounts, sqlx::Error> {
        let postgres = self.backend() == Backend::Postgres;
        on_pool!(self, write, |pool| {
            let mut tx = sqlx::Acquire::begin(pool).await?;
            let mut counts = SeedCounts::default();
            macro_rules! run {
                ($sql:expr $(, $value:expr)* $(,)?) => {
                    sqlx::query($sql)$(.bind($value))*.execute(&mut *tx).await?.rows_affected()
                };
            }
            if postgres {
                // Any constant key: only seeds take it.
                sqlx::query("SELECT pg_advisory_xact_lock(7391)").execute(&mut *tx).await?;
            }
            for a in &w.accounts {
                let created = run!(
                    "INSERT INTO accounts (sid, auth_token, friendly_name, date_created) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (sid) DO NOTHING",
                    &a.sid,
                    &a.auth_token,
                    &a.friendly_name,
                    a.date_created,
                );
                let updated = run!(
                    "UPDATE accounts SET auth_token = $2, friendly_name = $3 \
                     WHERE sid = $1 AND (auth_token <> $2 OR friendly_name <> $3)",
                    &a.sid,
                    &a.auth_token,
                    &a.friendly_name,
                );
                counts.add(created, updated);
            }
            for k in &w.api_keys {
                let created = run!(
                    "INSERT INTO api_keys (sid, account_sid, secret_sha256, date_created) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (sid) DO NOTHING",
                    &k.sid,
                    &k.account_sid,
                    &k.secret_sha256,
                    k.date_created,
                );
                let updated = run!(
                    "UPDATE api_keys SET account_sid = $2, secret_sha256 = $3 \
                     WHERE sid = $1 AND (account_sid <> $2 OR secret_sha256 <> $3)",
                    &k.sid,
                    &k.account_sid,
                    &k.secret_sha256,
                );
                counts.add(created, updated);
            }
            for c in &w.credentials {
                let created = run!(
                    "INSERT INTO credentials (sid, account_sid, friendly_name, type, sandbox, secret, date_created, \
                     date_updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (sid) DO NOTHING",
                    &c.sid,
                    &c.account_sid,
                    &c.friendly_name,
                    c.r#type.as_str(),
                    c.sandbox,
                    &c.secret,
                    c.date_created,
                );
                let updated = run!(
                    "UPDATE credentials SET friendly_name = $3, sandbox = $4, secret = $5, date_updated = $6 \
                     WHERE sid = $1 AND account_sid = $2 AND NOT (friendly_name IS NOT DISTINCT FROM $3 \
                     AND sandbox = $4 AND secret = $5)",
                    &c.sid,
                    &c.account_sid,
                    &c.friendly_name,
                    c.sandbox,
                    &c.secret,
                    c.date_updated,
                );
                counts.add(created, updated);
            }
            for s in &w.services {
                let created = run!(
                    "INSERT INTO services (sid, account_sid, friendly_name, push_include_date, \
                     push_apn_credential_sid, push_fcm_credential_sid, totp_issuer, totp_time_step, \
                     totp_code_length, totp_skew, settings, date_created, date_updated) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) ON CONFLICT (sid) DO NOTHING",
                    &s.sid,
                    &s.account_sid,
                    &s.settings.friendly_name,
                    s.settings.push_include_date,
                    &s.settings.push_apn_credential_sid,
                    &s.settings.push_fcm_credential_sid,
                    &s.settings.totp_issuer,
                    s.settings.totp_time_step,
                    s.settings.totp_code_length,
                    s.settings.totp_skew,
                    &s.settings.other,
                    s.date_created,
                );
                let updated = run!(
                    "UPDATE services SET friendly_name = $3, push_include_date = $4, push_apn_credential_sid = $5, \
                     push_fcm_credential_sid = $6, totp_issuer = $7, totp_time_step = $8, totp_code_length = $9, \
                     totp_skew = $10, date_updated = $11 WHERE sid = $1 AND account_sid = $2 AND NOT (\
                     friendly_name = $3 AND push_include_date = $4 \
                     AND push_apn_credential_sid IS NOT DISTINCT FROM $5 \
                     AND push_fcm_credential_sid IS NOT DISTINCT FROM $6 AND totp_issuer IS NOT DISTINCT FROM $7 \
                     AND totp_time_step IS NOT DISTINCT FROM $8 AND totp_code_length IS NOT DISTINCT FROM $9 \
                     AND totp_skew IS NOT DISTINCT FROM $10)",
                    &s.sid,
                    &s.account_sid,
                    &s.settings.friendly_name,
                    s.settings.push_include_date,
                    &s.settings.push_apn_credential_sid,
                    &s.settings.push_fcm_credential_sid,
                    &s.settings.totp_issuer,
                    s.settings.totp_time_step,
                    s.settings.totp_code_length,
                    s.settings.totp_skew,
                    s.date_updated,
                );
                counts.add(created, updated);
            }
            for (h, fixed_sid) in &w.webhooks {
                let existing: Option<String> = if *fixed_sid {
                    Some(h.sid.clone())
                } else {
                    sqlx::query_scalar::<_, String>(
                        "SELECT sid FROM webhooks WHERE service_sid = $1 AND friendly_name = $2 ORDER BY id LIMIT 1",
                    )
                    .bind(&h.service_sid)
                    .bind(&h.settings.friendly_name)
                    .fetch_optional(&mut *tx)
                    .await?
                };
                let created = if *fixed_sid || existing.is_none() {
                    run!(
                        "INSERT INTO webhooks (sid, service_id, account_sid, service_sid, friendly_name, event_types, \
                         webhook_url, webhook_method, status, version, date_created, date_updated) \
                         SELECT $1, id, account_sid, sid, $3, $4, $5, $6, $7, $8, $9, $9 FROM services WHERE sid = $2 \
                         ON CONFLICT (sid) DO NOTHING",
                        &h.sid,
                        &h.service_sid,
                        &h.settings.friendly_name,
                        &h.settings.event_types,
                        &h.settings.webhook_url,
                        &h.webhook_method,
                        h.settings.status.as_str(),
                        &h.settings.version,
                        h.date_created,
                    )
                } else {
                    0
                };
                let sid = existing.unwrap_or_else(|| h.sid.clone());
                let updated = run!(
                    "UPDATE webhooks SET friendly_name = $3, event_types = $4, webhook_url = $5, status = $6, \
                     version = $7, date_updated = $8 WHERE sid = $1 AND service_sid = $2 AND NOT (\
                     friendly_name = $3 AND event_types = $4 AND webhook_url = $5 AND status = $6 AND version = $7)",
                    &sid,
                    &h.service_sid,
                    &h.settings.friendly_name,
                    &h.settings.event_types,
                    &h.settings.webhook_url,
                    h.settings.status.as_str(),
                    &h.settings.version,
                    h.date_updated,
                );
                counts.add(created, updated);
            }
            tx.commit().await?;
            Ok(counts)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use super::*;
    use crate::domain::sid::ServiceSid;
    use crate::domain::status::{CredentialType, WebhookStatus};
    use crate::store::services::ServiceSettings;
    use crate::store::webhooks::WebhookSettings;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const VA: &str = "VA0123456789abcdef0123456789abcdef";

    fn writes(name: &str) -> SeedWrites {
        let account =
            AccountRow { sid: AC.into(), auth_token: "token-123".into(), friendly_name: "A".into(), date_created: 1 };
        let service = ServiceRow {
            id: 0,
            sid: VA.into(),
            account_sid: AC.into(),
            settings: ServiceSettings { totp_skew: Some(1), ..ServiceSettings::named(name) },
            date_created: 1,
            date_updated: 1,
        };
        let credential = CredentialRow {
            id: 0,
            sid: "CR0123456789abcdef0123456789abcdef".into(),
            account_sid: AC.into(),
            friendly_name: None,
            r#type: CredentialType::Fcm,
            sandbox: false,
            secret: "sealed".into(),
            date_created: 1,
            date_updated: 1,
        };
        let webhook = WebhookRow {
            id: 0,
            sid: "YW0123456789abcdef0123456789abcdef".into(),
            service_id: 0,
            account_sid: AC.into(),
            service_sid: VA.into(),
            webhook_method: "POST".into(),
            settings: WebhookSettings {
                friendly_name: "app".into(),
                event_types: "*".into(),
                webhook_url: "http://127.0.0.1:9".into(),
                status: WebhookStatus::Enabled,
                version: "v2".into(),
            },
            date_created: 1,
            date_updated: 1,
        };
        SeedWrites {
            accounts: vec![account],
            api_keys: Vec::new(),
            credentials: vec![credential],
            services: vec![service],
            webhooks: vec![(webhook, false)],
        }
    }

    #[tokio::test]
    async fn a_seed_is_created_then_left_alone_then_updated_in_place() {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        assert_eq!(
            store.apply_seed(&writes("Owl")).await.unwrap(),
            SeedCounts { created: 4, updated: 0, unchanged: 0 }
        );
        assert_eq!(
            store.apply_seed(&writes("Owl")).await.unwrap(),
            SeedCounts { created: 0, updated: 0, unchanged: 4 }
        );
        let mut later = writes("Owl Bank");
        later.services[0].date_updated = 2;
        // A webhook without a fixed SID is found by its name: its new SID is not used.
        later.webhooks[0].0.sid = "YWffffffffffffffffffffffffffffffff".into();
        later.webhooks[0].0.settings.webhook_url = "http://127.0.0.1:10".into();
        assert_eq!(store.apply_seed(&later).await.unwrap(), SeedCounts { created: 0, updated: 2, unchanged: 2 });
        let service = store.service(AC, &ServiceSid::parse(VA).unwrap()).await.unwrap().unwrap();
        assert_eq!(
            (service.settings.friendly_name.as_str(), service.date_created, service.date_updated),
            ("Owl Bank", 1, 2)
        );
        let hooks = store
            .list_webhooks(
                service.id,
                &crate::store::Window { cursor: crate::store::Cursor::Start, descending: false, limit: 10 },
            )
            .await
            .unwrap();
        assert_eq!(hooks.rows.len(), 1);
        assert_eq!(
            (hooks.rows[0].sid.as_str(), hooks.rows[0].settings.webhook_url.as_str()),
            ("YW0123456789abcdef0123456789abcdef", "http://127.0.0.1:10")
        );
    }

    #[tokio::test]
    async fn a_seed_that_fails_late_writes_nothing() {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        let mut failing = writes("Owl");
        // An API key of no account breaks a foreign key, after the account was written.
        failing.api_keys.push(ApiKeyRow {
            sid: "SK0123456789abcdef0123456789abcdef".into(),
            account_sid: "AC00000000000000000000000000000000".into(),
            secret_sha256: vec![0; 32],
            date_created: 1,
        });
        assert!(store.apply_seed(&failing).await.is_err());
        assert!(store.account(AC).await.unwrap().is_none());
        assert!(store.service(AC, &ServiceSid::parse(VA).unwrap()).await.unwrap().is_none());
        assert_eq!(
            store.apply_seed(&writes("Owl")).await.unwrap().created,
            4,
            "the writer is usable after the rollback"
        );
    }
}
