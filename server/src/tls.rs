//! HTTPS. The stock Android SDK refuses plain HTTP
//! (docs/protocol/device-protocol.md#https-on-android), so the server can serve TLS (rustls) with a
//! given certificate and key, or with a certificate it makes itself: `--tls-self-signed DIR`
//! creates a local CA and a server certificate for the configured host names on first start, and
//! reuses them after (the server certificate is renewed when the host names change or it nears
//! expiry). Devices trust `DIR/ca.pem`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// Host names a self-signed certificate covers unless configured: this machine, and the
/// Android emulator's alias for its host (10.0.2.2).
pub const DEFAULT_HOSTNAMES: &str = "localhost,127.0.0.1,::1,10.0.2.2";
const CA_NAME: &str = "verify-push-emulator local CA";
const SERVER_DAYS: i64 = 365;
const RENEW_DAYS: i64 = 30;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned { dir: PathBuf, hostnames: Vec<String> },
}

/// What a self-signed start did, for the operator.
#[derive(Debug, Clone)]
pub struct SelfSignedInfo {
    pub ca_pem: PathBuf,
    /// True when the CA was created by this start (the instructions are worth printing).
    pub created_ca: bool,
}

/// The rustls configuration for `source`.
pub fn server_config(source: &TlsSource) -> anyhow::Result<(rustls::ServerConfig, Option<SelfSignedInfo>)> {
    let (chain, key, info) = match source {
        TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?, None),
        TlsSource::SelfSigned { dir, hostnames } => {
            let info = ensure_self_signed(dir, hostnames)?;
            let mut chain = read_chain(&dir.join("server.pem"))?;
            chain.extend(read_chain(&dir.join("ca.pem"))?);
            (chain, read_key(&dir.join("server.key.pem"))?, Some(info))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not match or are unsupported")?;
    // ALPN is left to actix-http, which offers `http/1.1` alone: it is built without HTTP/2, and
    // a connection that negotiated `h2` would panic its worker (docs/ARCHITECTURE.md).
    Ok((config, info))
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read the certificate {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", path.display());
    Ok(chain)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("{} is not a PEM private key", path.display()))
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "verify-push-emulator");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// Creates the CA and server certificate in `dir` as needed. Keys are written 0600.
pub fn ensure_self_signed(dir: &Path, hostnames: &[String]) -> anyhow::Result<SelfSignedInfo> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (ca_pem, ca_key_pem) = (dir.join("ca.pem"), dir.join("ca.key.pem"));
    let created_ca = !ca_pem.exists() || !ca_key_pem.exists();
    let now = OffsetDateTime::now_utc();
    if created_ca {
        let key = KeyPair::generate()?;
        let mut params = ca_params()?;
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_pem, &key.serialize_pem())?;
        fs::write(&ca_pem, cert.pem()).with_context(|| format!("cannot write {}", ca_pem.display()))?;
    }
    let names_file = dir.join("hostnames.txt");
    let wanted = hostnames.join(",");
    let current = fs::read_to_string(&names_file).unwrap_or_default();
    let renew_at = fs::read_to_string(dir.join("server.expires")).ok().and_then(|t| t.trim().parse::<i64>().ok());
    let stale = renew_at.is_none_or(|at| at - RENEW_DAYS * 86_400 <= now.unix_timestamp());
    if created_ca || current.trim() != wanted || stale || !dir.join("server.pem").exists() {
        let ca_key = KeyPair::from_pem(&fs::read_to_string(&ca_key_pem)?).context("the stored CA key is unreadable")?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hostnames.to_vec()).context("invalid TLS host name")?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, hostnames.first().map_or("localhost", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = now - Duration::days(1);
        let expires = now + Duration::days(SERVER_DAYS);
        params.not_after = expires;
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&dir.join("server.key.pem"), &key.serialize_pem())?;
        fs::write(dir.join("server.pem"), cert.pem())?;
        fs::write(&names_file, &wanted)?;
        fs::write(dir.join("server.expires"), expires.unix_timestamp().to_string())?;
    }
    let ca_pem = fs::canonicalize(&ca_pem).unwrap_or(ca_pem);
    Ok(SelfSignedInfo { ca_pem, created_ca })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// How to make a device trust the CA, printed when the CA is created.
pub fn install_instructions(ca_pem: &Path) -> String {
    let ca = ca_pem.display();
    [
        format!("=== verify-push-server created a local CA: {ca} ==="),
        "Devices must trust it to reach this server over HTTPS.".to_owned(),
        String::new(),
        "Android emulator (the host is 10.0.2.2 from inside the emulator):".to_owned(),
        format!("  adb push {ca} /sdcard/Download/verify-push-ca.pem"),
        "  then Settings > Security > Encryption & credentials > Install a certificate > CA certificate,".to_owned(),
        "  and let the app trust user CAs in debug builds (res/xml/network_security_config.xml:".to_owned(),
        "  <debug-overrides><trust-anchors><certificates src=\"user\"/></trust-anchors></debug-overrides>).".to_owned(),
        String::new(),
        "iOS simulator:".to_owned(),
        format!("  xcrun simctl keychain booted add-root-cert {ca}"),
        String::new(),
        "verify-push-device:".to_owned(),
        format!("  verify-push-device enroll --ca-cert {ca} --url https://localhost:PORT ..."),
        String::new(),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_material_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("vps-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = ensure_self_signed(&dir, &names).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(first.created_ca);
        let ca = fs::read(dir.join("ca.pem")).unwrap_or_default();
        let server = fs::read(dir.join("server.pem")).unwrap_or_default();
        let second = ensure_self_signed(&dir, &names).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!second.created_ca);
        assert_eq!(fs::read(dir.join("ca.pem")).unwrap_or_default(), ca, "the CA is kept");
        assert_eq!(fs::read(dir.join("server.pem")).unwrap_or_default(), server, "so is the server certificate");
        ensure_self_signed(&dir, &["example.test".to_owned()]).unwrap_or_else(|e| panic!("{e:#}"));
        assert_ne!(fs::read(dir.join("server.pem")).unwrap_or_default(), server, "new host names, new certificate");
        assert_eq!(fs::read(dir.join("ca.pem")).unwrap_or_default(), ca);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("ca.key.pem")).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        assert!(server_config(&TlsSource::SelfSigned { dir: dir.clone(), hostnames: names }).is_ok());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_or_mismatched_files_are_clear_errors() {
        let missing = TlsSource::Files { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
        let error = server_config(&missing).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");
    }
}
