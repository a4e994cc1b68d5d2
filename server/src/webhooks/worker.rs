//! The webhook worker's pass: claims due deliveries (in order per webhook and factor, leased so a
//! crashed instance's claims are taken up again), POSTs them signed, records each attempt, and
//! retries connection errors, timeouts and non-2xx answers with backoff until `max_attempts`.
//! Redirects are not followed; response bodies are read up to a small cap; at most
//! `concurrency` deliveries are in flight.

use crate::domain::status::{AttemptResult, DeliveryStatus, EventType, WebhookStatus};
use std::collections::HashMap;
use std::time::Instant;

use futures_util::future::join_all;
use serde_json::{Map, Value};

use super::{signature, WebhookSettings, V2_ONLY};
use crate::store::deliveries::{DeliveryRow, WebhookTarget};
use crate::store::outbox::{AttemptOutcome, Outbox, Settled};
use crate::store::Store;
use crate::workers::Pass;

/// Response bytes read from a receiver (for the error message), at most.
const BODY_CAP: usize = 16 * 1024;

pub struct Deliverer {
    pub settings: WebhookSettings,
    store: Store,
    http: reqwest::Client,
}

enum Outcome {
    Delivered(u16),
    Retry(Option<u16>, String),
    Cancelled(String),
}

impl Deliverer {
    pub fn new(settings: WebhookSettings, store: Store) -> reqwest::Result<Deliverer> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("TwilioProxy/1.1")
            .build()?;
        Ok(Deliverer { settings, store, http })
    }

    /// One POST of `d` to its webhook as it is now (`None` once deleted), signed with the
    /// account's auth token.
    async fn attempt(&self, d: &DeliveryRow, target: Option<&WebhookTarget>, auth_token: Option<&str>) -> Outcome {
        let Some(target) = target.filter(|t| t.service_sid == d.service_sid) else {
            return Outcome::Cancelled("the webhook was deleted".into());
        };
        if target.status != WebhookStatus::Enabled {
            return Outcome::Cancelled("the webhook was disabled".into());
        }
        let Some(auth_token) = auth_token else {
            return Outcome::Cancelled("the account no longer exists".into());
        };
        let url = &target.webhook_url;
        let fields: Map<String, Value> = serde_json::from_str(&d.fields).unwrap_or_default();
        let mut params = vec![("uuid".to_owned(), d.uuid.clone())];
        for (name, value) in fields {
            if target.version == "v1" && V2_ONLY.contains(&name.as_str()) {
                continue;
            }
            if let Value::String(text) = value {
                params.push((name, text));
            }
        }
        let response = self
            .http
            .post(url)
            .header("X-Twilio-Signature", signature(auth_token, url, &params))
            .header("I-Twilio-Idempotency-Token", &d.uuid)
            .form(&params)
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(None, format!("unreachable: {e}")),
        };
        let code = response.status().as_u16();
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk[..chunk.len().min(BODY_CAP - body.len())]);
            if body.len() >= BODY_CAP {
                break;
            }
        }
        if response.status().is_success() {
            Outcome::Delivered(code)
        } else {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Outcome::Retry(Some(code), format!("HTTP {code}: {text}"))
        }
    }

    /// Delivers a claimed batch: reads its webhooks and accounts once, POSTs concurrently, and
    /// records every attempt in one transaction.
    async fn deliver(&self, batch: &[DeliveryRow], now: i64) -> Result<(), sqlx::Error> {
        let mut webhooks: Vec<&str> = batch.iter().map(|d| d.webhook_sid.as_str()).collect();
        webhooks.sort_unstable();
        webhooks.dedup();
        let targets = self.store.webhook_targets(&webhooks).await?;
        let mut tokens: HashMap<&str, Option<String>> = HashMap::new();
        for d in batch {
            if !tokens.contains_key(d.account_sid.as_str()) {
                let token = self.store.account(&d.account_sid).await?.map(|a| a.auth_token);
                tokens.insert(&d.account_sid, token);
            }
        }
        let (targets, tokens) = (&targets, &tokens);
        let outcomes = join_all(batch.iter().map(|d| async move {
            let started = Instant::now();
            let token = tokens.get(d.account_sid.as_str()).and_then(Option::as_deref);
            let outcome = self.attempt(d, targets.get(&d.webhook_sid), token).await;
            (d, outcome, i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
        }))
        .await;
        let mut settled = Vec::with_capacity(outcomes.len());
        for (d, outcome, latency_ms) in outcomes {
            let attempts = d.attempts + 1;
            let (status, next_attempt_at, outcome) = match outcome {
                Outcome::Cancelled(reason) => {
                    self.store.cancel_delivery(d.id, &reason, now).await?;
                    continue;
                }
                Outcome::Delivered(code) => (
                    DeliveryStatus::Delivered,
                    now,
                    AttemptOutcome {
                        at: now,
                        http_status: Some(code.into()),
                        outcome: AttemptResult::Sent,
                        error: None,
                        latency_ms,
                    },
                ),
                Outcome::Retry(code, error) => {
                    let status =
                        if attempts < d.max_attempts { DeliveryStatus::Retrying } else { DeliveryStatus::Failed };
                    let record = AttemptOutcome {
                        at: now,
                        http_status: code.map(i64::from),
                        outcome: if status == DeliveryStatus::Failed {
                            AttemptResult::Failed
                        } else {
                            AttemptResult::Retry
                        },
                        error: Some(error),
                        latency_ms,
                    };
                    (status, now + crate::workers::backoff(attempts, self.settings.max_backoff), record)
                }
            };
            if status == DeliveryStatus::Failed {
                tracing::warn!(delivery = %d.uuid, webhook = %d.webhook_sid, event = %d.event_type, error = ?outcome.error, "webhook delivery gave up");
            }
            let kind = match status {
                DeliveryStatus::Delivered => Some(EventType::WebhookDelivered),
                DeliveryStatus::Failed => Some(EventType::WebhookFailed),
                _ => None,
            };
            settled.push(Settled {
                id: d.id,
                attempts_before: d.attempts,
                outcome,
                status: status.as_str(),
                next_attempt_at,
                event: kind.map(|kind| crate::store::deliveries::live_event(kind, d, now)),
            });
        }
        self.store.record_attempts(Outbox::WebhookDeliveries, &settled).await
    }
}

impl Pass for Deliverer {
    const OUTBOX: Outbox = Outbox::WebhookDeliveries;

    /// Claims up to `concurrency` due deliveries and delivers them as one batch.
    async fn pass(&self, now: i64) -> usize {
        let lease_until = now + crate::workers::lease(self.settings.timeout);
        let claimed = match self.store.claim_deliveries(now, lease_until, self.settings.concurrency.max(1)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "webhook worker: cannot claim deliveries; will retry");
                return 0;
            }
        };
        if let Err(error) = self.deliver(&claimed, now).await {
            tracing::warn!(error = %error, "webhook worker: cannot record attempts; their leases will bring them back");
        }
        claimed.len()
    }
}
