//! Push delivery (docs/protocol/push-payloads.md): what a Challenge's push says, where it goes, and
//! the outbox that sends it.
//!
//! Creating a Challenge (or a Notification) stores the push in the same transaction. With a
//! credential for the factor's platform on the Service, the [`worker`] sends it — APNs over
//! HTTP/2 ([`apns`]) or FCM HTTP v1 ([`fcm`]) — retrying transient failures with backoff; without
//! one (the default, and the air-gapped case) the push is only recorded. Either way it can be
//! inspected at `/_emulator/pushes`, byte for byte.

pub mod apns;
pub mod fcm;
pub mod secrets;
pub mod worker;

use crate::domain::status::{NotificationPlatform, PushStatus};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::domain::dates;
use crate::store::challenges::{ChallengeRow, NewChallenge};
use crate::store::factors::FactorRow;
use crate::store::pushes::{NewPush, PushRow};
use crate::store::services::ServiceRow;

/// Where pushes go and how hard to try.
#[derive(Debug, Clone)]
pub struct PushSettings {
    pub apns_url: String,
    pub apns_sandbox_url: String,
    pub fcm_url: String,
    /// A PEM CA to trust for APNs/FCM/token endpoints besides the public roots (local fakes).
    pub extra_ca_pem: Option<Vec<u8>>,
    pub max_attempts: i64,
    pub timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            apns_url: "https://api.push.apple.com".into(),
            apns_sandbox_url: "https://api.sandbox.push.apple.com".into(),
            fcm_url: "https://fcm.googleapis.com".into(),
            extra_ca_pem: None,
            max_attempts: 8,
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// The `type` the sample apps switch on.
pub const PUSH_TYPE: &str = "verify_push_challenge";

/// A re-send requested through the Notifications resource.
#[derive(Debug, Clone, Copy)]
pub struct Resend {
    /// Seconds the push stays deliverable; 0 = one attempt, now.
    pub ttl: i64,
}

/// What a push says of the Challenge it announces: a stored one (re-sent) or one being created.
#[derive(Debug, Clone, Copy)]
pub struct Announced<'a> {
    pub sid: &'a str,
    /// `{"message", "date"?, "fields"}` as JSON text.
    pub details: &'a str,
    pub date_created: i64,
    pub expiration_date: i64,
}

impl<'a> From<&'a ChallengeRow> for Announced<'a> {
    fn from(c: &'a ChallengeRow) -> Announced<'a> {
        Announced { sid: &c.sid, details: &c.details, date_created: c.date_created, expiration_date: c.expiration_date }
    }
}

impl<'a> From<&'a NewChallenge<'_>> for Announced<'a> {
    fn from(c: &'a NewChallenge<'_>) -> Announced<'a> {
        Announced { sid: &c.sid, details: &c.details, date_created: c.now, expiration_date: c.expiration_date }
    }
}

/// The push announcing `challenge` to `factor`'s device, or `None` when the factor has no push
/// platform or token.
pub fn challenge_push(
    service: &ServiceRow,
    factor: &FactorRow,
    challenge: Announced<'_>,
    settings: &PushSettings,
    resend: Option<Resend>,
    now: i64,
) -> Option<NewPush> {
    let config: Map<String, Value> = serde_json::from_str(&factor.config).ok()?;
    let platform: NotificationPlatform = config.get("notification_platform")?.as_str()?.parse().ok()?;
    let target = config.get("notification_token")?.as_str()?.to_owned();
    let topic = config.get("app_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let credential_sid = match platform {
        NotificationPlatform::Apn => service.settings.push_apn_credential_sid.clone(),
        NotificationPlatform::Fcm => service.settings.push_fcm_credential_sid.clone(),
        NotificationPlatform::None => return None,
    };
    let details: Map<String, Value> = serde_json::from_str(challenge.details).unwrap_or_default();
    let message = details.get("message").and_then(Value::as_str).unwrap_or_default();
    let date = service.settings.push_include_date.then(|| dates::format(challenge.date_created));
    let expires_at = match resend {
        Some(r) => now + r.ttl.max(30),
        None => challenge.expiration_date,
    };
    let mut custom = Map::new();
    custom.insert("type".into(), PUSH_TYPE.into());
    custom.insert("challenge_sid".into(), challenge.sid.into());
    custom.insert("factor_sid".into(), factor.sid.clone().into());
    custom.insert("message".into(), message.into());
    if let Some(date) = &date {
        custom.insert("date".into(), date.clone().into());
    }
    let payload = match platform {
        NotificationPlatform::Apn => {
            let mut body = Map::new();
            body.insert(
                "aps".into(),
                json!({"alert": message, "category": PUSH_TYPE, "mutable-content": 1, "sound": "default"}),
            );
            body.extend(custom);
            Value::Object(body).to_string()
        }
        _ => json!({"message": {
            "token": target,
            "data": custom,
            "android": {"priority": "high", "ttl": format!("{}s", (expires_at - now).max(0))},
        }})
        .to_string(),
    };
    let recorded = credential_sid.is_none();
    Some(NewPush {
        platform,
        target,
        credential_sid,
        topic,
        payload,
        expires_at,
        status: if recorded { PushStatus::Recorded } else { PushStatus::Queued },
        max_attempts: if resend.is_some_and(|r| r.ttl == 0) { 1 } else { settings.max_attempts },
        now,
    })
}

/// The APNs request headers of a push (also shown by the inspection endpoint).
pub fn apns_headers(push: &PushRow) -> Vec<(&'static str, String)> {
    vec![
        ("apns-topic", push.topic.clone()),
        ("apns-push-type", "alert".to_owned()),
        ("apns-priority", "10".to_owned()),
        ("apns-expiration", push.expires_at.to_string()),
    ]
}

/// One HTTP client per credential identity: TLS trust of the extra CA, HTTP/2 for APNs.
pub fn http_client(
    settings: &PushSettings,
    identity_pem: Option<&[u8]>,
    http2_only: bool,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("verify-push-emulator/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &settings.extra_ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(pem) = identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(pem)?);
    }
    if http2_only {
        builder = builder.http2_adaptive_window(true);
    }
    builder.build()
}

/// What one send of a push came to (its attempt is recorded from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        status: u16,
    },
    /// Worth another try (5xx, 429, timeouts, connection errors).
    Retry {
        status: Option<u16>,
        error: String,
    },
    /// Will never succeed (bad token, unregistered device, rejected credential).
    Failed {
        status: Option<u16>,
        error: String,
    },
}
