//! What a device signs, byte-compatible with the SDKs: the factor JWT
//! (docs/protocol/device-protocol.md#factor-jwt), the verification payload
//! (docs/protocol/device-protocol.md#verifying-a-factor) and the challenge answer
//! (docs/protocol/device-protocol.md#challenge-answer).
//!
//! Android builds JSON with `org.json` (insertion order, `/` escaped as `\/`); iOS with
//! `JSONSerialization` (no fixed key order). [`Style`] reproduces each, so a server that
//! re-serialises instead of verifying the received bytes fails against one of them.
//! Signatures are ES256 with RFC 6979 nonces (reproducible), raw `r‖s` in base64url.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, Signature, SigningKey};
use serde_json::{Map, Value};

use crate::encoding::Style;
use crate::error::DeviceError;

/// The factor JWT lifetime the SDKs use.
pub const FACTOR_JWT_LIFETIME: i64 = 600;

/// JSON text of `members` in the given order, as the SDK of `style` writes it.
fn object_text(members: &[(&str, Value)], style: Style) -> String {
    let mut text = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::String((*name).to_owned()).to_string());
        text.push(':');
        text.push_str(&value.to_string());
    }
    text.push('}');
    match style {
        Style::Android => text.replace('/', "\\/"),
        Style::Ios => text,
    }
}

fn compact(key: &SigningKey, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// The per-request factor JWT: `kid` = credential SID, `sub` = account SID, `nbf` = now,
/// `exp` = now + 600.
pub fn factor_jwt(key: &SigningKey, style: Style, credential_sid: &str, account_sid: &str, now: i64) -> String {
    let (cty, kid, typ, alg) = (
        ("cty", Value::from("twilio-pba;v=1")),
        ("kid", Value::from(credential_sid)),
        ("typ", Value::from("JWT")),
        ("alg", Value::from("ES256")),
    );
    let (sub, exp, nbf) =
        (("sub", Value::from(account_sid)), ("exp", Value::from(now + FACTOR_JWT_LIFETIME)), ("nbf", Value::from(now)));
    let (header, payload) = match style {
        Style::Android => (object_text(&[cty, kid, typ, alg], style), object_text(&[sub, exp, nbf], style)),
        Style::Ios => (object_text(&[alg, kid, cty, typ], style), object_text(&[nbf, sub, exp], style)),
    };
    compact(key, &header, &payload)
}

/// The challenge answer: every advertised field as fetched (original JSON types), then
/// `status`. Fails, as the SDKs do locally, when an advertised field is missing.
pub fn challenge_answer(
    key: &SigningKey,
    style: Style,
    fields: &[String],
    challenge: &Map<String, Value>,
    status: &str,
) -> Result<String, DeviceError> {
    let mut members: Vec<(&str, Value)> = Vec::with_capacity(fields.len() + 1);
    for field in fields.iter().filter(|f| f.as_str() != "status") {
        let value = challenge
            .get(field)
            .ok_or_else(|| DeviceError::Protocol(format!("signature field {field:?} is not in the challenge")))?;
        members.push((field, value.clone()));
    }
    if style == Style::Ios {
        members.reverse();
    }
    members.push(("status", Value::from(status)));
    let header = match style {
        Style::Android => object_text(&[("typ", "JWT".into()), ("alg", "ES256".into())], style),
        Style::Ios => object_text(&[("alg", "ES256".into()), ("typ", "JWT".into())], style),
    };
    Ok(compact(key, &header, &object_text(&members, style)))
}

/// The verify-factor `AuthPayload`: a DER ECDSA signature over the factor SID, standard base64.
pub fn factor_verification(key: &SigningKey, factor_sid: &str) -> String {
    let signature: DerSignature = key.sign(factor_sid.as_bytes());
    STANDARD.encode(signature.as_bytes())
}

/// DER → raw `r‖s`, as the SDKs transcode platform signatures for JWS.
pub fn der_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    let signature = Signature::from_der(der).ok()?;
    let mut raw = [0u8; 64];
    raw.copy_from_slice(&signature.to_bytes());
    Some(raw)
}

/// Raw `r‖s` → DER.
pub fn raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    Some(Signature::from_slice(raw).ok()?.to_der().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    // docs/protocol/device-protocol.md#sdk-vectors: the SDKs' DER → JWS transcoding vector.
    const DER: &str = "MEQCIFtun9Ioo-W-juCG7sOl8PPPuozb8cspsUtpu2TxnzP_AiAi1VpFNTr2eK-VX3b1DLHy8rPm3MOpTvUH14hyNr0Gfg";
    const RAW: &str = "W26f0iij5b6O4Ibuw6Xw88-6jNvxyymxS2m7ZPGfM_8i1VpFNTr2eK-VX3b1DLHy8rPm3MOpTvUH14hyNr0Gfg";

    #[test]
    fn the_sdk_der_to_raw_vector_converts_both_ways() {
        let der = URL_SAFE_NO_PAD.decode(DER).unwrap_or_default();
        let raw = der_to_raw(&der).unwrap_or_else(|| panic!("DER parses"));
        assert_eq!(URL_SAFE_NO_PAD.encode(raw), RAW);
        assert_eq!(raw_to_der(&raw), Some(der));
    }

    fn worked_example_key() -> SigningKey {
        // docs/protocol/device-protocol.md#worked-example: d =
        // SHA-256("verify-push-emulator-test-vector-1") mod n.
        let d: Vec<u8> = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"242aed77a5118088d96f388ed796bb92c9c709dd5cfabfc66fc47af38bde4f54"[i * 2..i * 2 + 2],
                    16,
                )
                .unwrap_or(0)
            })
            .collect();
        SigningKey::from_slice(&d).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn factor_jwts_carry_the_sdk_header_and_claims_in_each_style() {
        let key = worked_example_key();
        let android = factor_jwt(
            &key,
            Style::Android,
            "CR00000000000000000000000000000001",
            "AC00000000000000000000000000000001",
            1_700_000_000,
        );
        let parts: Vec<&str> = android.split('.').collect();
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            header,
            r#"{"cty":"twilio-pba;v=1","kid":"CR00000000000000000000000000000001","typ":"JWT","alg":"ES256"}"#
        );
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
        assert_eq!(payload, r#"{"sub":"AC00000000000000000000000000000001","exp":1700000600,"nbf":1700000000}"#);
        // The same header and claims as the worked example's JWT (whose signature used another nonce).
        assert!(android.starts_with("eyJjdHkiOiJ0d2lsaW8tcGJhO3Y9MSIsImtpZCI6IkNSMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJBQzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwiZXhwIjoxNzAwMDAwNjAwLCJuYmYiOjE3MDAwMDAwMDB9."));
        let ios = factor_jwt(&key, Style::Ios, "CR1", "AC1", 5);
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(ios.split('.').next().unwrap_or("")).unwrap_or_default())
            .unwrap_or_default();
        assert!(header.starts_with(r#"{"alg":"ES256""#), "{header}");
        for token in [&android, &ios] {
            let (input, sig) = token.rsplit_once('.').unwrap_or_default();
            let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(VerifyingKey::from(&key).verify(input.as_bytes(), &sig).is_ok());
        }
    }

    #[test]
    fn answers_sign_the_advertised_fields_with_their_json_types_and_status_last() {
        let key = worked_example_key();
        let challenge: Map<String, Value> = serde_json::from_str(
            r#"{"sid":"YC1","details":{"message":"Log/in?","fields":[]},"hidden_details":null,"status":"pending"}"#,
        )
        .unwrap_or_default();
        let fields: Vec<String> = ["sid", "details", "hidden_details", "status"].map(String::from).to_vec();
        let token = challenge_answer(&key, Style::Android, &fields, &challenge, "approved").unwrap_or_default();
        let payload =
            String::from_utf8(URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap_or("")).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(
            payload,
            r#"{"sid":"YC1","details":{"fields":[],"message":"Log\/in?"},"hidden_details":null,"status":"approved"}"#
        );
        let missing = ["sid", "nope"].map(String::from).to_vec();
        assert!(challenge_answer(&key, Style::Ios, &missing, &challenge, "denied").is_err());
    }

    #[test]
    fn factor_verification_is_a_der_signature_over_the_sid() {
        let key = worked_example_key();
        let payload =
            STANDARD.decode(factor_verification(&key, "YF00000000000000000000000000000001")).unwrap_or_default();
        let sig = Signature::from_der(&payload).unwrap_or_else(|e| panic!("{e}"));
        assert!(VerifyingKey::from(&key).verify(b"YF00000000000000000000000000000001", &sig).is_ok());
    }
}
