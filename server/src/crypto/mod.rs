//! Cryptography of the server: enrollment access tokens (JWE, [`access_token`]), device keys and
//! the JWTs devices sign with them ([`device_key`], [`device_jwt`]; [`device_sign`] signs them as a
//! virtual device), encryption of stored secrets
//! ([`secretbox`]), and the helpers below (base64, SHA-256, constant-time comparison of secrets).
//! No I/O: functions over bytes (and, to seal, random nonces); nothing logs secrets.

pub mod access_token;
#[cfg(test)]
mod access_token_props;
pub mod device_jwt;
#[cfg(test)]
mod device_jwt_props;
pub mod device_key;
pub mod device_sign;
pub mod secretbox;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// base64url without padding (JOSE).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Standard base64 with padding (what the SDKs send for keys and signatures).
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Compares two secrets in time independent of where they differ: both sides are hashed first,
/// so neither length nor content leaks through timing.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    digests_equal(&sha256(a), &sha256(b))
}

/// Constant-time comparison of two digests.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    #[expect(deprecated, reason = "ring keeps this as its constant-time comparison")]
    ring::constant_time::verify_slices_are_equal(a, b).is_ok()
}
