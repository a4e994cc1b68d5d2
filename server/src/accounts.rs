//! Who may call the API: accounts (`AC…` + auth token) and API keys (`SK…` + secret).
//!
//! Accounts come from the environment (`VERIFY_PUSH_ACCOUNT_SID`/`_AUTH_TOKEN`), from an accounts
//! file, or are generated on first start. They live in the database, so every instance sees the
//! same ones; an instance starting with a new auth token or without an API key rewrites them
//! there (API keys exist only while configured). Each instance caches a credential for at most
//! `--accounts-refresh-ms` (2 s by default) after reading it, so a rotation or a removal reaches
//! every instance within that time, at the cost of one indexed read per credential per period.
//! Secrets are compared in constant time (hash then compare) and never logged.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;

use crate::config::ServeArgs;
use crate::crypto::{digests_equal, sha256};
use crate::domain::sid::{random_hex, AccountSid, ApiKeySid};
use crate::store::accounts::{AccountRow, ApiKeyRow};
use crate::store::Store;

/// A credential as cached: the account it opens and the SHA-256 of its secret.
#[derive(Clone)]
struct Credential {
    account_sid: String,
    secret_sha256: [u8; 32],
}

/// Authenticates Basic credentials against the accounts and API keys in the store.
pub struct Accounts {
    store: Store,
    /// Credentials read from the store, and when.
    cache: RwLock<HashMap<String, (Credential, Instant)>>,
    /// How long a cached credential is trusted before it is read again.
    refresh: Duration,
}

impl Accounts {
    pub fn new(store: Store, refresh: Duration) -> Accounts {
        Accounts { store, cache: RwLock::new(HashMap::new()), refresh }
    }

    /// The account SID that `username`/`password` authenticate as, if they do.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Option<String>, sqlx::Error> {
        let cached = self.cache.read().ok().and_then(|c| {
            c.get(username).filter(|(_, read_at)| read_at.elapsed() < self.refresh).map(|(c, _)| c.clone())
        });
        let credential = match cached {
            Some(c) => c,
            None => {
                let loaded = self.load(username).await?;
                if let Ok(mut cache) = self.cache.write() {
                    match &loaded {
                        Some(c) => cache.insert(username.to_owned(), (c.clone(), Instant::now())),
                        None => cache.remove(username),
                    };
                }
                let Some(c) = loaded else { return Ok(None) };
                c
            }
        };
        Ok(digests_equal(&sha256(password.as_bytes()), &credential.secret_sha256).then_some(credential.account_sid))
    }

    async fn load(&self, username: &str) -> Result<Option<Credential>, sqlx::Error> {
        if let Some(sid) = AccountSid::parse(username) {
            Ok(self
                .store
                .account(&sid)
                .await?
                .map(|a| Credential { secret_sha256: sha256(a.auth_token.as_bytes()), account_sid: a.sid }))
        } else if let Some(sid) = ApiKeySid::parse(username) {
            Ok(self.store.api_key(&sid).await?.and_then(|k| {
                Some(Credential { secret_sha256: k.secret_sha256.try_into().ok()?, account_sid: k.account_sid })
            }))
        } else {
            Ok(None)
        }
    }

    /// The auth token of an account (the key of its webhook signatures).
    pub async fn auth_token(&self, account_sid: &str) -> Result<Option<String>, sqlx::Error> {
        Ok(self.store.account(account_sid).await?.map(|a| a.auth_token))
    }
}

/// One account of an accounts file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    account_sid: String,
    auth_token: String,
    #[serde(default)]
    friendly_name: Option<String>,
    #[serde(default)]
    api_keys: Vec<ApiKeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyEntry {
    sid: String,
    secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    accounts: Vec<AccountEntry>,
}

/// An account generated on first start, to be shown to the operator once.
pub struct GeneratedAccount {
    pub account_sid: String,
    pub auth_token: String,
}

/// Puts the configured accounts in place and deletes the API keys no longer configured (API keys
/// come only from configuration). Returns the account generated on first start, when nothing
/// was configured and the database had none.
pub async fn bootstrap(store: &Store, args: &ServeArgs, now: i64) -> anyhow::Result<Option<GeneratedAccount>> {
    let mut configured = false;
    let mut api_keys = Vec::new();
    if let Some(path) = &args.accounts_file {
        for entry in read_accounts_file(path)? {
            put_account(store, &entry.account_sid, &entry.auth_token, entry.friendly_name.as_deref(), now).await?;
            for key in &entry.api_keys {
                put_api_key(store, &key.sid, &key.secret, &entry.account_sid, now).await?;
                api_keys.push(key.sid.clone());
            }
            configured = true;
        }
    }
    match (&args.account_sid, &args.auth_token) {
        (Some(sid), Some(token)) => {
            put_account(store, sid, token, None, now).await?;
            if let (Some(key), Some(secret)) = (&args.api_key_sid, &args.api_key_secret) {
                put_api_key(store, key, secret, sid, now).await?;
                api_keys.push(key.clone());
            } else if args.api_key_sid.is_some() || args.api_key_secret.is_some() {
                anyhow::bail!("VERIFY_PUSH_API_KEY_SID and VERIFY_PUSH_API_KEY_SECRET go together");
            }
            configured = true;
        }
        (None, None) => {
            if args.api_key_sid.is_some() {
                anyhow::bail!("VERIFY_PUSH_API_KEY_SID needs VERIFY_PUSH_ACCOUNT_SID and VERIFY_PUSH_AUTH_TOKEN");
            }
        }
        _ => anyhow::bail!("VERIFY_PUSH_ACCOUNT_SID and VERIFY_PUSH_AUTH_TOKEN go together"),
    }
    let removed = store.delete_api_keys_except(&api_keys).await.context("removing unconfigured API keys")?;
    if removed > 0 {
        tracing::info!(removed, "API keys no longer configured were removed");
    }
    if configured {
        return Ok(None);
    }
    let generated = AccountRow {
        sid: AccountSid::generate().into(),
        auth_token: random_hex::<16>(),
        friendly_name: "Generated account".to_owned(),
        date_created: now,
    };
    if store.insert_first_account(&generated).await? {
        return Ok(Some(GeneratedAccount { account_sid: generated.sid, auth_token: generated.auth_token }));
    }
    Ok(None)
}

fn read_accounts_file(path: &Path) -> anyhow::Result<Vec<AccountEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the accounts file {}", path.display()))?;
    let file: AccountsFile =
        serde_json::from_str(&text).with_context(|| format!("the accounts file {} is not valid", path.display()))?;
    Ok(file.accounts)
}

async fn put_account(store: &Store, sid: &str, token: &str, name: Option<&str>, now: i64) -> anyhow::Result<()> {
    if AccountSid::parse(sid).is_none() {
        anyhow::bail!("account SID {sid:?} must be AC followed by 32 hexadecimal digits");
    }
    if token.len() < 8 {
        anyhow::bail!("the auth token of {sid} must be at least 8 characters");
    }
    let row = AccountRow {
        sid: sid.to_owned(),
        auth_token: token.to_owned(),
        friendly_name: name.unwrap_or("Configured account").to_owned(),
        date_created: now,
    };
    store.upsert_account(&row).await.context("storing an account")
}

async fn put_api_key(store: &Store, sid: &str, secret: &str, account_sid: &str, now: i64) -> anyhow::Result<()> {
    if ApiKeySid::parse(sid).is_none() {
        anyhow::bail!("API key SID {sid:?} must be SK followed by 32 hexadecimal digits");
    }
    if secret.len() < 8 {
        anyhow::bail!("the secret of API key {sid} must be at least 8 characters");
    }
    let row = ApiKeyRow {
        sid: sid.to_owned(),
        account_sid: account_sid.to_owned(),
        secret_sha256: sha256(secret.as_bytes()).to_vec(),
        date_created: now,
    };
    store.upsert_api_key(&row).await.context("storing an API key")
}
