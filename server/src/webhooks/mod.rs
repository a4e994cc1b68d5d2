//! Webhook events (docs/protocol/webhooks.md): what each event carries, how it is signed,
//! and the worker that delivers it.
//!
//! Events: `factor.created`, `factor.verified`, `factor.deleted`, `challenge.approved`,
//! `challenge.denied`. Form-encoded POST fields: `uuid`, `type`, `account_sid`, `service_sid`,
//! `entity_identity`, `factor_sid`, `factor_type`, `factor_friendly_name`; challenge events add
//! `challenge_sid`, `challenge_details` and `challenge_hidden_details` (JSON text); webhook
//! `Version` v2 adds `challenge_metadata` and `factor_metadata` (JSON text). Absent values are
//! omitted. Signed with `X-Twilio-Signature` (HMAC-SHA1 keyed with the account's auth token, over
//! the URL and the sorted parameters), and `I-Twilio-Idempotency-Token` carries the `uuid`.

pub mod worker;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;
use serde_json::{Map, Value};

use crate::store::challenges::ChallengeRow;
use crate::store::deliveries::NewEvent;
use crate::store::factors::FactorRow;

/// How hard to try.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub timeout: Duration,
    pub max_attempts: i64,
    /// The longest wait between two attempts, seconds.
    pub max_backoff: i64,
    pub poll_interval: Duration,
    /// Deliveries in flight at once (per instance).
    pub concurrency: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            max_backoff: 300,
            poll_interval: Duration::from_secs(1),
            concurrency: 16,
        }
    }
}

/// Fields only webhook `Version` v2 carries.
pub const V2_ONLY: [&str; 2] = ["challenge_metadata", "factor_metadata"];

fn base_fields(kind: &str, f: &FactorRow) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("type".into(), kind.into());
    fields.insert("account_sid".into(), f.account_sid.clone().into());
    fields.insert("service_sid".into(), f.service_sid.clone().into());
    fields.insert("entity_identity".into(), f.identity.clone().into());
    fields.insert("factor_sid".into(), f.sid.clone().into());
    fields.insert("factor_type".into(), f.factor_type.as_str().into());
    fields.insert("factor_friendly_name".into(), f.friendly_name.clone().into());
    if let Some(metadata) = &f.metadata {
        fields.insert("factor_metadata".into(), metadata.clone().into());
    }
    fields
}

/// A factor event (`factor.created`, `factor.verified`, `factor.deleted`).
pub fn factor_event(kind: &'static str, f: &FactorRow, settings: &WebhookSettings, now: i64) -> NewEvent {
    NewEvent {
        account_sid: f.account_sid.clone(),
        service_sid: f.service_sid.clone(),
        factor_sid: f.sid.clone(),
        event_type: kind,
        fields: base_fields(kind, f),
        max_attempts: settings.max_attempts,
        now,
    }
}

/// A challenge event (`challenge.approved`, `challenge.denied`).
pub fn challenge_event(
    kind: &'static str,
    f: &FactorRow,
    c: &ChallengeRow,
    metadata: Option<&str>,
    settings: &WebhookSettings,
    now: i64,
) -> NewEvent {
    let mut fields = base_fields(kind, f);
    fields.insert("challenge_sid".into(), c.sid.clone().into());
    fields.insert("challenge_details".into(), c.details.clone().into());
    if let Some(hidden) = &c.hidden_details {
        fields.insert("challenge_hidden_details".into(), hidden.clone().into());
    }
    if let Some(metadata) = metadata.or(c.metadata.as_deref()) {
        fields.insert("challenge_metadata".into(), metadata.to_owned().into());
    }
    NewEvent {
        account_sid: f.account_sid.clone(),
        service_sid: f.service_sid.clone(),
        factor_sid: f.sid.clone(),
        event_type: kind,
        fields,
        max_attempts: settings.max_attempts,
        now,
    }
}

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, url + name+value for each
/// parameter, names sorted, each name's values sorted)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    STANDARD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_twilio_pythons_request_validator() {
        // The vector of twilio-python's own validator tests (RSOYDt4T1cUTdK1PDd93/VVr8B8=),
        // re-checked with RequestValidator.compute_signature.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let sig = signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params);
        assert_eq!(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_ne!(signature("12346", "https://mycompany.com/myapp.php?foo=1&bar=2", &params), sig);
    }
}
