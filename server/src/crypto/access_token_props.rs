//! Property tests of the access-token JWE (`access_token.rs`): any claims the server seals open
//! to the same claims; a token changed in any one byte, or sealed under another key, does not
//! open; arbitrary text never panics and never opens.
//!
//! Regression files are committed deliberately: proptest writes each failing case's seed to
//! `server/proptest-regressions/<module path>.txt` and re-runs those seeds first on every run.
//! Commit the file with the fix. The seeds there now are the cases that caught deliberately
//! broken copies of the code (run once to check that each property can fail).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;

use super::access_token::{AccessTokenClaims, TokenError, TokenKey, MAX_TOKEN_LEN};
use super::device_jwt_props::mutate;
use crate::domain::status::FactorType;

fn claims() -> impl Strategy<Value = AccessTokenClaims> {
    (
        ("YK[0-9a-f]{32}", "AC[0-9a-f]{32}", "VA[0-9a-f]{32}"),
        (
            ".{0,40}",
            proptest::sample::select(vec![FactorType::Push, FactorType::Totp, FactorType::Passkeys]),
            proptest::option::of(".{0,40}"),
        ),
        (any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |((jti, account_sid, service_sid), (identity, factor_type, factor_friendly_name), (iat, exp))| {
                AccessTokenClaims {
                    jti,
                    account_sid,
                    service_sid,
                    identity,
                    factor_type,
                    factor_friendly_name,
                    iat,
                    exp,
                }
            },
        )
}

/// Arbitrary text, and five-part tokens with `dir`/`A256GCM`-like headers and random parts.
fn hostile_token() -> impl Strategy<Value = String> {
    let b64 = |min: usize, max: usize| {
        proptest::collection::vec(any::<u8>(), min..max).prop_map(|b| URL_SAFE_NO_PAD.encode(b))
    };
    let header = (
        prop_oneof![Just("dir"), Just("none"), Just("A256KW")],
        prop_oneof![Just("A256GCM"), Just("A128GCM")],
        ".{0,12}",
    )
        .prop_map(|(alg, enc, kid)| {
            URL_SAFE_NO_PAD
                .encode(serde_json::json!({"alg": alg, "enc": enc, "cty": "twilio-fpa;v=1", "kid": kid}).to_string())
        });
    prop_oneof![
        ".{0,120}",
        "[A-Za-z0-9_.-]{0,300}",
        (header, b64(0, 2), b64(10, 14), b64(0, 200), b64(14, 18))
            .prop_map(|(h, k, iv, c, t)| format!("{h}.{k}.{iv}.{c}.{t}")),
    ]
}

proptest! {
    #[test]
    fn sealed_claims_open_to_the_same_claims(secret in any::<[u8; 32]>(), c in claims()) {
        let key = TokenKey::new(&secret);
        let token = key.seal(&c);
        prop_assert!(token.len() <= MAX_TOKEN_LEN);
        prop_assert_eq!(key.open(&token), Ok(c));
    }

    #[test]
    fn a_token_changed_in_any_one_byte_does_not_open(
        secret in any::<[u8; 32]>(),
        c in claims(),
        at in any::<usize>(),
        to in 0u8..0x80,
    ) {
        let key = TokenKey::new(&secret);
        if let Some(changed) = mutate(&key.seal(&c), at, to) {
            prop_assert!(key.open(&changed).is_err(), "{} opened", changed);
        }
    }

    #[test]
    fn a_token_of_another_key_does_not_open(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), c in claims()) {
        prop_assume!(a != b);
        let token = TokenKey::new(&a).seal(&c);
        prop_assert_eq!(TokenKey::new(&b).open(&token), Err(TokenError::Forged));
    }

    #[test]
    fn hostile_tokens_never_panic_and_never_open(secret in any::<[u8; 32]>(), token in hostile_token()) {
        prop_assert!(TokenKey::new(&secret).open(&token).is_err());
    }
}
