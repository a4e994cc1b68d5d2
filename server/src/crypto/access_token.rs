//! Enrollment access tokens: compact JWE, `alg: dir`, `enc: A256GCM`.
//!
//! The mobile SDKs treat the token as opaque (docs/protocol/device-protocol.md#access-tokens); only
//! this server reads it back, when a device creates its Factor. The claims bind the token to one
//! account, Service, identity and factor type, with an expiry. The 256-bit key comes from
//! configuration, else a key file, else (PostgreSQL) the database (`crate::keys`), so every
//! instance on one database shares it.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};

use super::{b64url, b64url_decode, sha256};
use crate::domain::sid::random_bytes;
use crate::domain::status::FactorType;

/// What an access token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The AccessToken resource SID (`YK…`).
    pub jti: String,
    pub account_sid: String,
    pub service_sid: String,
    pub identity: String,
    pub factor_type: FactorType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor_friendly_name: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    enc: String,
    cty: String,
    kid: String,
}

/// Why a token was refused. Deliberately coarse: callers answer one error for all.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a compact JWE")]
    Malformed,
    #[error("unsupported JWE header")]
    UnsupportedHeader,
    #[error("the token does not decrypt with this server's key")]
    Forged,
}

/// The key that seals and opens access tokens.
pub struct TokenKey {
    key: LessSafeKey,
    kid: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

const ALG: &str = "dir";
const ENC: &str = "A256GCM";
const CTY: &str = "twilio-fpa;v=1";
/// Tokens longer than this are refused before any work (the SDKs carry them in a header).
pub const MAX_TOKEN_LEN: usize = 8192;

impl TokenKey {
    pub fn new(secret: &[u8; 32]) -> TokenKey {
        #[expect(clippy::expect_used, reason = "a 32-byte key is always valid for AES-256-GCM")]
        let unbound = UnboundKey::new(&AES_256_GCM, secret).expect("32-byte AES-256-GCM key");
        // The key id names the key without revealing it, so rotated keys are told apart.
        let kid = format!("vpe-{}", hex8(&sha256(secret)));
        TokenKey { key: LessSafeKey::new(unbound), kid }
    }

    /// A fresh random key.
    pub fn generate_secret() -> [u8; 32] {
        random_bytes::<32>()
    }

    pub fn seal(&self, claims: &AccessTokenClaims) -> String {
        let header = Header { alg: ALG.into(), enc: ENC.into(), cty: CTY.into(), kid: self.kid.clone() };
        let protected = b64url(&serde_json::to_vec(&header).unwrap_or_default());
        let iv = random_bytes::<12>();
        let mut data = serde_json::to_vec(claims).unwrap_or_default();
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(protected.as_bytes()), &mut data)
            .map(|t| t.as_ref().to_vec())
            .unwrap_or_default();
        format!("{protected}..{}.{}.{}", b64url(&iv), b64url(&data), b64url(&tag))
    }

    pub fn open(&self, token: &str) -> Result<AccessTokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [protected, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else {
            return Err(TokenError::Malformed);
        };
        let header: Header =
            b64url_decode(protected).and_then(|h| serde_json::from_slice(&h).ok()).ok_or(TokenError::Malformed)?;
        if header.alg != ALG || header.enc != ENC || !encrypted_key.is_empty() {
            return Err(TokenError::UnsupportedHeader);
        }
        if header.kid != self.kid {
            return Err(TokenError::Forged);
        }
        let iv: [u8; 12] = b64url_decode(iv).and_then(|v| v.try_into().ok()).ok_or(TokenError::Malformed)?;
        let mut data = b64url_decode(ciphertext).ok_or(TokenError::Malformed)?;
        let tag = b64url_decode(tag).filter(|t| t.len() == 16).ok_or(TokenError::Malformed)?;
        data.extend_from_slice(&tag);
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(protected.as_bytes()), &mut data)
            .map_err(|_| TokenError::Forged)?;
        serde_json::from_slice(plain).map_err(|_| TokenError::Forged)
    }
}

fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            jti: "YK00000000000000000000000000000000".into(),
            account_sid: "AC00000000000000000000000000000000".into(),
            service_sid: "VA00000000000000000000000000000000".into(),
            identity: "user-1234".into(),
            factor_type: FactorType::Push,
            factor_friendly_name: Some("Pixel".into()),
            iat: 1_700_000_000,
            exp: 1_700_000_060,
        }
    }

    #[test]
    fn sealed_tokens_are_compact_dir_a256gcm_jwe_and_open_again() {
        let key = TokenKey::new(&[7u8; 32]);
        let token = key.seal(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 5);
        assert!(parts[1].is_empty(), "dir has no encrypted key");
        let header: serde_json::Value =
            serde_json::from_slice(&b64url_decode(parts[0]).unwrap_or_default()).unwrap_or_default();
        assert_eq!(header["alg"], "dir");
        assert_eq!(header["enc"], "A256GCM");
        assert!(!token.contains("user-1234"), "claims must be encrypted");
        assert_eq!(key.open(&token), Ok(claims()));
    }

    #[test]
    fn tampered_truncated_or_foreign_tokens_are_refused() {
        let key = TokenKey::new(&[7u8; 32]);
        let token = key.seal(&claims());
        let other = TokenKey::new(&[8u8; 32]);
        assert_eq!(other.open(&token), Err(TokenError::Forged));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut ct = b64url_decode(&parts[3]).unwrap_or_default();
        ct[0] ^= 1;
        parts[3] = b64url(&ct);
        assert_eq!(key.open(&parts.join(".")), Err(TokenError::Forged));
        assert_eq!(key.open(&token[..token.len() - 3]), Err(TokenError::Malformed));
        assert_eq!(key.open("a.b.c"), Err(TokenError::Malformed));
        let none_header = format!("{}..{}", b64url(br#"{"alg":"none","enc":"A256GCM","cty":"x","kid":"k"}"#), "a.b.c");
        assert_eq!(key.open(&none_header), Err(TokenError::UnsupportedHeader));
    }
}
