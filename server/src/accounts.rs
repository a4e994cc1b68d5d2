//! Who may call the API: accounts (`AC…` + auth token) and API keys (`SK…` + secret).
//!
//! Accounts are put in the database at start-up from configuration ([`crate::bootstrap`]), so
//! every instance sees the same ones; an instance starting with a new auth token or without an
//! API key rewrites them there (API keys exist only while configured). Each instance caches a credential for at most
//! `--accounts-refresh-ms` (2 s by default) after reading it, so a rotation or a removal reaches
//! every instance within that time, at the cost of one indexed read per credential per period.
//! Secrets are compared in constant time (hash then compare) and never logged.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::crypto::{digests_equal, sha256};
use crate::domain::sid::{AccountSid, ApiKeySid};
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
