//! The webhook worker: claims due deliveries (in order per webhook and factor, leased so a
//! crashed instance's claims are taken up again), POSTs them signed, records each attempt, and
//! retries connection errors, timeouts and non-2xx answers with backoff until `max_attempts`.
//! Redirects are not followed; response bodies are read up to a small cap; at most
//! `concurrency` deliveries are in flight.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::{signature, WebhookSettings, V2_ONLY};
use crate::clock::SharedClock;
use crate::store::deliveries::DeliveryRow;
use crate::store::outbox::{AttemptOutcome, Outbox};
use crate::store::Store;

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

    async fn attempt(&self, d: &DeliveryRow) -> Result<Outcome, sqlx::Error> {
        let Some((url, version, status)) = self.store.webhook_target(&d.service_sid, &d.webhook_sid).await? else {
            return Ok(Outcome::Cancelled("the webhook was deleted".into()));
        };
        if status != "enabled" {
            return Ok(Outcome::Cancelled("the webhook was disabled".into()));
        }
        let Some(account) = self.store.account(&d.account_sid).await? else {
            return Ok(Outcome::Cancelled("the account no longer exists".into()));
        };
        let fields: Map<String, Value> = serde_json::from_str(&d.fields).unwrap_or_default();
        let mut params = vec![("uuid".to_owned(), d.uuid.clone())];
        for (name, value) in fields {
            if version == "v1" && V2_ONLY.contains(&name.as_str()) {
                continue;
            }
            if let Value::String(text) = value {
                params.push((name, text));
            }
        }
        let response = self
            .http
            .post(&url)
            .header("X-Twilio-Signature", signature(&account.auth_token, &url, &params))
            .header("I-Twilio-Idempotency-Token", &d.uuid)
            .form(&params)
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::Retry(None, format!("unreachable: {e}"))),
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
            Ok(Outcome::Delivered(code))
        } else {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Ok(Outcome::Retry(Some(code), format!("HTTP {code}: {text}")))
        }
    }

    async fn process(&self, d: DeliveryRow, now: i64) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let outcome = self.attempt(&d).await?;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let attempts = d.attempts + 1;
        let (status, next, record) = match outcome {
            Outcome::Cancelled(reason) => return self.store.cancel_delivery(d.id, &reason, now).await,
            Outcome::Delivered(code) => (
                "delivered",
                now,
                AttemptOutcome { at: now, http_status: Some(code.into()), outcome: "sent", error: None, latency_ms },
            ),
            Outcome::Retry(code, error) => {
                let status = if attempts < d.max_attempts { "retrying" } else { "failed" };
                let record = AttemptOutcome {
                    at: now,
                    http_status: code.map(i64::from),
                    outcome: if status == "failed" { "failed" } else { "retry" },
                    error: Some(error),
                    latency_ms,
                };
                (status, now + crate::workers::backoff(attempts, self.settings.max_backoff), record)
            }
        };
        if status == "failed" {
            tracing::warn!(delivery = %d.uuid, webhook = %d.webhook_sid, event = %d.event_type, error = ?record.error, "webhook delivery gave up");
        }
        self.store.record_attempt(Outbox::WebhookDeliveries, d.id, d.attempts, &record, status, next).await
    }
}

/// Delivers until the task is aborted; `wake` shortens the wait when an event is recorded.
pub async fn run(deliverer: Arc<Deliverer>, store: Store, clock: SharedClock, wake: Arc<Notify>) {
    let lease = i64::try_from(deliverer.settings.timeout.as_secs()).unwrap_or(60) * 2 + 5;
    loop {
        let now = clock.now();
        let claimed = match store.claim_deliveries(now, now + lease, deliverer.settings.concurrency.max(1)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "webhook worker: cannot claim deliveries; will retry");
                Vec::new()
            }
        };
        let idle = claimed.is_empty();
        let results = join_all(claimed.into_iter().map(|d| deliverer.process(d, now))).await;
        for error in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %error, "webhook worker: cannot record an attempt; the lease will bring it back");
        }
        if idle {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(deliverer.settings.poll_interval) => {}
            }
        }
    }
}
