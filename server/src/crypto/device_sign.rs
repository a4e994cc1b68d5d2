//! The device side of [`super::device_jwt`]: what a virtual device signs with its P-256 key, as
//! the SDKs do (docs/protocol/device-protocol.md#factor-jwt,
//! docs/protocol/device-protocol.md#verifying-a-factor,
//! docs/protocol/device-protocol.md#challenge-answer):
//!
//! - the per-request **factor JWT** (`kid` = credential SID, `sub` = account SID, `nbf` = now,
//!   `exp` = now + 600);
//! - the **verify-factor payload**: a DER ECDSA signature over the Factor SID, standard base64;
//! - the **challenge answer** JWS: the advertised fields as fetched, then `status`.
//!
//! JSON is written member by member in the order of the SDK imitated (Android: insertion order,
//! `/` escaped as `\/`; iOS: another order), so the server's verification of received bytes is
//! exercised as the SDKs exercise it. The key is ring's ECDSA P-256 in PKCS#8 DER, which is what
//! is stored (sealed).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{Map, Value};

use super::b64url;
use super::device_jwt::MAX_LIFETIME;
use crate::domain::status::DeviceStyle;

/// The SubjectPublicKeyInfo DER prefix of an uncompressed P-256 point (id-ecPublicKey,
/// prime256v1, a 66-byte BIT STRING).
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a device key could not be made or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("not a P-256 PKCS#8 key")]
    BadKey,
    #[error("the signature could not be made")]
    Signing,
    #[error("an advertised signature field is not in the challenge")]
    MissingField,
}

/// A device's P-256 signing key.
pub struct DeviceSigner {
    /// ES256 (raw `r‖s`) for JWS.
    fixed: EcdsaKeyPair,
    /// DER signatures, for the verify-factor payload.
    der: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for DeviceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSigner(..)")
    }
}

impl DeviceSigner {
    /// A new random key, as PKCS#8 DER (to store sealed).
    pub fn generate_pkcs8() -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| SignError::BadKey)
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<DeviceSigner, SignError> {
        let rng = SystemRandom::new();
        let fixed =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).map_err(|_| SignError::BadKey)?;
        let der =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng).map_err(|_| SignError::BadKey)?;
        Ok(DeviceSigner { fixed, der, rng })
    }

    /// The public key as the SDKs send it: base64 SubjectPublicKeyInfo DER.
    pub fn public_key_spki_base64(&self) -> String {
        let mut der = SPKI_P256_PREFIX.to_vec();
        der.extend_from_slice(self.fixed.public_key().as_ref());
        STANDARD.encode(der)
    }

    fn compact(&self, header: &str, payload: &str) -> Result<String, SignError> {
        let input = format!("{}.{}", b64url(header.as_bytes()), b64url(payload.as_bytes()));
        let signature = self.fixed.sign(&self.rng, input.as_bytes()).map_err(|_| SignError::Signing)?;
        Ok(format!("{input}.{}", b64url(signature.as_ref())))
    }

    /// The factor JWT for a request at `now`.
    pub fn factor_jwt(
        &self,
        style: DeviceStyle,
        credential_sid: &str,
        account_sid: &str,
        now: i64,
    ) -> Result<String, SignError> {
        let (cty, kid, typ, alg) = (
            ("cty", Value::from("twilio-pba;v=1")),
            ("kid", Value::from(credential_sid)),
            ("typ", Value::from("JWT")),
            ("alg", Value::from("ES256")),
        );
        let (sub, exp, nbf) =
            (("sub", Value::from(account_sid)), ("exp", Value::from(now + MAX_LIFETIME)), ("nbf", Value::from(now)));
        let (header, payload) = match style {
            DeviceStyle::Android => (object_text(&[cty, kid, typ, alg], style), object_text(&[sub, exp, nbf], style)),
            DeviceStyle::Ios => (object_text(&[alg, kid, cty, typ], style), object_text(&[nbf, sub, exp], style)),
        };
        self.compact(&header, &payload)
    }

    /// The verify-factor `AuthPayload`.
    pub fn factor_verification(&self, factor_sid: &str) -> Result<String, SignError> {
        let signature = self.der.sign(&self.rng, factor_sid.as_bytes()).map_err(|_| SignError::Signing)?;
        Ok(STANDARD.encode(signature.as_ref()))
    }

    /// The challenge answer: every advertised field of `challenge` (its JSON as fetched), then
    /// `status`.
    pub fn challenge_answer(
        &self,
        style: DeviceStyle,
        fields: &[&str],
        challenge: &Map<String, Value>,
        status: &str,
    ) -> Result<String, SignError> {
        let mut members = Vec::with_capacity(fields.len() + 1);
        for field in fields.iter().copied().filter(|f| *f != "status") {
            members.push((field, challenge.get(field).cloned().ok_or(SignError::MissingField)?));
        }
        if style == DeviceStyle::Ios {
            members.reverse();
        }
        members.push(("status", Value::from(status)));
        let header = match style {
            DeviceStyle::Android => object_text(&[("typ", "JWT".into()), ("alg", "ES256".into())], style),
            DeviceStyle::Ios => object_text(&[("alg", "ES256".into()), ("typ", "JWT".into())], style),
        };
        self.compact(&header, &object_text(&members, style))
    }
}

/// JSON text of `members` in this order, as the SDK of `style` writes it.
fn object_text(members: &[(&str, Value)], style: DeviceStyle) -> String {
    let mut map = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            map.push(',');
        }
        map.push_str(&Value::from(*name).to_string());
        map.push(':');
        map.push_str(&value.to_string());
    }
    map.push('}');
    match style {
        DeviceStyle::Android => map.replace('/', "\\/"),
        DeviceStyle::Ios => map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::device_jwt::{FactorJwt, Jws};
    use crate::crypto::device_key::DeviceKey;

    fn signer() -> DeviceSigner {
        let pkcs8 = DeviceSigner::generate_pkcs8().unwrap_or_default();
        DeviceSigner::from_pkcs8(&pkcs8).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn what_a_virtual_device_signs_verifies_with_the_server_s_own_checks() {
        let approved = crate::domain::status::ChallengeStatus::Approved.as_str();
        let signer = signer();
        let spki = signer.public_key_spki_base64();
        assert!(spki.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"), "{spki}");
        let key = DeviceKey::from_spki_base64(&spki).unwrap_or_else(|| panic!("the SPKI parses"));
        for style in [DeviceStyle::Android, DeviceStyle::Ios] {
            let token = signer.factor_jwt(style, "CR1", "AC1", 1_700_000_000).unwrap_or_default();
            let jwt = FactorJwt::parse(&token).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((jwt.kid.as_str(), jwt.claims.sub.as_str()), ("CR1", "AC1"));
            assert_eq!(jwt.jws.verify(&key), Ok(()));
            assert_eq!(jwt.check_time(1_700_000_000, 0), Ok(()));

            let mut challenge = Map::new();
            challenge.insert("sid".into(), "YC1".into());
            challenge.insert("details".into(), serde_json::json!({"message": "a/b"}));
            let answer = signer.challenge_answer(style, &["sid", "details"], &challenge, approved).unwrap_or_default();
            let jws = Jws::parse(&answer).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(jws.verify(&key), Ok(()));
            assert_eq!(jws.payload.get("details"), challenge.get("details"));
            assert_eq!(jws.payload["status"], approved);
            assert_eq!(answer.split('.').nth(1).map(|p| p.len() > 10), Some(true));
            assert_eq!(
                signer.challenge_answer(style, &["sid", "missing"], &challenge, approved).err(),
                Some(SignError::MissingField)
            );
        }
        let payload = signer.factor_verification("YF1").unwrap_or_default();
        let signature = crate::crypto::b64_decode(&payload).unwrap_or_default();
        assert!(key.verify_der(b"YF1", &signature));
        assert!(!key.verify_der(b"YF2", &signature));
    }

    #[test]
    fn only_p256_pkcs8_keys_load() {
        assert_eq!(DeviceSigner::from_pkcs8(b"not a key").err(), Some(SignError::BadKey));
    }
}
