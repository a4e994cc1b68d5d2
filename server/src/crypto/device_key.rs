//! Device public keys: P-256 in X.509 SubjectPublicKeyInfo DER, base64
//! (docs/protocol/device-protocol.md#public-key), and ECDSA signature checks with them.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePublicKey;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED};

use super::b64_decode;

/// A validated P-256 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    /// The uncompressed SEC1 point `04‖X‖Y`.
    point: Vec<u8>,
}

impl DeviceKey {
    /// Parses base64 SPKI DER; the point must lie on P-256.
    pub fn from_spki_base64(text: &str) -> Option<DeviceKey> {
        let der = b64_decode(text)?;
        let key = p256::PublicKey::from_public_key_der(&der).ok()?;
        Some(DeviceKey { point: key.to_encoded_point(false).as_bytes().to_vec() })
    }

    /// Verifies a DER-encoded ECDSA P-256/SHA-256 signature over `message`.
    pub fn verify_der(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point).verify(message, signature).is_ok()
    }

    /// Verifies a raw 64-byte `r‖s` ECDSA P-256/SHA-256 signature (JWS ES256) over `message`.
    pub fn verify_fixed(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == 64
            && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.point).verify(message, signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{DerSignature, Signature, SigningKey};
    use p256::pkcs8::EncodePublicKey;

    fn keypair() -> (SigningKey, String) {
        let signing = SigningKey::from_slice(&[0x42; 32]).unwrap_or_else(|e| panic!("{e}"));
        let spki = signing.verifying_key().to_public_key_der().unwrap_or_else(|e| panic!("{e}"));
        (signing, base64::engine::general_purpose::STANDARD.encode(spki.as_bytes()))
    }

    #[test]
    fn spki_keys_parse_and_start_like_the_sdks_send_them() {
        let (_, b64) = keypair();
        assert!(b64.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"));
        assert!(DeviceKey::from_spki_base64(&b64).is_some());
        assert!(DeviceKey::from_spki_base64("dGVzdF9rZXk=").is_none());
        assert!(DeviceKey::from_spki_base64("not base64!").is_none());
        // A point not on the curve: flip a byte of Y.
        let mut der = base64::engine::general_purpose::STANDARD.decode(&b64).unwrap_or_default();
        let last = der.len() - 1;
        der[last] ^= 1;
        let bad = base64::engine::general_purpose::STANDARD.encode(der);
        assert!(DeviceKey::from_spki_base64(&bad).is_none());
    }

    #[test]
    fn verifies_der_and_fixed_signatures_only_over_the_signed_bytes() {
        let (signing, b64) = keypair();
        let key = DeviceKey::from_spki_base64(&b64).unwrap_or_else(|| panic!("key"));
        let der: DerSignature = signing.sign(b"YF123");
        assert!(key.verify_der(b"YF123", der.as_bytes()));
        assert!(!key.verify_der(b"YF124", der.as_bytes()));
        let fixed: Signature = signing.sign(b"header.payload");
        assert!(key.verify_fixed(b"header.payload", &fixed.to_bytes()));
        assert!(!key.verify_fixed(b"header.payload", &fixed.to_bytes()[..63]));
    }
}
