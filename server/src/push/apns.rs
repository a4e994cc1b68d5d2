//! APNs over HTTP/2: `POST {base}/3/device/{token}` with `apns-topic`, `apns-push-type`,
//! `apns-priority` and `apns-expiration`, authenticated by a provider token (ES256 JWT from the
//! `.p8` key, reused for up to 50 minutes as Apple asks) or by a TLS client certificate.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use ring::rand::SystemRandom;
use serde_json::Value;

use super::secrets::{p8_key, Secret};
use super::{apns_headers, SendOutcome};
use crate::crypto::b64url;
use crate::store::pushes::PushRow;

const TOKEN_REUSE_SECS: i64 = 50 * 60;

/// Provider tokens by credential version (see `worker::version`): (token, issued at). A token is
/// signed under the lock (tens of microseconds), so sends that need one at the same moment share
/// it: Apple answers `TooManyProviderTokenUpdates` to a provider that renews its token too often.
#[derive(Default)]
pub struct ProviderTokens(Mutex<HashMap<String, (String, i64)>>);

impl ProviderTokens {
    /// A provider token for `secret` at `now`, cached or freshly signed.
    pub fn get(&self, credential: &str, secret: &Secret, now: i64) -> Option<String> {
        let Secret::ApnToken { private_key, key_id, team_id } = secret else { return None };
        let mut tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((token, issued)) = tokens.get(credential) {
            if now - issued < TOKEN_REUSE_SECS {
                return Some(token.clone());
            }
        }
        let key = p8_key(private_key)?;
        let header = b64url(format!(r#"{{"alg":"ES256","kid":"{key_id}"}}"#).as_bytes());
        let claims = b64url(format!(r#"{{"iss":"{team_id}","iat":{now}}}"#).as_bytes());
        let input = format!("{header}.{claims}");
        let signature = key.sign(&SystemRandom::new(), input.as_bytes()).ok()?;
        let token = format!("{input}.{}", b64url(signature.as_ref()));
        tokens.insert(credential.to_owned(), (token.clone(), now));
        Some(token)
    }

    /// Forgets `token` (APNs called it expired), unless a newer one has replaced it already.
    pub fn forget(&self, credential: &str, token: &str) {
        let mut tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.get(credential).is_some_and(|(t, _)| t == token) {
            tokens.remove(credential);
        }
    }
}

/// Sends one push. `provider_token` is set for token auth; `client` carries the certificate for
/// certificate auth.
pub async fn send(
    client: &reqwest::Client,
    base_url: &str,
    push: &PushRow,
    provider_token: Option<&str>,
) -> SendOutcome {
    let url = format!("{}/3/device/{}", base_url.trim_end_matches('/'), push.target);
    let mut request = client
        .post(url)
        .version(reqwest::Version::HTTP_2)
        .header("content-type", "application/json")
        .body(push.payload.clone());
    for (name, value) in apns_headers(push) {
        request = request.header(name, value);
    }
    if let Some(token) = provider_token {
        request = request.header("authorization", format!("bearer {token}"));
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return SendOutcome::Retry { status: None, error: format!("APNs unreachable: {e}") },
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let reason = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    match status {
        200 => SendOutcome::Sent { status },
        429 | 500..=599 => SendOutcome::Retry { status: Some(status), error: format!("APNs {status} {reason}") },
        403 if reason == "ExpiredProviderToken" => {
            SendOutcome::Retry { status: Some(status), error: "APNs 403 ExpiredProviderToken".into() }
        }
        _ => SendOutcome::Failed { status: Some(status), error: format!("APNs {status} {reason}") },
    }
}
