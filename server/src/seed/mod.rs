//! The seed file (`--seed FILE`, README "Seed file"): accounts, API keys, push credentials,
//! Services with fixed SIDs, their webhooks and virtual devices, put in place at every start.
//!
//! [`Seed::load`] reads and checks the whole file before the database is touched: the shape and
//! every scalar while parsing ([`file`]), then what the file alone can tell (duplicates, each
//! credential's material read from its files and validated as the Credentials API does, push
//! settings that name a credential of the file). [`Seed::prepare`] checks what needs the
//! database (a SID held by another account, a credential named but not in the file) and
//! [`Seed::apply`] writes everything in one transaction (`Store::apply_seed`): a bad file stops
//! the start with the field's path, line and column, and leaves the database as it was.
//!
//! The file is the truth for what it names: each named resource takes the file's values (absent
//! settings their API default) and keeps its `date_created`; what it does not name, or no longer
//! names, is left alone.

pub mod file;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use self::file::{Credential, Field, FilePath, SeedFile, Version};
use crate::crypto::secretbox::SecretBox;
use crate::crypto::sha256;
use crate::domain::sid::{CredentialSid, FactorSid, ServiceSid, WebhookSid};
use crate::domain::status::{CredentialType, DeviceStyle, WebhookStatus};
use crate::error::ApiError;
use crate::push::secrets::Secret;
use crate::store::accounts::{AccountRow, ApiKeyRow};
use crate::store::credentials::CredentialRow;
use crate::store::seed::{Owned, SeedCounts, SeedWrites};
use crate::store::services::{ServiceRow, ServiceSettings};
use crate::store::webhooks::{WebhookRow, WebhookSettings};
use crate::store::Store;

/// A seed file, parsed and checked as far as the file alone allows.
pub struct Seed {
    path: PathBuf,
    text: String,
    file: SeedFile,
    /// The validated material of each credential, by account then credential.
    secrets: Vec<Vec<Secret>>,
}

/// Why a seed is refused: a field (its number, for [`file::locate`]) and the reason, or the
/// database failing.
enum Refusal {
    Field(usize, String),
    Store(sqlx::Error),
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Refusal {
        Refusal::Store(e)
    }
}

fn refuse<T>(field: &Field<T>, reason: impl Into<String>) -> Refusal {
    Refusal::Field(field.at, reason.into())
}

/// A virtual device of the seed file, checked. startup.rs enrols it once the seed's transaction
/// has committed (README.md, "Seed file").
#[derive(Debug, Clone)]
pub struct SeedDevice {
    /// Where it is in the file (`accounts[0].services[1].devices[2]`), for errors.
    pub path: String,
    pub account_sid: String,
    pub service_sid: ServiceSid,
    pub identity: String,
    pub factor_sid: FactorSid,
    pub style: DeviceStyle,
    pub friendly_name: Option<String>,
    pub push_token: Option<String>,
}

impl Seed {
    /// Reads, parses and checks the seed file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Seed> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the seed file {}", path.display()))?;
        Seed::from_text(path, text)
    }

    fn from_text(path: &Path, text: String) -> anyhow::Result<Seed> {
        let file = file::parse(&text).map_err(|message| invalid(path, &message))?;
        let mut seed = Seed { path: path.to_owned(), text, file, secrets: Vec::new() };
        let folder = path.parent().unwrap_or(Path::new("."));
        match seed.check(folder) {
            Ok(secrets) => {
                seed.secrets = secrets;
                Ok(seed)
            }
            Err(refusal) => Err(seed.refused(refusal)),
        }
    }

    fn refused(&self, refusal: Refusal) -> anyhow::Error {
        match refusal {
            Refusal::Field(at, reason) => invalid(&self.path, &file::locate(&self.text, at, &reason)),
            Refusal::Store(e) => anyhow::Error::from(e).context("reading the database to apply the seed file"),
        }
    }

    /// The account and API key SIDs the file configures (for `bootstrap`).
    pub fn configured(&self) -> (Vec<String>, Vec<String>) {
        let accounts = self.file.accounts.iter().map(|a| a.account_sid.to_string()).collect();
        let keys = self.file.accounts.iter().flat_map(|a| &a.api_keys).map(|k| k.sid.to_string()).collect();
        (accounts, keys)
    }

    /// Duplicates, credential material, and push settings naming a credential of the file.
    fn check(&self, folder: &Path) -> Result<Vec<Vec<Secret>>, Refusal> {
        let mut seen = HashSet::new();
        let mut once = |field: &Field<String>| {
            if seen.insert(field.value.clone()) {
                Ok(())
            } else {
                Err(refuse(field, format!("{} appears twice in the file", field.value)))
            }
        };
        let as_text = |at: usize, value: &str| Field { value: value.to_owned(), at };
        let mut secrets = Vec::new();
        for account in &self.file.accounts {
            once(&as_text(account.account_sid.at, &account.account_sid))?;
            for key in &account.api_keys {
                once(&as_text(key.sid.at, &key.sid))?;
            }
            let mut materials = Vec::new();
            for credential in &account.credentials {
                once(&as_text(credential.sid.at, &credential.sid))?;
                materials.push(material(folder, credential)?);
            }
            secrets.push(materials);
            for service in &account.services {
                once(&as_text(service.sid.at, &service.sid))?;
                let refs = [
                    (&service.push.apn_credential_sid, CredentialType::Apn),
                    (&service.push.fcm_credential_sid, CredentialType::Fcm),
                ];
                for (reference, kind) in refs {
                    let Some(reference) = reference else { continue };
                    let named = account.credentials.iter().find(|c| c.sid.value == reference.value);
                    if let Some(credential) = named.filter(|c| c.kind.value != kind) {
                        return Err(refuse(reference, format!("{} is not an {kind} credential", credential.sid.value)));
                    }
                }
                let mut names = HashSet::new();
                for webhook in &service.webhooks {
                    if let Some(sid) = &webhook.sid {
                        once(&as_text(sid.at, sid))?;
                    }
                    if !names.insert(webhook.friendly_name.0.clone()) {
                        return Err(refuse(&webhook.friendly_name, "two webhooks of this Service have this name"));
                    }
                }
                for device in &service.devices {
                    once(&as_text(device.factor_sid.at, &device.factor_sid))?;
                }
            }
        }
        Ok(secrets)
    }

    /// Checks what needs the database (a SID held by another account or Service, a credential
    /// named but neither in the file nor stored) and makes the rows to write; writes nothing.
    pub async fn prepare(&self, store: &Store, secrets: &SecretBox, now: i64) -> anyhow::Result<SeedWrites> {
        self.writes(store, secrets, now).await.map_err(|refusal| self.refused(refusal))
    }

    /// Writes what [`Seed::prepare`] made in one transaction. The virtual devices come after,
    /// through the device path (startup.rs), once their Services exist.
    pub async fn apply(&self, store: &Store, writes: &SeedWrites) -> anyhow::Result<SeedCounts> {
        let counts = store.apply_seed(writes).await.context("writing the seed file's resources")?;
        tracing::info!(
            file = %self.path.display(),
            created = counts.created,
            updated = counts.updated,
            unchanged = counts.unchanged,
            "seed file applied"
        );
        Ok(counts)
    }

    async fn writes(&self, store: &Store, secrets: &SecretBox, now: i64) -> Result<SeedWrites, Refusal> {
        let mut w = SeedWrites::default();
        for (account, materials) in self.file.accounts.iter().zip(&self.secrets) {
            let account_sid = account.account_sid.to_string();
            w.accounts.push(AccountRow {
                sid: account_sid.clone(),
                auth_token: account.auth_token.0.clone(),
                friendly_name: account.friendly_name.as_ref().map_or("Configured account", |n| &n.0).to_owned(),
                date_created: now,
            });
            for key in &account.api_keys {
                w.api_keys.push(ApiKeyRow {
                    sid: key.sid.to_string(),
                    account_sid: account_sid.clone(),
                    secret_sha256: sha256(key.secret.0.as_bytes()).to_vec(),
                    date_created: now,
                });
            }
            for (credential, secret) in account.credentials.iter().zip(materials) {
                let stored = owned(store, Owned::Credential, &account_sid, &credential.sid).await?;
                let sealed = sealed_material(store, secrets, &account_sid, credential, secret, stored).await?;
                w.credentials.push(CredentialRow {
                    id: 0,
                    sid: credential.sid.to_string(),
                    account_sid: account_sid.clone(),
                    friendly_name: credential.friendly_name.as_ref().map(|n| n.0.clone()),
                    r#type: credential.kind.value,
                    sandbox: credential.sandbox,
                    secret: sealed,
                    date_created: now,
                    date_updated: now,
                });
            }
            for service in &account.services {
                owned(store, Owned::Service, &account_sid, &service.sid).await?;
                let refs = [
                    (&service.push.apn_credential_sid, CredentialType::Apn),
                    (&service.push.fcm_credential_sid, CredentialType::Fcm),
                ];
                for (reference, kind) in refs {
                    let Some(reference) = reference else { continue };
                    if account.credentials.iter().any(|c| c.sid.value == reference.value) {
                        continue;
                    }
                    match store.credential(&account_sid, &reference.value).await? {
                        Some(c) if c.r#type == kind => {}
                        Some(_) => {
                            return Err(refuse(reference, format!("{} is not an {kind} credential", **reference)))
                        }
                        None => {
                            return Err(refuse(
                                reference,
                                format!("no credential {} in this account, in the file or stored", **reference),
                            ))
                        }
                    }
                }
                let sid_of = |r: &Option<Field<CredentialSid>>| r.as_ref().map(|r| r.to_string());
                w.services.push(ServiceRow {
                    id: 0,
                    sid: service.sid.to_string(),
                    account_sid: account_sid.clone(),
                    settings: ServiceSettings {
                        push_include_date: service.push.include_date,
                        push_apn_credential_sid: sid_of(&service.push.apn_credential_sid),
                        push_fcm_credential_sid: sid_of(&service.push.fcm_credential_sid),
                        totp_issuer: service.totp.issuer.as_ref().map(|i| i.0.clone()),
                        totp_time_step: service.totp.time_step.map(|v| v.0),
                        totp_code_length: service.totp.code_length.map(|v| v.0),
                        totp_skew: service.totp.skew.map(|v| v.0),
                        ..ServiceSettings::named(&service.friendly_name.0)
                    },
                    date_created: now,
                    date_updated: now,
                });
                for webhook in &service.webhooks {
                    if let Some(sid) = &webhook.sid {
                        let holder = store.webhook_service(sid).await?;
                        if holder.as_ref().is_some_and(|holder| *holder != *service.sid.value) {
                            return Err(refuse(sid, "is a webhook of another Service"));
                        }
                    }
                    let row = WebhookRow {
                        id: 0,
                        sid: webhook.sid.as_ref().map_or_else(WebhookSid::generate, |s| s.value.clone()).into(),
                        service_id: 0,
                        account_sid: account_sid.clone(),
                        service_sid: service.sid.to_string(),
                        webhook_method: "POST".to_owned(),
                        settings: WebhookSettings {
                            friendly_name: webhook.friendly_name.0.clone(),
                            event_types: webhook.event_types.0.join(","),
                            webhook_url: webhook.webhook_url.0.clone(),
                            status: webhook.status.as_ref().map_or(WebhookStatus::Enabled, |s| s.value),
                            version: webhook.version.as_ref().map_or(Version::V2, |v| v.value).as_str().to_owned(),
                        },
                        date_created: now,
                        date_updated: now,
                    };
                    w.webhooks.push((row, webhook.sid.is_some()));
                }
                for device in &service.devices {
                    // A Factor SID already held elsewhere would make its enrolment fail after
                    // the transaction: refuse it now. Held here, the device is left alone.
                    let held = store.factor_anywhere(&device.factor_sid).await?;
                    let elsewhere = held.is_some_and(|f| {
                        f.account_sid != account_sid
                            || f.service_sid != *service.sid.value
                            || f.identity != device.identity.0
                    });
                    if elsewhere {
                        return Err(refuse(&device.factor_sid, "is a Factor of another account, Service or identity"));
                    }
                }
            }
        }
        Ok(w)
    }

    /// The virtual devices of the file, in file order.
    pub fn devices(&self) -> Vec<SeedDevice> {
        let mut devices = Vec::new();
        for (a, account) in self.file.accounts.iter().enumerate() {
            for (s, service) in account.services.iter().enumerate() {
                for (d, device) in service.devices.iter().enumerate() {
                    devices.push(SeedDevice {
                        path: format!("accounts[{a}].services[{s}].devices[{d}]"),
                        account_sid: account.account_sid.to_string(),
                        service_sid: service.sid.value.clone(),
                        identity: device.identity.0.clone(),
                        factor_sid: device.factor_sid.value.clone(),
                        style: device.style.as_ref().map_or(DeviceStyle::Android, |s| s.value),
                        friendly_name: device.friendly_name.as_ref().map(|n| n.0.clone()),
                        push_token: device.push_token.as_ref().map(|t| t.0.clone()),
                    });
                }
            }
        }
        devices
    }
}

fn invalid(path: &Path, message: &str) -> anyhow::Error {
    anyhow::anyhow!("the seed file {} is not valid: {message}", path.display())
}

/// Fails when the Service or credential `sid` exists in another account; true when it exists
/// in `account_sid`.
async fn owned<T>(store: &Store, kind: Owned, account_sid: &str, sid: &Field<T>) -> Result<bool, Refusal>
where
    T: std::ops::Deref<Target = str>,
{
    match store.owner_of(kind, sid).await? {
        Some(owner) if owner == account_sid => Ok(true),
        Some(_) => Err(refuse(sid, "belongs to another account")),
        None => Ok(false),
    }
}

/// The material to store: the stored ciphertext when it holds the same material (sealing again
/// would change it at every start), else `secret` sealed.
async fn sealed_material(
    store: &Store,
    secrets: &SecretBox,
    account_sid: &str,
    credential: &Credential,
    secret: &Secret,
    stored: bool,
) -> Result<String, Refusal> {
    let plain = serde_json::to_vec(secret).map_err(|e| refuse(&credential.sid, e.to_string()))?;
    if stored {
        if let Some(row) = store.credential(account_sid, &credential.sid).await? {
            if row.r#type != credential.kind.value {
                return Err(refuse(
                    &credential.kind,
                    format!("cannot change: the stored credential is {}", row.r#type),
                ));
            }
            if secrets.open(&row.secret).as_deref() == Some(plain.as_slice()) {
                return Ok(row.secret);
            }
        }
    }
    Ok(secrets.seal(&plain))
}

/// A credential's material, read from its files and validated as the Credentials API does.
fn material(folder: &Path, c: &Credential) -> Result<Secret, Refusal> {
    let read = |f: &Field<FilePath>| {
        let path = folder.join(&f.0);
        std::fs::read_to_string(&path).map_err(|e| refuse(f, format!("cannot read {}: {e}", path.display())))
    };
    // The API parameter each file or value stands for, to name the field at fault.
    let field_of = |name: &str| -> Option<usize> {
        match name {
            "Secret" => c.secret_file.as_ref().map(|f| f.at),
            "Certificate" => c.certificate_file.as_ref().map(|f| f.at),
            "PrivateKey" => c.private_key_file.as_ref().map(|f| f.at),
            "KeyId" => c.key_id.as_ref().map(|f| f.at),
            "TeamId" => c.team_id.as_ref().map(|f| f.at),
            _ => None,
        }
    };
    let seed_name = |name: &'static str| match name {
        "Secret" => "secret_file",
        "Certificate" => "certificate_file",
        "PrivateKey" => "private_key_file",
        "KeyId" => "key_id",
        "TeamId" => "team_id",
        other => other,
    };
    let from_api = |e: ApiError| match e {
        ApiError::InvalidParameter { name, reason } => match field_of(name) {
            Some(at) => Refusal::Field(at, reason),
            None => refuse(&c.kind, format!("{}: {reason}", seed_name(name))),
        },
        ApiError::MissingParameter(name) => {
            refuse(&c.kind, format!("this {} credential needs {}", c.kind.value, seed_name(name)))
        }
        other => refuse(&c.kind, other.to_string()),
    };
    let misplaced = match c.kind.value {
        CredentialType::Fcm => [c.certificate_file.as_ref().map(|f| f.at), c.private_key_file.as_ref().map(|f| f.at)]
            .into_iter()
            .chain([c.key_id.as_ref().map(|f| f.at), c.team_id.as_ref().map(|f| f.at)])
            .flatten()
            .next(),
        CredentialType::Apn => c.secret_file.as_ref().map(|f| f.at),
    };
    if let Some(at) = misplaced {
        return Err(Refusal::Field(at, format!("is not a field of an {} credential", c.kind.value)));
    }
    match c.kind.value {
        CredentialType::Fcm => {
            let text = c.secret_file.as_ref().map(read).transpose()?;
            Secret::fcm(text.as_deref()).map_err(from_api)
        }
        CredentialType::Apn => {
            let certificate = c.certificate_file.as_ref().map(read).transpose()?;
            let key = c.private_key_file.as_ref().map(read).transpose()?;
            let (key_id, team_id) = (c.key_id.as_ref().map(|f| f.as_str()), c.team_id.as_ref().map(|f| f.as_str()));
            Secret::apn(certificate.as_deref(), key.as_deref(), key_id, team_id).map_err(from_api)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests;
