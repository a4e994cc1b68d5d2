//! The push outbox worker's pass: claims due pushes (with a lease, so a crashed instance's
//! pushes are taken up again once it lapses), sends them, records every attempt, and
//! reschedules transient failures with exponential backoff and jitter until `max_attempts` or
//! the push expires. When passes run is `workers/`'s business.

use crate::domain::status::{AttemptResult, EventType, NotificationPlatform, PushStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::join_all;

use super::apns::ProviderTokens;
use super::fcm::AccessTokens;
use super::secrets::Secret;
use super::{apns, fcm, http_client, PushSettings, SendOutcome};
use crate::crypto::secretbox::SecretBox;
use crate::store::credentials::CredentialRow;
use crate::store::outbox::{AttemptOutcome, Outbox, Settled};
use crate::store::pushes::PushRow;
use crate::store::Store;
use crate::workers::Pass;

const BATCH: i64 = 16;
const MAX_BACKOFF_SECS: i64 = 300;

/// Sends pushes with the stored credentials.
pub struct Sender {
    pub settings: PushSettings,
    store: Store,
    secrets: Arc<SecretBox>,
    /// HTTP clients by [`version`] of a certificate credential (identities differ), "" for the
    /// plain one.
    clients: Mutex<HashMap<String, reqwest::Client>>,
    apns_tokens: ProviderTokens,
    fcm_tokens: AccessTokens,
}

impl Sender {
    pub fn new(settings: PushSettings, store: Store, secrets: Arc<SecretBox>) -> Sender {
        Sender {
            settings,
            store,
            secrets,
            clients: Mutex::new(HashMap::new()),
            apns_tokens: ProviderTokens::default(),
            fcm_tokens: AccessTokens::default(),
        }
    }

    fn client(&self, key: &str, identity_pem: Option<&[u8]>) -> Result<reqwest::Client, SendOutcome> {
        if let Some(client) = self.clients.lock().ok().and_then(|c| c.get(key).cloned()) {
            return Ok(client);
        }
        let client = http_client(&self.settings, identity_pem, identity_pem.is_some())
            .map_err(|e| SendOutcome::Failed { status: None, error: format!("cannot build the HTTP client: {e}") })?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key.to_owned(), client.clone());
        }
        Ok(client)
    }

    /// One delivery attempt of `push` with `credential`.
    pub async fn deliver(&self, push: &PushRow, credential: &CredentialRow, now: i64) -> SendOutcome {
        let version = version(credential);
        let Some(secret) =
            self.secrets.open(&credential.secret).and_then(|plain| serde_json::from_slice::<Secret>(&plain).ok())
        else {
            return SendOutcome::Failed {
                status: None,
                error: "the credential cannot be decrypted (wrong credentials key?)".into(),
            };
        };
        match (push.platform, &secret) {
            (NotificationPlatform::Apn, Secret::ApnToken { .. }) => {
                let base = if credential.sandbox { &self.settings.apns_sandbox_url } else { &self.settings.apns_url };
                let client = match self.client("", None) {
                    Ok(c) => c,
                    Err(d) => return d,
                };
                let Some(token) = self.apns_tokens.get(&version, &secret, now) else {
                    return SendOutcome::Failed { status: None, error: "the APNs key cannot sign".into() };
                };
                let delivery = apns::send(&client, base, push, Some(&token)).await;
                if matches!(&delivery, SendOutcome::Retry { status: Some(403), .. }) {
                    self.apns_tokens.forget(&version, &token);
                }
                delivery
            }
            (NotificationPlatform::Apn, Secret::ApnCertificate { certificate, private_key }) => {
                let base = if credential.sandbox { &self.settings.apns_sandbox_url } else { &self.settings.apns_url };
                let identity = format!("{certificate}\n{private_key}");
                match self.client(&version, Some(identity.as_bytes())) {
                    Ok(client) => apns::send(&client, base, push, None).await,
                    Err(d) => d,
                }
            }
            (NotificationPlatform::Fcm, Secret::Fcm { service_account }) => {
                let client = match self.client("", None) {
                    Ok(c) => c,
                    Err(d) => return d,
                };
                let token = match self.fcm_tokens.get(&client, &version, service_account, now).await {
                    Ok(t) => t,
                    Err(d) => return d,
                };
                let delivery =
                    fcm::send(&client, &self.settings.fcm_url, &service_account.project_id, push, &token).await;
                if matches!(&delivery, SendOutcome::Retry { status: Some(401), .. }) {
                    self.fcm_tokens.forget(&version, &token);
                }
                delivery
            }
            (platform, _) => SendOutcome::Failed {
                status: None,
                error: format!("the Service's credential {} is not for platform {platform}", credential.sid),
            },
        }
    }

    /// Sends one claimed push and records the attempt.
    async fn process(&self, push: PushRow, now: i64) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let delivery = if now >= push.expires_at {
            SendOutcome::Failed { status: None, error: "expired before it could be delivered".into() }
        } else {
            let credential = match &push.credential_sid {
                Some(sid) => self.store.credential(&push.account_sid, sid).await?,
                None => None,
            };
            match credential {
                Some(credential) => self.deliver(&push, &credential, now).await,
                None => SendOutcome::Failed { status: None, error: "the credential was deleted".into() },
            }
        };
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let attempts = push.attempts + 1;
        let (status, next, outcome) = match delivery {
            SendOutcome::Sent { status } => (
                PushStatus::Sent,
                now,
                AttemptOutcome {
                    at: now,
                    http_status: Some(status.into()),
                    outcome: AttemptResult::Sent,
                    error: None,
                    latency_ms,
                },
            ),
            SendOutcome::Retry { status, error } if attempts < push.max_attempts => {
                let next = now + crate::workers::backoff(attempts, MAX_BACKOFF_SECS);
                let status_name = if next < push.expires_at { PushStatus::Retrying } else { PushStatus::Failed };
                (
                    status_name,
                    next,
                    AttemptOutcome {
                        at: now,
                        http_status: status.map(i64::from),
                        outcome: AttemptResult::Retry,
                        error: Some(error),
                        latency_ms,
                    },
                )
            }
            SendOutcome::Retry { status, error } | SendOutcome::Failed { status, error } => (
                PushStatus::Failed,
                now,
                AttemptOutcome {
                    at: now,
                    http_status: status.map(i64::from),
                    outcome: AttemptResult::Failed,
                    error: Some(error),
                    latency_ms,
                },
            ),
        };
        if status == PushStatus::Failed {
            tracing::warn!(push = push.id, challenge = %push.challenge_sid, platform = %push.platform, error = ?outcome.error, "push failed");
        }
        let kind = match status {
            PushStatus::Sent => Some(EventType::PushSent),
            PushStatus::Failed => Some(EventType::PushFailed),
            _ => None,
        };
        let event = kind.map(|kind| crate::store::pushes::live_event(kind, &push, Some(push.id), now));
        let settled = Settled {
            id: push.id,
            attempts_before: push.attempts,
            outcome,
            status: status.as_str(),
            next_attempt_at: next,
            event,
        };
        self.store.record_attempt(Outbox::Pushes, settled).await
    }
}

/// What the clients and tokens of `credential` are cached by: its SID and a digest of its sealed
/// secret, so that an updated certificate or key is used from the next send on.
fn version(credential: &CredentialRow) -> String {
    let digest = crate::crypto::sha256(credential.secret.as_bytes());
    format!("{}#{}", credential.sid, crate::crypto::b64url(&digest[..12]))
}

impl Pass for Sender {
    const OUTBOX: Outbox = Outbox::Pushes;

    /// Claims up to a batch of due pushes and sends them concurrently, each recorded alone.
    async fn pass(&self, now: i64) -> usize {
        let lease_until = now + crate::workers::lease(self.settings.timeout);
        let claimed = match self.store.claim_pushes(now, lease_until, BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "push worker: cannot claim pushes; will retry");
                return 0;
            }
        };
        let count = claimed.len();
        let results = join_all(claimed.into_iter().map(|push| self.process(push, now))).await;
        for error in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %error, "push worker: cannot record an attempt; the lease will bring it back");
        }
        count
    }
}
