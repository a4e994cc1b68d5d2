//! Device profiles on disk: one JSON file per profile, readable by its owner only (0600), holding
//! the P-256 private key and what the SDKs keep after enrolment (factor SID, credential SID,
//! account SID, status, clock correction).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use p256::ecdsa::SigningKey;
use serde::{Deserialize, Serialize};

use crate::encoding::Style;
use crate::error::DeviceError;

/// One enrolled (or enrolling) device.
#[derive(Clone, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    /// API base, ending in `/v2/` (e.g. `https://verify.twilio.com/v2/`).
    pub base_url: String,
    pub style: Style,
    pub service_sid: String,
    pub identity: String,
    pub friendly_name: String,
    pub push_token: Option<String>,
    pub factor_sid: Option<String>,
    pub account_sid: Option<String>,
    pub credential_sid: Option<String>,
    pub status: Option<String>,
    /// Seconds added to the local clock, learnt from a server's `Date` after a 401.
    #[serde(default)]
    pub time_correction: i64,
    /// A PEM CA certificate to trust in addition to the usual roots (a self-signed server).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// The P-256 private scalar, hex.
    private_key: String,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("factor_sid", &self.factor_sid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// A new profile with a fresh key.
    pub fn new(name: &str, base_url: &str, style: Style, service_sid: &str, identity: &str) -> Profile {
        let key = SigningKey::random(&mut rand_core::OsRng);
        Profile {
            name: name.to_owned(),
            base_url: normalize_base_url(base_url),
            style,
            service_sid: service_sid.to_owned(),
            identity: identity.to_owned(),
            friendly_name: format!("verify-push-device {name}"),
            push_token: None,
            factor_sid: None,
            account_sid: None,
            credential_sid: None,
            status: None,
            time_correction: 0,
            ca_cert: None,
            private_key: hex(&key.to_bytes()),
        }
    }

    pub fn signing_key(&self) -> Result<SigningKey, DeviceError> {
        let bytes = unhex(&self.private_key).ok_or_else(|| DeviceError::Store("the stored key is not hex".into()))?;
        SigningKey::from_slice(&bytes).map_err(|_| DeviceError::Store("the stored key is not a P-256 key".into()))
    }
}

/// `http://host:8080` → `http://host:8080/v2/`; a URL already ending in `/v2` keeps it.
pub fn normalize_base_url(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    if trimmed.ends_with("/v2") {
        format!("{trimmed}/")
    } else {
        format!("{trimmed}/v2/")
    }
}

/// A folder of profiles.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    /// `$VERIFY_PUSH_DEVICE_HOME`, else `~/.verify-push-device`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("VERIFY_PUSH_DEVICE_HOME") {
            return PathBuf::from(dir);
        }
        std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from(".verify-push-device"), |h| Path::new(&h).join(".verify-push-device"))
    }

    fn path(&self, name: &str) -> Result<PathBuf, DeviceError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !name.starts_with('.');
        if !valid {
            return Err(DeviceError::Store(format!("invalid profile name {name:?} (letters, digits, - _ .)")));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    pub fn load(&self, name: &str) -> Result<Profile, DeviceError> {
        let path = self.path(name)?;
        let text = fs::read_to_string(&path).map_err(|e| {
            DeviceError::Store(format!("no profile {name:?} at {} ({e}); run `enroll` first", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| DeviceError::Store(format!("{} is not a profile: {e}", path.display())))
    }

    /// Writes the profile atomically with mode 0600.
    pub fn save(&self, profile: &Profile) -> Result<(), DeviceError> {
        let path = self.path(&profile.name)?;
        let io = |e: std::io::Error| DeviceError::Store(format!("{}: {e}", path.display()));
        fs::create_dir_all(&self.dir).map_err(io)?;
        let temp = path.with_extension("json.tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp).map_err(io)?;
        let text = serde_json::to_string_pretty(profile).map_err(|e| DeviceError::Store(e.to_string()))?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&temp, &path).map_err(io)
    }

    pub fn delete(&self, name: &str) -> Result<(), DeviceError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DeviceError::Store(format!("{}: {e}", path.display()))),
        }
    }

    /// Every profile in the folder.
    pub fn list(&self) -> Result<Vec<Profile>, DeviceError> {
        let Ok(entries) = fs::read_dir(&self.dir) else { return Ok(Vec::new()) };
        let mut profiles = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".json") {
                profiles.push(self.load(stem)?);
            }
        }
        profiles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(profiles)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_with_owner_only_permissions() {
        let dir = std::env::temp_dir().join(format!("vpd-store-{}", std::process::id()));
        let store = KeyStore::new(&dir);
        let profile = Profile::new("phone-1", "http://127.0.0.1:8080", Style::Ios, "VA1", "user-1234");
        store.save(&profile).unwrap_or_else(|e| panic!("{e}"));
        let loaded = store.load("phone-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.base_url, "http://127.0.0.1:8080/v2/");
        assert_eq!(loaded.signing_key().ok().map(|k| k.to_bytes()), profile.signing_key().ok().map(|k| k.to_bytes()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("phone-1.json")).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        assert_eq!(store.list().map(|l| l.len()).unwrap_or(0), 1);
        assert!(store.load("../etc/passwd").is_err());
        store.delete("phone-1").unwrap_or_else(|e| panic!("{e}"));
        assert!(store.load("phone-1").is_err());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn base_urls_gain_v2_once() {
        assert_eq!(normalize_base_url("https://verify.twilio.com/v2/"), "https://verify.twilio.com/v2/");
        assert_eq!(normalize_base_url("http://h:1/"), "http://h:1/v2/");
        assert_eq!(normalize_base_url("http://h:1/v2"), "http://h:1/v2/");
    }
}
