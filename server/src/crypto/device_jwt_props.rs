//! Property tests of the device-signed tokens (`device_jwt.rs`, `device_key.rs`): factor JWTs and
//! challenge-answer JWSs signed with a generated P-256 key, in either SDK's JSON style, parse and
//! verify with their claims; any single-byte change of one fails; arbitrary text never panics
//! and never passes; the verify-factor `AuthPayload` (DER over the Factor SID) likewise.
//!
//! Regression files are committed deliberately: proptest writes each failing case's seed to
//! `server/proptest-regressions/<module path>.txt` and re-runs those seeds first on every run.
//! Commit the file with the fix. The seeds there now are the cases that caught deliberately
//! broken copies of the code (run once to check that each property can fail).

use crate::domain::status::ChallengeStatus;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::device_jwt::{FactorClaims, FactorJwt, Jws, JwtError, MAX_LIFETIME, MAX_TOKEN_LEN};
use super::device_key::DeviceKey;

/// A device key pair from 32 arbitrary bytes (those that are a valid P-256 scalar).
fn signing_key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_filter_map("not a P-256 scalar", |bytes| SigningKey::from_slice(&bytes).ok())
}

fn device_key(key: &SigningKey) -> DeviceKey {
    let der = key.verifying_key().to_public_key_der().map(|d| STANDARD.encode(d.as_bytes())).unwrap_or_default();
    DeviceKey::from_spki_base64(&der).unwrap_or_else(|| panic!("a generated key's SPKI parses"))
}

/// Members in the given order, as JSON text; the Android style escapes `/` as `\/`.
fn object_text(members: &[(String, Value)], android: bool) -> String {
    let body: Vec<String> =
        members.iter().map(|(name, value)| format!("{}:{}", Value::String(name.clone()), value)).collect();
    let text = format!("{{{}}}", body.join(","));
    if android {
        text.replace('/', "\\/")
    } else {
        text
    }
}

fn compact(key: &SigningKey, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A JSON value of the kinds the SDKs sign: strings (with `/`, quotes, any Unicode), integers,
/// booleans, null, and objects/arrays of them.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        ".{0,16}".prop_map(Value::from),
        "[a-z/:\\\\\"]{0,8}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `token` with its byte at `at` (modulo its length) replaced by the ASCII byte `to`, unless
/// that byte is already `to`.
pub(super) fn mutate(token: &str, at: usize, to: u8) -> Option<String> {
    let mut bytes = token.as_bytes().to_vec();
    let at = at % bytes.len();
    if bytes[at] == to {
        return None;
    }
    bytes[at] = to;
    String::from_utf8(bytes).ok()
}

/// A parsed and verified factor JWT's kid and claims, or why not.
fn accept_factor_jwt(token: &str, key: &DeviceKey) -> Result<(String, FactorClaims), JwtError> {
    let jwt = FactorJwt::parse(token)?;
    jwt.jws.verify(key)?;
    Ok((jwt.kid, jwt.claims))
}

fn accept_jws(token: &str, key: &DeviceKey) -> Result<Map<String, Value>, JwtError> {
    let jws = Jws::parse(token)?;
    jws.verify(key)?;
    Ok(jws.payload)
}

/// A factor JWT as either SDK writes it: header `{cty, kid, typ, alg}` and claims
/// `{sub, nbf, exp}`, members in any order.
#[derive(Debug, Clone)]
struct FactorToken {
    kid: String,
    claims: FactorClaims,
    header: Vec<(String, Value)>,
    payload: Vec<(String, Value)>,
    android: bool,
}

fn factor_token() -> impl Strategy<Value = FactorToken> {
    (".{0,40}", ".{0,40}", any::<i64>(), any::<i64>(), any::<bool>())
        .prop_flat_map(|(kid, sub, nbf, exp, android)| {
            let header = vec![
                ("cty".to_owned(), Value::from("twilio-pba;v=1")),
                ("kid".to_owned(), Value::from(kid.clone())),
                ("typ".to_owned(), Value::from("JWT")),
                ("alg".to_owned(), Value::from("ES256")),
            ];
            let payload = vec![
                ("sub".to_owned(), Value::from(sub.clone())),
                ("nbf".to_owned(), Value::from(nbf)),
                ("exp".to_owned(), Value::from(exp)),
            ];
            let claims = FactorClaims { sub, nbf, exp };
            (Just(kid), Just(claims), Just(header).prop_shuffle(), Just(payload).prop_shuffle(), Just(android))
        })
        .prop_map(|(kid, claims, header, payload, android)| FactorToken { kid, claims, header, payload, android })
}

/// Arbitrary text, and three-part tokens of arbitrary base64url parts and headers.
fn hostile_token() -> impl Strategy<Value = String> {
    let b64 = |max: usize| proptest::collection::vec(any::<u8>(), 0..max).prop_map(|b| URL_SAFE_NO_PAD.encode(b));
    let alg = prop_oneof![
        Just(Value::from("ES256")),
        Just(Value::from("none")),
        Just(Value::from("HS256")),
        Just(Value::from("es256")),
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
    ];
    let header = (alg, proptest::option::of(".{0,10}")).prop_map(|(alg, kid)| {
        let mut members = vec![("alg".to_owned(), alg)];
        if let Some(kid) = kid {
            members.push(("kid".to_owned(), Value::from(kid)));
        }
        URL_SAFE_NO_PAD.encode(object_text(&members, false))
    });
    prop_oneof![
        ".{0,120}",
        "[A-Za-z0-9_=.-]{0,200}",
        (b64(60), b64(60), b64(70)).prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        (header, json_value(), b64(70))
            .prop_map(|(h, p, s)| format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(p.to_string()))),
    ]
}

proptest! {
    #[test]
    fn factor_jwts_signed_with_a_generated_key_verify_with_their_claims(key in signing_key(), t in factor_token()) {
        let token = compact(&key, &object_text(&t.header, t.android), &object_text(&t.payload, t.android));
        prop_assert_eq!(accept_factor_jwt(&token, &device_key(&key)), Ok((t.kid, t.claims)));
    }

    #[test]
    fn a_factor_jwt_changed_in_any_one_byte_is_refused(
        key in signing_key(),
        t in factor_token(),
        at in any::<usize>(),
        to in 0u8..0x80,
    ) {
        let token = compact(&key, &object_text(&t.header, t.android), &object_text(&t.payload, t.android));
        if let Some(changed) = mutate(&token, at, to) {
            prop_assert!(accept_factor_jwt(&changed, &device_key(&key)).is_err(), "{} accepted", changed);
        }
    }

    #[test]
    fn a_factor_jwt_does_not_verify_with_another_key(a in signing_key(), b in signing_key(), t in factor_token()) {
        prop_assume!(a != b);
        let token = compact(&a, &object_text(&t.header, t.android), &object_text(&t.payload, t.android));
        prop_assert_eq!(accept_factor_jwt(&token, &device_key(&b)).err(), Some(JwtError::BadSignature));
    }

    #[test]
    fn hostile_tokens_never_panic_and_never_verify(key in signing_key(), token in hostile_token()) {
        let key = device_key(&key);
        prop_assert!(accept_factor_jwt(&token, &key).is_err());
        prop_assert!(accept_jws(&token, &key).is_err());
        if let Ok(jws) = Jws::parse(&token) {
            prop_assert_eq!(jws.header.get("alg").and_then(Value::as_str), Some("ES256"));
            prop_assert_eq!(jws.signature.len(), 64);
        }
    }

    #[test]
    fn tokens_over_the_length_limit_are_refused_before_parsing(extra in 1usize..64, fill in "[A-Za-z0-9.]") {
        let token = fill.repeat(MAX_TOKEN_LEN + extra);
        prop_assert_eq!(Jws::parse(&token).err(), Some(JwtError::TooLong));
    }

    #[test]
    fn the_time_window_is_exactly_the_documented_one(
        nbf in any::<i64>(),
        lifetime in prop_oneof![-5i64..=MAX_LIFETIME + 5, any::<i64>()],
        now in any::<i64>(),
        skew in 0i64..=3600,
    ) {
        let exp = nbf.wrapping_add(lifetime);
        let jwt = FactorJwt {
            kid: String::new(),
            claims: FactorClaims { sub: String::new(), nbf, exp },
            jws: Jws { signing_input: "", header: Map::new(), payload: Map::new(), signature: Vec::new() },
        };
        // The rule in i128, where nothing overflows: nbf ≤ now + skew, exp ≥ now − skew,
        // 0 ≤ exp − nbf ≤ 600.
        let wide = |v: i64| i128::from(v);
        let inside = wide(nbf) <= wide(now) + wide(skew)
            && wide(exp) >= wide(now) - wide(skew)
            && (0..=wide(MAX_LIFETIME)).contains(&(wide(exp) - wide(nbf)));
        let expected = if inside { Ok(()) } else { Err(JwtError::Expired) };
        prop_assert_eq!(jwt.check_time(now, skew), expected);
    }

    #[test]
    fn challenge_answers_verify_over_the_received_bytes_in_either_style(
        key in signing_key(),
        fields in proptest::collection::btree_map("[a-z_]{1,12}", json_value(), 0..8),
        status in prop_oneof![Just(ChallengeStatus::Approved.as_str()), Just(ChallengeStatus::Denied.as_str())],
        android in any::<bool>(),
        header_reversed in any::<bool>(),
    ) {
        let mut members: Vec<(String, Value)> = fields.into_iter().filter(|(n, _)| n != "status").collect();
        if !android {
            members.reverse();
        }
        members.push(("status".to_owned(), Value::from(status)));
        let mut header = vec![("typ".to_owned(), Value::from("JWT")), ("alg".to_owned(), Value::from("ES256"))];
        if header_reversed {
            header.reverse();
        }
        let token = compact(&key, &object_text(&header, android), &object_text(&members, android));
        let expected: Map<String, Value> = members.into_iter().collect();
        prop_assert_eq!(accept_jws(&token, &device_key(&key)), Ok(expected));
    }

    #[test]
    fn a_challenge_answer_changed_in_any_one_byte_is_refused(
        key in signing_key(),
        fields in proptest::collection::btree_map("[a-z_]{1,12}", json_value(), 0..6),
        android in any::<bool>(),
        at in any::<usize>(),
        to in 0u8..0x80,
    ) {
        let mut members: Vec<(String, Value)> = fields.into_iter().collect();
        members.push(("status".to_owned(), Value::from(ChallengeStatus::Approved.as_str())));
        let header = [("typ".to_owned(), Value::from("JWT")), ("alg".to_owned(), Value::from("ES256"))];
        let token = compact(&key, &object_text(&header, android), &object_text(&members, android));
        if let Some(changed) = mutate(&token, at, to) {
            prop_assert!(accept_jws(&changed, &device_key(&key)).is_err(), "{} accepted", changed);
        }
    }

    #[test]
    fn verify_factor_payloads_verify_only_the_signed_sid_and_bytes(
        key in signing_key(),
        digits in "[0-9a-f]{32}",
        other in "[0-9a-f]{32}",
        at in any::<usize>(),
        flip in 1u8..=255,
        junk in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let sid = format!("YF{digits}");
        let signature: DerSignature = key.sign(sid.as_bytes());
        let der = signature.as_bytes().to_vec();
        let device = device_key(&key);
        // What the server receives: standard base64 of the DER signature.
        let received = super::b64_decode(&STANDARD.encode(&der)).unwrap_or_default();
        prop_assert!(device.verify_der(sid.as_bytes(), &received));
        prop_assert_eq!(device.verify_der(format!("YF{other}").as_bytes(), &der), other == digits);
        let mut changed = der.clone();
        let at = at % changed.len();
        changed[at] ^= flip;
        prop_assert!(!device.verify_der(sid.as_bytes(), &changed));
        prop_assert!(!device.verify_der(sid.as_bytes(), &junk));
        prop_assert!(!device.verify_fixed(sid.as_bytes(), &junk));
    }
}
