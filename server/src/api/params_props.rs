//! Property tests of the form decoder (`params.rs`): any bytes decode or fail with 400 / 60200
//! (never a panic, never a 5xx), and pairs encoded the way either SDK encodes them decode to the
//! same pairs in the same order. The e2e test `form_props` drives arbitrary bodies through the
//! real HTTP server.
//!
//! Regression files are committed deliberately: proptest writes each failing case's seed to
//! `server/proptest-regressions/<module path>.txt` and re-runs those seeds first on every run.
//! Commit the file with the fix. The seeds there now are the cases that caught deliberately
//! broken copies of the code (run once to check that each property can fail).

use actix_web::ResponseError;
use proptest::prelude::*;

use super::params::Params;

/// Bytes that matter to the decoder, mixed with any byte at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let special = proptest::sample::select(b"%&=+0123456789abcdefABCDEF\xc3\xa9\xff".to_vec());
    proptest::collection::vec(prop_oneof![any::<u8>(), special], 0..300)
}

/// Text without NUL: a NUL byte in a parameter is refused by its own rule (400 naming the
/// parameter), so it cannot round-trip.
fn text(min: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), min..12)
        .prop_map(|chars| chars.into_iter().collect())
}

/// How one client encodes: Android percent-encodes every byte but the unreserved ones; iOS
/// leaves `=` and `/` raw inside values; either may write a space as `+` and hex in either case.
#[derive(Debug, Clone, Copy)]
struct Encoding {
    ios: bool,
    plus_for_space: bool,
    lower_hex: bool,
    empty_pieces: bool,
}

fn encoding() -> impl Strategy<Value = Encoding> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(ios, plus_for_space, lower_hex, empty_pieces)| Encoding { ios, plus_for_space, lower_hex, empty_pieces },
    )
}

fn encode_part(text: &str, e: Encoding, raw: &[u8]) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || raw.contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' && e.plus_for_space {
            out.push('+');
        } else if e.lower_hex {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode(pairs: &[(String, String)], e: Encoding) -> String {
    let value_raw: &[u8] = if e.ios { b"=/" } else { b"" };
    let pieces: Vec<String> =
        pairs.iter().map(|(n, v)| format!("{}={}", encode_part(n, e, b""), encode_part(v, e, value_raw))).collect();
    let joined = pieces.join(if e.empty_pieces { "&&" } else { "&" });
    if e.empty_pieces {
        format!("&{joined}&")
    } else {
        joined
    }
}

proptest! {
    #[test]
    fn any_body_decodes_or_is_refused_with_400_60200(raw in body()) {
        match Params::decode(&raw) {
            Ok(params) => prop_assert!(params.pairs().iter().all(|(name, _)| !name.is_empty())),
            Err(error) => {
                prop_assert_eq!(error.status_code().as_u16(), 400, "{}", error);
                prop_assert_eq!(error.code(), 60200, "{}", error);
            }
        }
    }

    #[test]
    fn pairs_encoded_like_either_sdk_decode_to_the_same_pairs(
        pairs in proptest::collection::vec((text(1), text(0)), 0..8),
        e in encoding(),
    ) {
        let body = encode(&pairs, e);
        let decoded = Params::decode(body.as_bytes());
        prop_assert!(decoded.is_ok(), "{body}: {:?}", decoded.err());
        let decoded = decoded.unwrap_or_default();
        prop_assert_eq!(decoded.pairs(), pairs.as_slice(), "{}", body);
        for (name, _) in &pairs {
            let values: Vec<&str> = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
            prop_assert_eq!(decoded.all(name), values);
        }
    }

    #[test]
    fn what_decodes_re_encodes_to_the_same_pairs(raw in body(), e in encoding()) {
        if let Ok(first) = Params::decode(&raw) {
            if first.pairs().iter().all(|(n, v)| !n.contains('\0') && !v.contains('\0')) {
                let again = Params::decode(encode(first.pairs(), e).as_bytes()).unwrap_or_default();
                prop_assert_eq!(again.pairs(), first.pairs());
            }
        }
    }
}
