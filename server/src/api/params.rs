//! Twilio form decoding, for bodies and query strings alike.
//!
//! Twilio's API takes `application/x-www-form-urlencoded` with dotted PascalCase names
//! (`Push.IncludeDate`) and repeated keys for arrays (`Details.Fields=…&Details.Fields=…`), which
//! serde_urlencoded cannot collect. Both SDK encodings must decode
//! (docs/protocol/device-protocol.md#form-encoding): Android percent-encodes everything, iOS leaves
//! `=` and `/` raw inside values, so each pair is split at its *first* `=`. Unlike
//! `form_urlencoded::parse`, decoding is strict: a bad `%XX` escape or a byte sequence that is not
//! UTF-8 is an error, never a silent U+FFFD, and so is U+0000 in a name or value (PostgreSQL cannot
//! store it in text; SQLite could, so both refuse it).

use crate::domain::status::Word;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;

use crate::error::ApiError;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Decoded name/value pairs in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes `a=1&b=2` strictly.
    pub fn decode(raw: &[u8]) -> Result<Params, ApiError> {
        let mut pairs = Vec::new();
        for piece in raw.split(|b| *b == b'&') {
            if piece.is_empty() {
                continue;
            }
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(at) => (&piece[..at], &piece[at + 1..]),
                None => (piece, &b""[..]),
            };
            let name = percent_decode(name)?;
            if name.is_empty() {
                continue;
            }
            let value = percent_decode(value)?;
            if name.contains('\0') || value.contains('\0') {
                return Err(ApiError::NulCharacter(name));
            }
            pairs.push((name, value));
        }
        Ok(Params { pairs })
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// A required value: absent is `MissingParameter`.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name).ok_or(ApiError::MissingParameter(name))
    }

    /// A boolean as the helper libraries send it (`true`/`false`; `True`/`False` accepted).
    pub fn bool(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }

    /// An integer within `range`.
    pub fn int_in(&self, name: &'static str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        match text.trim().parse::<i64>() {
            Ok(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::invalid(
                name,
                format!("must be an integer between {} and {}", range.start(), range.end()),
            )),
        }
    }

    /// A string of at most `max` characters (Unicode scalar values, as Twilio counts).
    pub fn text(&self, name: &'static str, max: usize) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            Some(v) if v.chars().count() > max => {
                Err(ApiError::invalid(name, format!("must be at most {max} characters long")))
            }
            other => Ok(other),
        }
    }

    /// One of `allowed`, verbatim.
    pub fn one_of(&self, name: &'static str, allowed: &[&'static str]) -> Result<Option<&'static str>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        allowed
            .iter()
            .copied()
            .find(|a| *a == v)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(name, format!("must be one of: {}", allowed.join(", "))))
    }

    /// [`Params::one_of`] the words of `W`, parsed.
    pub fn word<W: Word>(&self, name: &'static str) -> Result<Option<W>, ApiError> {
        Ok(self.one_of(name, W::NAMES)?.and_then(|v| v.parse().ok()))
    }

    /// Every pair, in arrival order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

fn percent_decode(input: &[u8]) -> Result<String, ApiError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = input.get(i + 1..i + 3).and_then(|h| {
                    let hi = char::from(h[0]).to_digit(16)?;
                    let lo = char::from(h[1]).to_digit(16)?;
                    u8::try_from(hi * 16 + lo).ok()
                });
                let Some(byte) = hex else {
                    return Err(ApiError::MalformedBody("a '%' is not followed by two hexadecimal digits".to_owned()));
                };
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::MalformedBody("parameters must be UTF-8 text".to_owned()))
}

/// The decoded form body of a request (at most [`MAX_BODY_BYTES`]).
#[derive(Debug)]
pub struct Form(pub Params);

impl FromRequest for Form {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Form, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)").to_owned());
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
                return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
            }
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::MalformedBody(e.to_string()))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
                }
                body.extend_from_slice(&chunk);
            }
            if !body.is_empty() {
                if let Some(ct) = content_type {
                    let essence = ct.split(';').next().unwrap_or("").trim();
                    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                        return Err(ApiError::UnsupportedMediaType(essence.to_owned()));
                    }
                }
            }
            Params::decode(&body).map(Form)
        })
    }
}

/// The decoded query string of a request.
#[derive(Debug)]
pub struct Query(pub Params);

impl FromRequest for Query {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Query, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Params::decode(req.query_string().as_bytes()).map(Query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Params {
        match Params::decode(s.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn collects_repeated_keys_in_order() {
        let p = decode("EventTypes=factor.verified&EventTypes=challenge.approved&FriendlyName=x");
        assert_eq!(p.all("EventTypes"), vec!["factor.verified", "challenge.approved"]);
        assert_eq!(p.get("FriendlyName"), Some("x"));
    }

    #[test]
    fn splits_at_the_first_equals_sign_like_the_ios_sdk_sends() {
        let p = decode("Binding.PublicKey=MFkw/abc==&AuthPayload=a=b");
        assert_eq!(p.get("Binding.PublicKey"), Some("MFkw/abc=="));
        assert_eq!(p.get("AuthPayload"), Some("a=b"));
    }

    #[test]
    fn decodes_android_percent_encoding_and_plus_as_space() {
        let p = decode("Details.Message=Hi%2C+there%21&K=%2B%2F%3D");
        assert_eq!(p.get("Details.Message"), Some("Hi, there!"));
        assert_eq!(p.get("K"), Some("+/="));
    }

    #[test]
    fn rejects_bad_escapes_and_non_utf8() {
        assert!(Params::decode(b"A=%zz").is_err());
        assert!(Params::decode(b"A=%4").is_err());
        assert!(Params::decode(b"A=%ff%fe").is_err());
        assert!(Params::decode(b"A=\xff").is_err());
    }

    #[test]
    fn refuses_nul_naming_the_parameter() {
        for raw in [&b"FriendlyName=a%00b"[..], b"FriendlyName=a\x00b", b"Friendly%00Name=x"] {
            let err = Params::decode(raw).err().map(|e| (e.code(), e.to_string()));
            assert!(matches!(&err, Some((60200, m)) if m.contains("`Friendly")), "{raw:?}: {err:?}");
        }
    }

    #[test]
    fn typed_accessors_name_the_parameter() {
        let p = decode("Ttl=10&Flag=maybe&Name=abcdef");
        let err = p.int_in("Ttl", 60..=300).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("`Ttl`"), "{err}");
        assert!(p.bool("Flag").is_err());
        assert!(p.text("Name", 5).is_err());
        assert_eq!(p.text("Name", 6).ok().flatten(), Some("abcdef"));
        assert!(matches!(p.required("Missing"), Err(ApiError::MissingParameter("Missing"))));
    }
}
