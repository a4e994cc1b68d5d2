//! The JWTs a device signs with its factor key (docs/protocol/device-protocol.md#factor-jwt,
//! docs/protocol/device-protocol.md#challenge-answer):
//!
//! - the per-request **factor JWT**, sent as the Basic password with username `token`:
//!   header `{cty: "twilio-pba;v=1", kid: <credential_sid>, typ: "JWT", alg: "ES256"}`, claims
//!   `{sub: <account_sid>, nbf, exp}`;
//! - the challenge **AuthPayload** JWS: header `{typ: "JWT", alg: "ES256"}`, payload the
//!   advertised challenge fields plus the new `status`.
//!
//! Both are ES256 with a raw 64-byte `r‖s` signature, verified over the exact bytes received:
//! iOS serialises JSON keys in any order, Android escapes `/` as `\/`, so nothing is ever
//! re-serialised. Parsing is strict and bounded; every failure is one opaque error kind.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::b64url_decode;
use super::device_key::DeviceKey;

/// The longest token accepted (the spec's limit for a push `AuthPayload`).
pub const MAX_TOKEN_LEN: usize = 5456;
/// The longest factor-JWT lifetime the SDKs produce (`exp = nbf + 600`).
pub const MAX_LIFETIME: i64 = 600;

/// Why a device JWT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("longer than {MAX_TOKEN_LEN} characters")]
    TooLong,
    #[error("alg must be ES256")]
    Algorithm,
    #[error("the signature must be 64 bytes (r‖s)")]
    SignatureLength,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("outside the accepted time window")]
    Expired,
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug)]
pub struct Jws<'a> {
    /// `header.payload` exactly as received: the signed bytes.
    pub signing_input: &'a str,
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    pub signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Splits and decodes `token`; requires `alg: ES256` and a 64-byte signature.
    pub fn parse(token: &'a str) -> Result<Jws<'a>, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TooLong);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
        if payload.contains('.') {
            return Err(JwtError::Malformed);
        }
        let object = |part: &str| match b64url_decode(part.trim_end_matches('='))
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(JwtError::Malformed),
        };
        let header = object(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(JwtError::Algorithm);
        }
        let payload = object(payload)?;
        let signature = b64url_decode(signature.trim_end_matches('=')).ok_or(JwtError::Malformed)?;
        if signature.len() != 64 {
            return Err(JwtError::SignatureLength);
        }
        Ok(Jws { signing_input, header, payload, signature })
    }

    /// Checks the signature over the received bytes with `key`.
    pub fn verify(&self, key: &DeviceKey) -> Result<(), JwtError> {
        if key.verify_fixed(self.signing_input.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(JwtError::BadSignature)
        }
    }
}

/// The claims of a factor JWT.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FactorClaims {
    pub sub: String,
    pub nbf: i64,
    pub exp: i64,
}

/// A factor JWT after parsing: its `kid` (the factor's credential SID) and claims.
#[derive(Debug)]
pub struct FactorJwt<'a> {
    pub kid: String,
    pub claims: FactorClaims,
    pub jws: Jws<'a>,
}

impl<'a> FactorJwt<'a> {
    pub fn parse(token: &'a str) -> Result<FactorJwt<'a>, JwtError> {
        let jws = Jws::parse(token)?;
        let kid = jws.header.get("kid").and_then(Value::as_str).ok_or(JwtError::Malformed)?.to_owned();
        let claims: FactorClaims =
            serde_json::from_value(Value::Object(jws.payload.clone())).map_err(|_| JwtError::Malformed)?;
        Ok(FactorJwt { kid, claims, jws })
    }

    /// `nbf ≤ now + skew`, `exp ≥ now − skew`, and a lifetime of at most ten minutes.
    pub fn check_time(&self, now: i64, skew: i64) -> Result<(), JwtError> {
        let c = &self.claims;
        let lifetime = c.exp.saturating_sub(c.nbf);
        if c.nbf > now.saturating_add(skew)
            || c.exp < now.saturating_sub(skew)
            || !(0..=MAX_LIFETIME).contains(&lifetime)
        {
            return Err(JwtError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status::ChallengeStatus;

    // docs/protocol/device-protocol.md#worked-example: the self-generated worked example.
    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9VJ17/I+WA77JSlFU1UTmeAXLC0/fCMUe7TWiH1xdZ2BqGwXU3hUk1KbC+L22/oIEk/km0LnU6+etBIQsm6HHw==";
    const AUTH_JWT: &str = "eyJjdHkiOiJ0d2lsaW8tcGJhO3Y9MSIsImtpZCI6IkNSMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJBQzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwiZXhwIjoxNzAwMDAwNjAwLCJuYmYiOjE3MDAwMDAwMDB9.pTa4xijKmA9tf48nH_2_nAEZvgSZd-m-2Mi0_NfEw2uNMWeijMmVPpV-8T57vwBYHwv5K_dG12LRJKivoWiPrA";
    const CHALLENGE_JWS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJzaWQiOiJZQzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwiZmFjdG9yX3NpZCI6IllGMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJkZXRhaWxzIjp7Im1lc3NhZ2UiOiJMb2dpbj8iLCJkYXRlIjoiMjAyMy0xMS0xNFQyMjoxMzoyMFoiLCJmaWVsZHMiOlt7ImxhYmVsIjoiSVAiLCJ2YWx1ZSI6IjEwLjAuMC4xIn1dfSwiaGlkZGVuX2RldGFpbHMiOnsiaXAiOiIxMC4wLjAuMSJ9LCJleHBpcmF0aW9uX2RhdGUiOiIyMDIzLTExLTE0VDIyOjE4OjIwWiIsImRhdGVfY3JlYXRlZCI6IjIwMjMtMTEtMTRUMjI6MTM6MjBaIiwic3RhdHVzIjoiYXBwcm92ZWQifQ.YbJFCnkzWpzOd8cvb6Mk6w52ekbWVZ3kASql95k24YwtlyBGw5ZDG4mxQUaY7KAEPXDVUs0UKEJpx9Dhi2SlmQ";
    const VERIFY_PAYLOAD: &str =
        "MEQCICeHIFjniP2b3WUHBvzYTD8BBmXMxR9BpTvkQQG0SdwsAiBg2wDNkO8+PPZHUYDciUfDqy2IYY1iGCPAbW28P5bI1w==";

    fn key() -> DeviceKey {
        DeviceKey::from_spki_base64(PUBLIC_KEY).unwrap_or_else(|| panic!("the worked example key parses"))
    }

    #[test]
    fn the_worked_example_factor_jwt_verifies_with_its_claims() {
        let jwt = FactorJwt::parse(AUTH_JWT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(jwt.kid, "CR00000000000000000000000000000001");
        assert_eq!(
            jwt.claims,
            FactorClaims { sub: "AC00000000000000000000000000000001".into(), nbf: 1_700_000_000, exp: 1_700_000_600 }
        );
        assert_eq!(jwt.jws.verify(&key()), Ok(()));
        assert_eq!(jwt.check_time(1_700_000_000, 60), Ok(()));
        assert_eq!(jwt.check_time(1_700_000_660, 60), Ok(()));
        assert_eq!(jwt.check_time(1_700_000_661, 60), Err(JwtError::Expired));
        assert_eq!(jwt.check_time(1_699_999_939, 60), Err(JwtError::Expired));
    }

    #[test]
    fn the_worked_example_challenge_answer_verifies_and_carries_its_fields() {
        let jws = Jws::parse(CHALLENGE_JWS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(jws.verify(&key()), Ok(()));
        assert_eq!(jws.payload["status"], ChallengeStatus::Approved.as_str());
        assert_eq!(jws.payload["details"]["fields"][0]["label"], "IP");
        assert!(jws.header.get("kid").is_none());
    }

    #[test]
    fn the_worked_example_verify_factor_payload_is_a_der_signature_over_the_factor_sid() {
        let signature = crate::crypto::b64_decode(VERIFY_PAYLOAD).unwrap_or_default();
        assert!(key().verify_der(b"YF00000000000000000000000000000001", &signature));
        assert!(!key().verify_der(b"YF00000000000000000000000000000002", &signature));
    }

    #[test]
    fn forged_truncated_reencoded_and_wrong_alg_tokens_are_refused() {
        let (input, sig) = AUTH_JWT.rsplit_once('.').unwrap_or_default();
        let (header, payload) = input.split_once('.').unwrap_or_default();
        let b64 = crate::crypto::b64url;
        let other_payload = b64(br#"{"sub":"AC00000000000000000000000000000002","exp":1700000600,"nbf":1700000000}"#);
        let reencoded_header =
            b64(br#"{"alg":"ES256","typ":"JWT","cty":"twilio-pba;v=1","kid":"CR00000000000000000000000000000001"}"#);
        let forged = format!("{header}.{other_payload}.{sig}");
        let reordered = format!("{reencoded_header}.{payload}.{sig}");
        assert_eq!(FactorJwt::parse(&forged).map(|j| j.jws.verify(&key())).ok(), Some(Err(JwtError::BadSignature)));
        assert_eq!(FactorJwt::parse(&reordered).map(|j| j.jws.verify(&key())).ok(), Some(Err(JwtError::BadSignature)));
        let none = format!("{}.{payload}.{sig}", b64(br#"{"alg":"none","kid":"CR1"}"#));
        let hs256 = format!("{}.{payload}.{sig}", b64(br#"{"alg":"HS256","kid":"CR1"}"#));
        assert_eq!(FactorJwt::parse(&none).err(), Some(JwtError::Algorithm));
        assert_eq!(FactorJwt::parse(&hs256).err(), Some(JwtError::Algorithm));
        let short = crate::crypto::b64url_decode(sig).unwrap_or_default();
        let sig63 = format!("{input}.{}", b64(&short[..63]));
        assert_eq!(FactorJwt::parse(&sig63).err(), Some(JwtError::SignatureLength));
        assert_eq!(FactorJwt::parse(&AUTH_JWT[..AUTH_JWT.len() - 10]).err(), Some(JwtError::SignatureLength));
        assert_eq!(FactorJwt::parse("a.b").err(), Some(JwtError::Malformed));
        assert_eq!(FactorJwt::parse("not a token").err(), Some(JwtError::Malformed));
        assert_eq!(FactorJwt::parse(&format!("{header}.bm90IGpzb24.{sig}")).err(), Some(JwtError::Malformed));
        assert_eq!(FactorJwt::parse(&"a".repeat(5457)).err(), Some(JwtError::TooLong));
        let no_kid = format!("{}.{payload}.{sig}", b64(br#"{"alg":"ES256"}"#));
        assert_eq!(FactorJwt::parse(&no_kid).err(), Some(JwtError::Malformed));
    }
}
