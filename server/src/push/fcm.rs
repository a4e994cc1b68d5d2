//! FCM HTTP v1: an OAuth2 access token from the service account (a JWT bearer assertion signed
//! RS256, sent to its `token_uri`), then `POST {base}/v1/projects/{project}/messages:send`.
//! The legacy FCM API is not used (Google shut it down in 2024).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ring::rand::SystemRandom;
use ring::signature::RSA_PKCS1_SHA256;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::secrets::{rsa_key, ServiceAccount};
use super::SendOutcome;
use crate::crypto::b64url;
use crate::store::pushes::PushRow;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// One token request: its outcome, once known — (access token, usable until) or why not.
type Flight = OnceCell<Result<(String, i64), SendOutcome>>;

/// OAuth2 access tokens by credential version (see `worker::version`), single-flight: sends that
/// need a token while one is being fetched wait for that fetch and share its outcome (Google
/// rate-limits the token endpoint), so a burst of pushes makes one token request. A token is reused until a minute
/// before it expires; a failed fetch is shared by those who waited for it but not kept, so the
/// next send asks again.
#[derive(Default)]
pub struct AccessTokens(Mutex<HashMap<String, Arc<Flight>>>);

impl AccessTokens {
    /// The flight to join for `credential` at `now`: the cached token's, the fetch under way,
    /// or a new one when the token went stale or the last fetch failed.
    fn flight(&self, credential: &str, now: i64) -> Arc<Flight> {
        let mut flights = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let flight = flights.entry(credential.to_owned()).or_default();
        let spent = match flight.get() {
            None => false,
            Some(Ok((_, usable_until))) => *usable_until <= now,
            Some(Err(_)) => true,
        };
        if spent {
            *flight = Arc::default();
        }
        flight.clone()
    }

    /// Forgets `token` (FCM refused it), unless a newer one has replaced it already.
    pub fn forget(&self, credential: &str, token: &str) {
        let mut flights = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(credential).and_then(|f| f.get()).is_some_and(|r| matches!(r, Ok((t, _)) if t == token)) {
            flights.remove(credential);
        }
    }

    /// A valid access token: cached, or from the fetch under way, or fetched from `token_uri`.
    pub async fn get(
        &self,
        client: &reqwest::Client,
        credential: &str,
        account: &ServiceAccount,
        now: i64,
    ) -> Result<String, SendOutcome> {
        let flight = self.flight(credential, now);
        let outcome = flight.get_or_init(|| fetch(client, account, now)).await;
        outcome.as_ref().map(|(token, _)| token.clone()).map_err(Clone::clone)
    }
}

/// Asks `token_uri` for an access token with a JWT-bearer assertion signed by the service
/// account's key: (token, usable until).
async fn fetch(client: &reqwest::Client, account: &ServiceAccount, now: i64) -> Result<(String, i64), SendOutcome> {
    let failed = |error: String| SendOutcome::Failed { status: None, error };
    let key = rsa_key(&account.private_key).ok_or_else(|| failed("the service account key is unusable".into()))?;
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": account.client_email, "scope": SCOPE, "aud": account.token_uri, "iat": now, "exp": now + 3600,
    });
    let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature)
        .map_err(|_| failed("signing the OAuth assertion failed".into()))?;
    let assertion = format!("{input}.{}", b64url(&signature));
    let response = client
        .post(&account.token_uri)
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
        .send()
        .await
        .map_err(|e| SendOutcome::Retry { status: None, error: format!("OAuth token endpoint unreachable: {e}") })?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let token = body.get("access_token").and_then(Value::as_str).map(str::to_owned);
    match (status, token) {
        (200, Some(token)) => {
            let expires_in = body.get("expires_in").and_then(Value::as_i64).unwrap_or(3600);
            // Renewed a minute before it expires.
            Ok((token, now + expires_in - 60))
        }
        (429 | 500..=599, _) => {
            Err(SendOutcome::Retry { status: Some(status), error: format!("OAuth token endpoint {status}") })
        }
        _ => Err(SendOutcome::Failed {
            status: Some(status),
            error: format!("OAuth token endpoint refused: {status} {body}"),
        }),
    }
}

/// Sends one push with `access_token`.
pub async fn send(
    client: &reqwest::Client,
    base_url: &str,
    project_id: &str,
    push: &PushRow,
    access_token: &str,
) -> SendOutcome {
    let url = format!("{}/v1/projects/{project_id}/messages:send", base_url.trim_end_matches('/'));
    let response = client
        .post(url)
        .bearer_auth(access_token)
        .header("content-type", "application/json")
        .body(push.payload.clone())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return SendOutcome::Retry { status: None, error: format!("FCM unreachable: {e}") },
    };
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let reason = body
        .pointer("/error/details/0/errorCode")
        .or_else(|| body.pointer("/error/status"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match status {
        200 => SendOutcome::Sent { status },
        429 | 500..=599 => SendOutcome::Retry { status: Some(status), error: format!("FCM {status} {reason}") },
        401 => SendOutcome::Retry { status: Some(status), error: "FCM 401: access token refused".into() },
        _ => SendOutcome::Failed { status: Some(status), error: format!("FCM {status} {reason}") },
    }
}
