//! Emulator-only inspection, account credentials required:
//! - `GET /_emulator/pushes` lists every push of the account — sent or, in record mode, only
//!   recorded — with its exact payload, target, headers, attempts and outcome; filters
//!   `ServiceSid`, `FactorSid`, `ChallengeSid`, `Platform`, `Status`.
//! - `GET /_emulator/webhook-deliveries` lists every webhook delivery with its fields and
//!   attempts; filters `ServiceSid`, `WebhookSid`, `EventType`, `Outcome`.
//!
//! `DELETE` on either clears them.

use actix_web::HttpResponse;
use serde::Serialize;

use super::auth::AccountAuth;
use super::paging::{list_response, PageRequest};
use super::params::Query;
use super::State;
use crate::domain::dates;
use crate::domain::status::{AttemptResult, DeliveryStatus, NotificationPlatform, PushStatus};
use crate::error::ApiResult;
use crate::push::apns_headers;
use crate::store::deliveries::{DeliveryFilter, DeliveryRow};
use crate::store::outbox::{AttemptRow, Logged, Outbox};
use crate::store::pushes::{PushFilter, PushRow};

#[derive(Serialize)]
struct PushBody<'a> {
    id: i64,
    account_sid: &'a str,
    service_sid: &'a str,
    factor_sid: &'a str,
    challenge_sid: &'a str,
    notification_sid: Option<&'a str>,
    platform: NotificationPlatform,
    /// `send` with a credential, `record` without one.
    mode: &'static str,
    credential_sid: Option<&'a str>,
    target: &'a str,
    headers: serde_json::Map<String, serde_json::Value>,
    /// The request body, byte for byte as sent (or as it would have been).
    payload: &'a str,
    status: PushStatus,
    attempts: Vec<AttemptBody<'a>>,
    max_attempts: i64,
    next_attempt_at: Option<String>,
    expires_at: String,
    last_error: Option<&'a str>,
    date_created: String,
    date_updated: String,
}

#[derive(Serialize)]
struct AttemptBody<'a> {
    attempt: i64,
    at: String,
    http_status: Option<i64>,
    outcome: AttemptResult,
    error: Option<&'a str>,
    latency_ms: i64,
}

/// The logged attempts of one push or delivery.
fn attempt_bodies(attempts: &[AttemptRow]) -> Vec<AttemptBody<'_>> {
    attempts
        .iter()
        .map(|a| AttemptBody {
            attempt: a.attempt,
            at: dates::format(a.at),
            http_status: a.http_status,
            outcome: a.outcome,
            error: a.error.as_deref(),
            latency_ms: a.latency_ms,
        })
        .collect()
}

fn render(logged: &Logged<PushRow>) -> PushBody<'_> {
    let p = &logged.row;
    let headers = if p.platform == NotificationPlatform::Apn {
        apns_headers(p).into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect()
    } else {
        serde_json::Map::new()
    };
    let waiting = matches!(p.status, PushStatus::Queued | PushStatus::Retrying);
    PushBody {
        id: p.id,
        account_sid: &p.account_sid,
        service_sid: &p.service_sid,
        factor_sid: &p.factor_sid,
        challenge_sid: &p.challenge_sid,
        notification_sid: p.notification_sid.as_deref(),
        platform: p.platform,
        mode: if p.credential_sid.is_some() { "send" } else { "record" },
        credential_sid: p.credential_sid.as_deref(),
        target: &p.target,
        headers,
        payload: &p.payload,
        status: p.status,
        attempts: attempt_bodies(&logged.attempts),
        max_attempts: p.max_attempts,
        next_attempt_at: waiting.then(|| dates::format(p.next_attempt_at)),
        expires_at: dates::format(p.expires_at),
        last_error: p.last_error.as_deref(),
        date_created: dates::format(p.date_created),
        date_updated: dates::format(p.date_updated),
    }
}

/// A push with its attempts, as the inspection list renders it.
pub(crate) fn push_json(logged: &Logged<PushRow>) -> serde_json::Value {
    serde_json::to_value(render(logged)).unwrap_or_default()
}

pub async fn list_pushes(auth: AccountAuth, state: State, Query(q): Query) -> ApiResult<HttpResponse> {
    let mut filter = PushFilter::default();
    let mut echoed = Vec::new();
    for (name, slot) in [
        ("ServiceSid", &mut filter.service_sid),
        ("FactorSid", &mut filter.factor_sid),
        ("ChallengeSid", &mut filter.challenge_sid),
        ("Platform", &mut filter.platform),
    ] {
        if let Some(value) = q.get(name) {
            *slot = Some(value.to_owned());
            echoed.push((name, value.to_owned()));
        }
    }
    if let Some(status) = q.word::<PushStatus>("Status")? {
        filter.status = Some(status.to_string());
        echoed.push(("Status", status.to_string()));
    }
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_pushes(&auth.account_sid, &filter, &request.window).await?;
    let url = state.urls.absolute("/_emulator/pushes");
    Ok(list_response("pushes", &url, &echoed, &request, page, |p| p.row.id, push_json))
}

pub async fn delete_pushes(auth: AccountAuth, state: State) -> ApiResult<HttpResponse> {
    state.store.clear_outbox(Outbox::Pushes, &auth.account_sid).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct DeliveryBody<'a> {
    uuid: &'a str,
    account_sid: &'a str,
    service_sid: &'a str,
    webhook_sid: &'a str,
    url: &'a str,
    version: &'a str,
    event_type: &'a str,
    factor_sid: &'a str,
    /// The event's fields (the v2 set; v1 webhooks receive them without the v2-only ones).
    fields: serde_json::Value,
    /// `pending`, `sending`, `retrying`, `delivered`, `failed` or `cancelled`.
    outcome: DeliveryStatus,
    attempts: Vec<AttemptBody<'a>>,
    max_attempts: i64,
    next_attempt_at: Option<String>,
    last_error: Option<&'a str>,
    date_created: String,
    date_updated: String,
}

pub async fn list_webhook_deliveries(auth: AccountAuth, state: State, Query(q): Query) -> ApiResult<HttpResponse> {
    let mut filter = DeliveryFilter::default();
    let mut echoed = Vec::new();
    for (name, slot) in [
        ("ServiceSid", &mut filter.service_sid),
        ("WebhookSid", &mut filter.webhook_sid),
        ("EventType", &mut filter.event_type),
    ] {
        if let Some(value) = q.get(name) {
            *slot = Some(value.to_owned());
            echoed.push((name, value.to_owned()));
        }
    }
    if let Some(outcome) = q.word::<DeliveryStatus>("Outcome")? {
        filter.status = Some(outcome.to_string());
        echoed.push(("Outcome", outcome.to_string()));
    }
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_deliveries(&auth.account_sid, &filter, &request.window).await?;
    let url = state.urls.absolute("/_emulator/webhook-deliveries");
    Ok(list_response("webhook_deliveries", &url, &echoed, &request, page, |d| d.row.id, delivery_json))
}

/// A delivery with its attempts, as the inspection list renders it.
pub(crate) fn delivery_json(Logged { row: d, attempts }: &Logged<DeliveryRow>) -> serde_json::Value {
    let waiting = matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    serde_json::to_value(DeliveryBody {
        uuid: &d.uuid,
        account_sid: &d.account_sid,
        service_sid: &d.service_sid,
        webhook_sid: &d.webhook_sid,
        url: &d.url,
        version: &d.version,
        event_type: &d.event_type,
        factor_sid: &d.factor_sid,
        fields: serde_json::from_str(&d.fields).unwrap_or_default(),
        outcome: d.status,
        attempts: attempt_bodies(attempts),
        max_attempts: d.max_attempts,
        next_attempt_at: waiting.then(|| dates::format(d.next_attempt_at)),
        last_error: d.last_error.as_deref(),
        date_created: dates::format(d.date_created),
        date_updated: dates::format(d.date_updated),
    })
    .unwrap_or_default()
}

pub async fn delete_webhook_deliveries(auth: AccountAuth, state: State) -> ApiResult<HttpResponse> {
    state.store.clear_outbox(Outbox::WebhookDeliveries, &auth.account_sid).await?;
    Ok(HttpResponse::NoContent().finish())
}
