//! Push credential secrets: what each kind holds, how it is validated on create/update, and the
//! keys it yields for sending. Never logged, never returned.
//!
//! Material is checked for what it is, with the parsers the sender uses: a certificate must
//! parse as X.509 (webpki, as rustls does), a key as a private key rustls can sign with
//! (PKCS#8, PKCS#1 or SEC1; RSA or ECDSA), and the two must pair (the same SubjectPublicKeyInfo);
//! a `.p8` must be a PKCS#8 P-256 key and a service account's `private_key` a PKCS#8 RSA key.
//! Anything else is a 400 naming the field. PEM is accepted as written or in the one-line form
//! Twilio's docs show (`-----BEGIN CERTIFICATE-----MIIF…-----END CERTIFICATE-----`, line breaks
//! absent or written `\n`), and stored re-armoured as proper PEM.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The secret material of a credential (stored encrypted as JSON).
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Secret {
    /// APNs certificate authentication: a client certificate and its key (PEM).
    ApnCertificate { certificate: String, private_key: String },
    /// APNs token authentication: a `.p8` key (PKCS#8 PEM, P-256), its key id and team id.
    ApnToken { private_key: String, key_id: String, team_id: String },
    /// FCM HTTP v1: a Google service-account JSON.
    Fcm { service_account: ServiceAccount },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::ApnCertificate { .. } => "Secret::ApnCertificate(..)",
            Secret::ApnToken { .. } => "Secret::ApnToken(..)",
            Secret::Fcm { .. } => "Secret::Fcm(..)",
        })
    }
}

/// The fields of a service-account JSON that FCM HTTP v1 needs.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub private_key: String,
    pub client_email: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

fn bad(field: &'static str, reason: &str) -> ApiError {
    ApiError::invalid(field, reason.to_owned())
}

/// One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`…) and its DER bytes.
struct Pem {
    label: String,
    der: Vec<u8>,
}

impl Pem {
    /// The PEM blocks of `text`, in proper PEM or in the one-line form (see the module docs);
    /// text around the blocks is ignored. `None` when a block is unterminated or its body is not
    /// base64.
    fn parse_all(text: &str) -> Option<Vec<Pem>> {
        const BEGIN: &str = "-----BEGIN ";
        let mut blocks = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(BEGIN) {
            let after = &rest[at + BEGIN.len()..];
            let (label, after) = after.split_once("-----")?;
            let end = format!("-----END {label}-----");
            let (body, after) = after.split_once(&end)?;
            let body: String =
                body.replace("\\n", "").replace("\\r", "").chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let der = STANDARD.decode(body).ok().filter(|der| !der.is_empty())?;
            blocks.push(Pem { label: label.to_owned(), der });
            rest = after;
        }
        Some(blocks)
    }

    /// The only PEM block of `text`, when it is labelled `label`.
    fn parse_one(text: &str, label: &str) -> Option<Pem> {
        let mut blocks = Pem::parse_all(text)?;
        (blocks.len() == 1 && blocks[0].label == label).then(|| blocks.remove(0))
    }

    /// Proper PEM: 64-column base64 between the armour lines.
    fn armour(blocks: &[Pem]) -> String {
        let mut text = String::new();
        for block in blocks {
            text.push_str(&format!("-----BEGIN {}-----\n", block.label));
            for line in STANDARD.encode(&block.der).as_bytes().chunks(64) {
                text.push_str(&String::from_utf8_lossy(line));
                text.push('\n');
            }
            text.push_str(&format!("-----END {}-----\n", block.label));
        }
        text
    }

    /// The private key of a `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1) or
    /// `EC PRIVATE KEY` (SEC1) block.
    fn private_key(&self) -> Option<PrivateKeyDer<'static>> {
        let der = self.der.clone();
        Some(match self.label.as_str() {
            "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
            "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
            "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
            _ => return None,
        })
    }
}

fn p256_key(pkcs8: &[u8]) -> Option<EcdsaKeyPair> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new()).ok()
}

/// A P-256 signing key from a PKCS#8 PEM (an APNs `.p8`).
pub fn p8_key(pem: &str) -> Option<EcdsaKeyPair> {
    p256_key(&Pem::parse_one(pem, "PRIVATE KEY")?.der)
}

/// An RSA signing key from a PKCS#8 PEM (a service account's `private_key`).
pub fn rsa_key(pem: &str) -> Option<RsaKeyPair> {
    RsaKeyPair::from_pkcs8(&Pem::parse_one(pem, "PRIVATE KEY")?.der).ok()
}

/// A certificate (chain, end entity first) and its private key, checked and re-armoured:
/// (certificate PEM, key PEM).
fn certificate_pair(certificate: &str, private_key: &str) -> Result<(String, String), ApiError> {
    let certs = Pem::parse_all(certificate)
        .filter(|blocks| !blocks.is_empty() && blocks.iter().all(|b| b.label == "CERTIFICATE"))
        .ok_or_else(|| bad("Certificate", "must be a PEM certificate"))?;
    let chain: Vec<CertificateDer<'static>> = certs.iter().map(|c| CertificateDer::from(c.der.clone())).collect();
    if chain.iter().any(|c| ParsedCertificate::try_from(c).is_err()) {
        return Err(bad("Certificate", "is not a valid X.509 certificate"));
    }
    let key = Pem::parse_all(private_key)
        .and_then(|mut blocks| (blocks.len() == 1).then(|| blocks.remove(0)))
        .ok_or_else(|| bad("PrivateKey", "must be a PEM private key"))?;
    let signing = key
        .private_key()
        .and_then(|der| rustls::crypto::ring::default_provider().key_provider.load_private_key(der).ok())
        .ok_or_else(|| bad("PrivateKey", "must be an RSA or EC private key (PKCS#8, PKCS#1 or SEC1 PEM)"))?;
    if CertifiedKey::new(chain, signing).keys_match().is_err() {
        return Err(bad("PrivateKey", "does not match the public key of the Certificate"));
    }
    Ok((Pem::armour(&certs), Pem::armour(&[key])))
}

impl Secret {
    /// APN from `Certificate` + `PrivateKey`, or token-based from `PrivateKey` (.p8) + `KeyId` +
    /// `TeamId` (the last two are this emulator's extension: Notify has no token auth).
    pub fn apn(
        certificate: Option<&str>,
        private_key: Option<&str>,
        key_id: Option<&str>,
        team_id: Option<&str>,
    ) -> Result<Secret, ApiError> {
        let private_key = private_key.ok_or(ApiError::MissingParameter("PrivateKey"))?;
        match certificate {
            Some(certificate) => {
                let (certificate, private_key) = certificate_pair(certificate, private_key)?;
                Ok(Secret::ApnCertificate { certificate, private_key })
            }
            None => {
                let key = Pem::parse_one(private_key, "PRIVATE KEY")
                    .filter(|key| p256_key(&key.der).is_some())
                    .ok_or_else(|| {
                        bad(
                            "PrivateKey",
                            "must be a PKCS#8 PEM P-256 key (.p8) for token auth, or come with a Certificate",
                        )
                    })?;
                let key_id = key_id.ok_or(ApiError::MissingParameter("KeyId"))?;
                let team_id = team_id.ok_or(ApiError::MissingParameter("TeamId"))?;
                for (field, value) in [("KeyId", key_id), ("TeamId", team_id)] {
                    if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(bad(field, "must be 10 letters or digits"));
                    }
                }
                Ok(Secret::ApnToken {
                    private_key: Pem::armour(&[key]),
                    key_id: key_id.to_owned(),
                    team_id: team_id.to_owned(),
                })
            }
        }
    }

    /// FCM from `Secret` = a service-account JSON.
    pub fn fcm(secret: Option<&str>) -> Result<Secret, ApiError> {
        let text = secret.ok_or(ApiError::MissingParameter("Secret"))?;
        let mut account: ServiceAccount = serde_json::from_str(text).map_err(|_| {
            bad("Secret", "must be a service-account JSON with project_id, private_key and client_email")
        })?;
        if account.project_id.is_empty() || account.client_email.is_empty() {
            return Err(bad("Secret", "project_id and client_email must not be empty"));
        }
        let key = Pem::parse_one(&account.private_key, "PRIVATE KEY")
            .filter(|pem| RsaKeyPair::from_pkcs8(&pem.der).is_ok())
            .ok_or_else(|| bad("Secret", "private_key must be an RSA private key in PKCS#8 PEM"))?;
        account.private_key = Pem::armour(&[key]);
        if !crate::domain::rules::is_http_url(&account.token_uri) {
            return Err(bad("Secret", "token_uri must be an http(s) URL"));
        }
        Ok(Secret::Fcm { service_account: account })
    }
}
