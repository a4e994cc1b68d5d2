//! Validation rules and documented limits (docs/protocol/rest-api.md#limits).

use serde_json::{Map, Value};

/// Push Factors per Entity (60315).
pub const MAX_PUSH_FACTORS_PER_ENTITY: i64 = 20;
/// Factor creations per Entity per day (60326; a day is a UTC calendar day of the server clock).
pub const MAX_FACTORS_PER_ENTITY_PER_DAY: i64 = 100;
/// Entity creations per account per second (60328), Factor creations for a new identity
/// included. Enforced by the CHECK of `entity_creations` (migrations/*/0005_rate_limits.sql).
pub const MAX_ENTITIES_PER_ACCOUNT_PER_SECOND: i64 = 40;

/// The UTC day (days since the Unix epoch) of `now`, in which Factor creations are counted.
pub fn day_of(now: i64) -> i64 {
    now.div_euclid(86_400)
}

/// Default and longest Challenge lifetime, seconds.
pub const CHALLENGE_DEFAULT_TTL: i64 = 300;
pub const CHALLENGE_MAX_TTL: i64 = 3600;
pub const DETAILS_MESSAGE_MAX: usize = 256;
pub const DETAILS_FIELDS_MAX: usize = 20;
pub const FIELD_LABEL_MAX: usize = 36;
pub const FIELD_VALUE_MAX: usize = 128;
/// `HiddenDetails` and `Metadata` JSON text.
pub const JSON_TEXT_MAX: usize = 1024;
pub const SERVICE_FRIENDLY_NAME_MAX: usize = 32;
/// A Service's `Totp.Issuer`, and the ranges of `Totp.TimeStep`, `Totp.CodeLength`, `Totp.Skew`.
pub const TOTP_ISSUER_MAX: usize = 255;
pub const TOTP_TIME_STEP: std::ops::RangeInclusive<i64> = 20..=60;
pub const TOTP_CODE_LENGTH: std::ops::RangeInclusive<i64> = 3..=8;
pub const TOTP_SKEW: std::ops::RangeInclusive<i64> = 0..=2;
/// A Webhook's and a push Credential's `FriendlyName`.
pub const WEBHOOK_FRIENDLY_NAME_MAX: usize = 64;
pub const CREDENTIAL_FRIENDLY_NAME_MAX: usize = 64;
/// A Webhook's `WebhookUrl`.
pub const WEBHOOK_URL_MAX: usize = 2048;
/// The shortest configured auth token or API key secret (README, "Accounts").
pub const MIN_SECRET_LEN: usize = 8;
pub const FACTOR_FRIENDLY_NAME_MAX: usize = 64;
pub const APP_ID_MAX: usize = 100;
pub const NOTIFICATION_TOKEN_LEN: std::ops::RangeInclusive<usize> = 32..=255;
pub const ACCESS_TOKEN_TTL: std::ops::RangeInclusive<i64> = 60..=300;
pub const ACCESS_TOKEN_DEFAULT_TTL: i64 = 60;

/// Event types a Webhook may subscribe to.
pub const WEBHOOK_EVENT_TYPES: [&str; 6] =
    ["*", "factor.deleted", "factor.created", "factor.verified", "challenge.approved", "challenge.denied"];

/// An Entity identity: 8 to 64 characters, dash-separated alphanumerics.
pub fn is_valid_identity(identity: &str) -> bool {
    (8..=64).contains(&identity.len()) && identity.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Parses stringified JSON that must be an object of string values (`HiddenDetails`,
/// `Metadata`), at most `max` characters long. The helper libraries differ in whitespace
/// (python `json.dumps` adds spaces, node is compact): only the parsed value matters.
pub fn string_map(text: &str, max: usize) -> Result<Map<String, Value>, String> {
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters long"));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) if map.values().all(Value::is_string) => Ok(map),
        Ok(Value::Object(_)) => Err("every value must be a string".to_owned()),
        _ => Err("must be a JSON object of string values".to_owned()),
    }
}

/// One item of `Details.Fields`: `{"label": ≤36 chars, "value": ≤128 chars}`.
pub fn details_field(text: &str) -> Result<Value, String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err("each item must be a JSON object with `label` and `value`".to_owned());
    };
    let (Some(Value::String(label)), Some(Value::String(value))) = (map.get("label"), map.get("value")) else {
        return Err("each item needs string `label` and `value`".to_owned());
    };
    if map.len() != 2 {
        return Err("items carry only `label` and `value`".to_owned());
    }
    if label.chars().count() > FIELD_LABEL_MAX {
        return Err(format!("a label must be at most {FIELD_LABEL_MAX} characters long"));
    }
    if value.chars().count() > FIELD_VALUE_MAX {
        return Err(format!("a value must be at most {FIELD_VALUE_MAX} characters long"));
    }
    let mut field = Map::new();
    field.insert("label".to_owned(), Value::String(label.clone()));
    field.insert("value".to_owned(), Value::String(value.clone()));
    Ok(Value::Object(field))
}

/// An absolute `http`/`https` URL with a host.
pub fn is_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.contains(char::is_whitespace) && !url.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entity_rate_limit_is_the_migrations_check() {
        let check = format!("CHECK (created <= {MAX_ENTITIES_PER_ACCOUNT_PER_SECOND})");
        assert!(include_str!("../../../migrations/sqlite/0005_rate_limits.sql").contains(&check));
        assert!(include_str!("../../../migrations/postgres/0005_rate_limits.sql").contains(&check));
    }

    #[test]
    fn factor_creations_are_counted_per_utc_day() {
        assert_eq!(day_of(86_399), 0);
        assert_eq!(day_of(86_400), 1);
        assert_eq!(day_of(1_764_201_600 + 86_399), day_of(1_764_201_600));
    }

    #[test]
    fn identities_are_8_to_64_dash_separated_alphanumerics() {
        assert!(is_valid_identity("ff483d1ff591898a9942916050d2ca3f"));
        assert!(is_valid_identity("user-1234"));
        assert!(!is_valid_identity("user-12"));
        assert!(!is_valid_identity(&"a".repeat(65)));
        assert!(!is_valid_identity("bad id!!"));
        assert!(!is_valid_identity("user_1234"));
    }

    #[test]
    fn string_maps_accept_any_whitespace_and_only_string_values() {
        assert!(string_map(r#"{"ip": "10.0.0.1"}"#, 1024).is_ok());
        assert!(string_map(r#"{"ip":"10.0.0.1"}"#, 1024).is_ok());
        assert!(string_map(r#"{"n": 1}"#, 1024).is_err());
        assert!(string_map(r#"["a"]"#, 1024).is_err());
        assert!(string_map("{", 1024).is_err());
        assert!(string_map(&format!(r#"{{"a":"{}"}}"#, "x".repeat(1100)), 1024).is_err());
    }

    #[test]
    fn details_fields_are_checked_for_shape_and_length() {
        assert!(details_field(r#"{"label": "Action", "value": "Sign in"}"#).is_ok());
        assert!(details_field(r#"{"label": "Action"}"#).is_err());
        assert!(details_field(r#"{"label": 1, "value": "x"}"#).is_err());
        assert!(details_field(&format!(r#"{{"label": "{}", "value": "x"}}"#, "l".repeat(37))).is_err());
        assert!(details_field(&format!(r#"{{"label": "l", "value": "{}"}}"#, "v".repeat(129))).is_err());
    }

    #[test]
    fn webhook_urls_must_be_absolute_http() {
        assert!(is_http_url("https://example.com/hook?x=1"));
        assert!(is_http_url("http://127.0.0.1:9000"));
        assert!(!is_http_url("ftp://example.com"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("example.com/hook"));
        assert!(!is_http_url("https://exa mple.com"));
    }
}
