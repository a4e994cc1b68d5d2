//! Start-up seeding of who may call the API: the accounts and API keys of the configuration
//! (`VERIFY_PUSH_ACCOUNT_SID`/`_AUTH_TOKEN`/`_API_KEY_*` and the accounts file, README
//! "Accounts") are written to the database, API keys no longer configured are removed, and an
//! account is generated on the first start of an unconfigured server. [`crate::accounts`]
//! authenticates against what this leaves in the database.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::config::ServeArgs;
use crate::crypto::sha256;
use crate::domain::rules::MIN_SECRET_LEN;
use crate::domain::sid::{random_hex, AccountSid, ApiKeySid};
use crate::store::accounts::{AccountRow, ApiKeyRow};
use crate::store::Store;

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

/// The accounts and API keys a seed file (`--seed`, README "Seed file") configures: its own
/// transaction writes them, after this; here they count as configured.
#[derive(Debug, Default)]
pub struct Seeded {
    pub accounts: Vec<String>,
    pub api_keys: Vec<String>,
}

/// Puts the configured accounts in place and deletes the API keys no longer configured (API keys
/// come only from configuration: the flags, the accounts file or the seed file). Returns the
/// account generated on first start, when nothing was configured and the database had none.
/// An account or API key configured both by the seed file and by the flags or the accounts file
/// stops the start: each lives in one place.
pub async fn bootstrap(
    store: &Store,
    args: &ServeArgs,
    seeded: &Seeded,
    now: i64,
) -> anyhow::Result<Option<GeneratedAccount>> {
    let mut configured = !seeded.accounts.is_empty();
    let mut api_keys = seeded.api_keys.clone();
    let twice = |kind: &str, sid: &str| {
        anyhow::anyhow!(
            "{kind} {sid} is configured both by the seed file and by the flags or the accounts file: \
             configure it in one place"
        )
    };
    let entries = match &args.accounts_file {
        Some(path) => read_accounts_file(path)?,
        None => Vec::new(),
    };
    for sid in entries.iter().map(|e| &e.account_sid).chain(&args.account_sid) {
        if seeded.accounts.contains(sid) {
            return Err(twice("account", sid));
        }
    }
    for sid in entries.iter().flat_map(|e| e.api_keys.iter().map(|k| &k.sid)).chain(&args.api_key_sid) {
        if seeded.api_keys.contains(sid) {
            return Err(twice("API key", sid));
        }
    }
    for entry in entries {
        put_account(store, &entry.account_sid, &entry.auth_token, entry.friendly_name.as_deref(), now).await?;
        for key in &entry.api_keys {
            put_api_key(store, &key.sid, &key.secret, &entry.account_sid, now).await?;
            api_keys.push(key.sid.clone());
        }
        configured = true;
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
    if token.len() < MIN_SECRET_LEN {
        anyhow::bail!("the auth token of {sid} must be at least {MIN_SECRET_LEN} characters");
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
    if secret.len() < MIN_SECRET_LEN {
        anyhow::bail!("the secret of API key {sid} must be at least {MIN_SECRET_LEN} characters");
    }
    let row = ApiKeyRow {
        sid: sid.to_owned(),
        account_sid: account_sid.to_owned(),
        secret_sha256: sha256(secret.as_bytes()).to_vec(),
        date_created: now,
    };
    store.upsert_api_key(&row).await.context("storing an API key")
}
