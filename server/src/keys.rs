//! The server's own keys: the access-token key (JWE) and the credentials key (push credentials
//! at rest). Each comes from configuration, or else is generated once and kept where
//! SECURITY.md says:
//!
//! - SQLite (a file): in a key file beside the database (`verify-push.keys` next to
//!   `verify-push.db`, mode 0600), or at `--keys-file`. Never in the database, so a copied
//!   database does not decrypt push credentials. A database that still holds its keys in
//!   `server_keys` (made before the key file existed) gives them up to the key file on start.
//! - PostgreSQL: at `--keys-file` when set (the same file on every instance); otherwise in the
//!   database as before, shared by every instance, with a warning at start.
//!
//! A server whose credentials key does not open the stored credentials refuses to start and says
//! why, rather than generate a new key and lose them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::config::ServeArgs;
use crate::crypto::access_token::TokenKey;
use crate::crypto::secretbox::SecretBox;
use crate::store::{Backend, Store};

const ACCESS_TOKEN_KEY: &str = "access_token_key";
const CREDENTIALS_KEY: &str = "credentials_key";

/// The two 256-bit keys of a server.
pub struct ServerKeys {
    pub access_token: [u8; 32],
    pub credentials: [u8; 32],
}

/// Where generated keys are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHome {
    File(PathBuf),
    Database,
}

impl KeyHome {
    /// `--keys-file`; else the file beside a SQLite database; else the database (PostgreSQL,
    /// in-memory SQLite).
    pub fn of(args: &ServeArgs, backend: Backend) -> KeyHome {
        if let Some(path) = &args.keys_file {
            return KeyHome::File(path.clone());
        }
        let url = &args.database.database_url;
        match crate::store::sqlite_file(url) {
            Some(db) if backend == Backend::Sqlite => KeyHome::File(db.with_extension("keys")),
            _ => KeyHome::Database,
        }
    }
}

/// The keys of this server (see the module's documentation).
pub async fn load(store: &Store, args: &ServeArgs) -> anyhow::Result<ServerKeys> {
    let home = KeyHome::of(args, store.backend());
    let configured =
        [(ACCESS_TOKEN_KEY, args.access_token_key.as_deref()), (CREDENTIALS_KEY, args.credentials_key.as_deref())];
    // A key file made by another instance between our read and our write wins: read it again.
    for _ in 0..3 {
        let (values, pending) = match &home {
            KeyHome::Database => (from_database(store, &configured).await?, None),
            KeyHome::File(path) => {
                let (values, pending) = from_file(store, path, &configured).await?;
                (values, Some(pending))
            }
        };
        let keys = ServerKeys {
            access_token: decode(ACCESS_TOKEN_KEY, &values[0])?,
            credentials: decode(CREDENTIALS_KEY, &values[1])?,
        };
        check_credentials(store, &keys, &home, args.credentials_key.is_some()).await?;
        match pending {
            None => return Ok(keys),
            Some(pending) => {
                if pending.persist().await? {
                    for name in &pending.moved {
                        store.delete_server_key(name).await.context("removing a key from the database")?;
                    }
                    if !pending.moved.is_empty() {
                        tracing::info!(file = %pending.path.display(), "server keys moved from the database to the key file");
                    }
                    return Ok(keys);
                }
            }
        }
    }
    anyhow::bail!("the key file changed under this server three times while it started")
}

/// The keys as stored in the database (PostgreSQL without `--keys-file`; in-memory SQLite).
async fn from_database(store: &Store, configured: &[(&str, Option<&str>); 2]) -> anyhow::Result<Vec<String>> {
    let mut values = Vec::new();
    for (name, value) in configured {
        values.push(match value {
            Some(v) => (*v).to_owned(),
            None => {
                if store.backend() == Backend::Postgres {
                    tracing::warn!(
                        key = name,
                        "the {name} is kept in the database, where anyone who can read the database can use it; \
                         set it in the configuration or use --keys-file (SECURITY.md)"
                    );
                }
                store.server_key_or_insert(name, &generate()).await?
            }
        });
    }
    Ok(values)
}

/// A key file to write, and the database keys it takes over.
struct Pending {
    path: PathBuf,
    entries: BTreeMap<String, String>,
    /// Whether the file must be created (it did not exist), or rewritten (or left alone).
    create: bool,
    changed: bool,
    moved: Vec<String>,
}

impl Pending {
    /// Writes the key file if needed. False when another instance created it first.
    async fn persist(&self) -> anyhow::Result<bool> {
        if !self.changed {
            return Ok(true);
        }
        let (path, entries, create) = (self.path.clone(), self.entries.clone(), self.create);
        tokio::task::spawn_blocking(move || write_key_file(&path, &entries, create))
            .await
            .context("writing the key file")?
            .with_context(|| format!("cannot write the key file {}", self.path.display()))
    }
}

async fn from_file(
    store: &Store,
    path: &Path,
    configured: &[(&str, Option<&str>); 2],
) -> anyhow::Result<(Vec<String>, Pending)> {
    let existing = read_key_file(path)?;
    let mut entries = existing.clone().unwrap_or_default();
    let mut moved = Vec::new();
    let mut values = Vec::new();
    for (name, value) in configured {
        if let Some(v) = value {
            values.push((*v).to_owned());
            continue;
        }
        let in_database = store.server_key(name).await?;
        let value = match (entries.get(*name), in_database) {
            (Some(in_file), Some(in_db)) if *in_file != in_db => anyhow::bail!(
                "the key file {} and the database hold different values of {name}; keep the one the \
                 data was made with and delete the other (SECURITY.md)",
                path.display()
            ),
            (Some(in_file), in_db) => {
                if in_db.is_some() {
                    moved.push((*name).to_owned());
                }
                in_file.clone()
            }
            (None, Some(in_db)) => {
                moved.push((*name).to_owned());
                in_db
            }
            (None, None) => generate(),
        };
        entries.insert((*name).to_owned(), value.clone());
        values.push(value);
    }
    let changed = Some(&entries) != existing.as_ref();
    Ok((values, Pending { path: path.to_owned(), entries, create: existing.is_none(), changed, moved }))
}

/// Refuses to start when stored credentials do not open with the credentials key.
async fn check_credentials(store: &Store, keys: &ServerKeys, home: &KeyHome, configured: bool) -> anyhow::Result<()> {
    let Some(sealed) = store.any_credential_secret().await? else { return Ok(()) };
    if SecretBox::new(&keys.credentials).open(&sealed).is_some() {
        return Ok(());
    }
    let source = match (configured, home) {
        (true, _) => "VERIFY_PUSH_CREDENTIALS_KEY".to_owned(),
        (false, KeyHome::File(path)) if !path.exists() => {
            format!("a new key, because the key file {} does not exist", path.display())
        }
        (false, KeyHome::File(path)) => format!("the key file {}", path.display()),
        (false, KeyHome::Database) => "the database's server_keys".to_owned(),
    };
    anyhow::bail!(
        "the push credentials in the database cannot be decrypted with the credentials key from {source}: \
         the database was copied or restored without its key file, or the key changed. Put the key file that \
         belongs to this database in place (or set VERIFY_PUSH_CREDENTIALS_KEY to its credentials_key); \
         refusing to start rather than lose the credentials"
    )
}

fn generate() -> String {
    STANDARD.encode(TokenKey::generate_secret())
}

fn decode(name: &str, encoded: &str) -> anyhow::Result<[u8; 32]> {
    STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("the {name} must be 32 bytes in base64"))
}

/// `name=base64` lines; `#` starts a comment. `None` when the file does not exist.
fn read_key_file(path: &Path) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the key file {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        if mode & 0o077 != 0 {
            tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "the key file is readable by others; chmod 600 it");
        }
    }
    let mut entries = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, value) = line
            .split_once('=')
            .with_context(|| format!("the key file {} has a line that is not name=value", path.display()))?;
        entries.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(Some(entries))
}

/// Writes the key file with mode 0600: a temporary file, synced, then linked in place when the
/// file must be created (so that of two instances starting at once, one creates it and the other
/// reads it: false), or renamed over it.
fn write_key_file(path: &Path, entries: &BTreeMap<String, String>, create: bool) -> std::io::Result<bool> {
    let mut text = String::from(
        "# verify-push-server keys (32 bytes each, base64). Keep with the database, readable by the server only;\n\
         # without this file the push credentials in the database cannot be decrypted. See SECURITY.md.\n",
    );
    for (name, value) in entries {
        text.push_str(&format!("{name}={value}\n"));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension(format!("keys.{}.tmp", crate::domain::sid::random_hex::<8>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    let placed = written.and_then(|()| {
        if create {
            match std::fs::hard_link(&temporary, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        } else {
            std::fs::rename(&temporary, path).map(|()| true)
        }
    });
    let _ = std::fs::remove_file(&temporary);
    placed
}
