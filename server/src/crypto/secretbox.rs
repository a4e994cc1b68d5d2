//! Encryption at rest for stored secrets (push credentials): AES-256-GCM with a random nonce,
//! stored as base64(nonce ‖ ciphertext ‖ tag).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::domain::sid::random_bytes;

pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> SecretBox {
        #[expect(clippy::expect_used, reason = "a 32-byte key is always valid for AES-256-GCM")]
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256-GCM key");
        SecretBox { key: LessSafeKey::new(unbound) }
    }

    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce = random_bytes::<NONCE_LEN>();
        let mut data = plain.to_vec();
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map(|t| t.as_ref().to_vec())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        out.extend_from_slice(&tag);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = rest.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::empty(), &mut data).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_untampered() {
        let sealed = SecretBox::new(&[1; 32]).seal(b"-----BEGIN PRIVATE KEY-----");
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(SecretBox::new(&[1; 32]).open(&sealed).as_deref(), Some(&b"-----BEGIN PRIVATE KEY-----"[..]));
        assert_eq!(SecretBox::new(&[2; 32]).open(&sealed), None);
        let mut bytes = STANDARD.decode(&sealed).unwrap_or_default();
        bytes[14] ^= 1;
        assert_eq!(SecretBox::new(&[1; 32]).open(&STANDARD.encode(bytes)), None);
    }
}
