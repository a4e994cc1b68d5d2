//! Push credential secrets: what each kind holds, how it is validated on create/update (a bad
//! PEM or JSON is a 400 naming the field), and the keys it yields for sending. Never logged,
//! never returned.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
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

/// A P-256 signing key from a PKCS#8 PEM (an APNs `.p8`).
pub fn p8_key(pem: &str) -> Option<EcdsaKeyPair> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).ok()?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der(), &SystemRandom::new()).ok()
}

/// An RSA signing key from a PKCS#8 PEM (a service account's `private_key`).
pub fn rsa_key(pem: &str) -> Option<RsaKeyPair> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).ok()?;
    RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).ok()
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
                let valid_cert =
                    CertificateDer::pem_slice_iter(certificate.as_bytes()).next().is_some_and(|c| c.is_ok());
                if !valid_cert {
                    return Err(bad("Certificate", "must be a PEM certificate"));
                }
                if PrivateKeyDer::from_pem_slice(private_key.as_bytes()).is_err() {
                    return Err(bad("PrivateKey", "must be a PEM private key"));
                }
                Ok(Secret::ApnCertificate { certificate: certificate.to_owned(), private_key: private_key.to_owned() })
            }
            None => {
                if p8_key(private_key).is_none() {
                    return Err(bad(
                        "PrivateKey",
                        "must be a PEM P-256 key (.p8) for token auth, or come with a Certificate",
                    ));
                }
                let key_id = key_id.ok_or(ApiError::MissingParameter("KeyId"))?;
                let team_id = team_id.ok_or(ApiError::MissingParameter("TeamId"))?;
                for (field, value) in [("KeyId", key_id), ("TeamId", team_id)] {
                    if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(bad(field, "must be 10 letters or digits"));
                    }
                }
                Ok(Secret::ApnToken {
                    private_key: private_key.to_owned(),
                    key_id: key_id.to_owned(),
                    team_id: team_id.to_owned(),
                })
            }
        }
    }

    /// FCM from `Secret` = a service-account JSON.
    pub fn fcm(secret: Option<&str>) -> Result<Secret, ApiError> {
        let text = secret.ok_or(ApiError::MissingParameter("Secret"))?;
        let account: ServiceAccount = serde_json::from_str(text).map_err(|_| {
            bad("Secret", "must be a service-account JSON with project_id, private_key and client_email")
        })?;
        if account.project_id.is_empty() || account.client_email.is_empty() {
            return Err(bad("Secret", "project_id and client_email must not be empty"));
        }
        if rsa_key(&account.private_key).is_none() {
            return Err(bad("Secret", "private_key must be an RSA private key in PKCS#8 PEM"));
        }
        if !crate::domain::rules::is_http_url(&account.token_uri) {
            return Err(bad("Secret", "token_uri must be an http(s) URL"));
        }
        Ok(Secret::Fcm { service_account: account })
    }
}
