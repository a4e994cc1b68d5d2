//! `/v2/Services/{ServiceSid}/Webhooks`: CreateWebhook, ListWebhook, FetchWebhook, UpdateWebhook,
//! DeleteWebhook. Only the configuration; delivery is the webhooks worker's.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::AccountAuth;
use super::entities::ServiceScope;
use super::paging::{list_response, PageRequest};
use super::params::{Form, Params, Query};
use super::{path_sid, service_of, AppState, Missing, State};
use crate::domain::dates;
use crate::domain::rules::{is_http_url, WEBHOOK_EVENT_TYPES, WEBHOOK_FRIENDLY_NAME_MAX, WEBHOOK_URL_MAX};
use crate::domain::sid::WebhookSid;
use crate::domain::status::WebhookStatus;
use crate::error::{ApiError, ApiResult};
use crate::store::webhooks::{NewWebhook, WebhookRow, WebhookSettings};

#[derive(Deserialize)]
pub struct WebhookPath {
    #[serde(rename = "ServiceSid")]
    service_sid: String,
    #[serde(rename = "Sid")]
    sid: String,
}

#[derive(Serialize)]
struct WebhookBody {
    url: String,
    sid: String,
    account_sid: String,
    service_sid: String,
    friendly_name: String,
    event_types: Vec<String>,
    webhook_method: String,
    webhook_url: String,
    status: WebhookStatus,
    version: String,
    date_created: String,
    date_updated: String,
}

fn render(state: &AppState, w: &WebhookRow) -> WebhookBody {
    WebhookBody {
        url: state.urls.service_child(&w.service_sid, &format!("Webhooks/{}", w.sid)),
        sid: w.sid.clone(),
        account_sid: w.account_sid.clone(),
        service_sid: w.service_sid.clone(),
        friendly_name: w.settings.friendly_name.clone(),
        event_types: w.settings.event_types.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
        webhook_method: w.webhook_method.clone(),
        webhook_url: w.settings.webhook_url.clone(),
        status: w.settings.status,
        version: w.settings.version.clone(),
        date_created: dates::format(w.date_created),
        date_updated: dates::format(w.date_updated),
    }
}

/// Applies every parameter present in `p` to `w` (create checks the required ones first).
fn apply(w: &mut WebhookSettings, p: &Params) -> ApiResult<()> {
    if let Some(name) = p.text("FriendlyName", WEBHOOK_FRIENDLY_NAME_MAX)? {
        w.friendly_name = name.to_owned();
    }
    let events = p.all("EventTypes");
    if p.has("EventTypes") {
        let mut chosen: Vec<&str> = Vec::new();
        for event in events.iter().flat_map(|e| e.split(',')).map(str::trim) {
            if !WEBHOOK_EVENT_TYPES.contains(&event) {
                return Err(ApiError::WebhookParameters(format!(
                    "Invalid `EventTypes` {event:?}: expected one of {}",
                    WEBHOOK_EVENT_TYPES.join(", ")
                )));
            }
            if !chosen.contains(&event) {
                chosen.push(event);
            }
        }
        w.event_types = chosen.join(",");
    }
    if let Some(url) = p.get("WebhookUrl") {
        if !is_http_url(url) || url.len() > WEBHOOK_URL_MAX {
            return Err(ApiError::WebhookParameters(
                "Invalid `WebhookUrl`: must be an absolute http or https URL".into(),
            ));
        }
        w.webhook_url = url.to_owned();
    }
    if let Some(status) = p.word::<WebhookStatus>("Status")? {
        w.status = status;
    }
    if let Some(version) = p.one_of("Version", &["v1", "v2"])? {
        w.version = version.to_owned();
    }
    Ok(())
}

pub async fn create_webhook(
    auth: AccountAuth,
    state: State,
    path: web::Path<ServiceScope>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let friendly_name = p.required("FriendlyName")?;
    let event_types = p.all("EventTypes");
    if event_types.iter().all(|e| e.trim().is_empty()) {
        return Err(ApiError::MissingParameter("EventTypes"));
    }
    let webhook_url = p.required("WebhookUrl")?;
    // As given; `apply` validates each and normalises the event types.
    let mut settings = WebhookSettings {
        friendly_name: friendly_name.to_owned(),
        event_types: event_types.join(","),
        webhook_url: webhook_url.to_owned(),
        status: WebhookStatus::Enabled,
        version: "v2".to_owned(),
    };
    apply(&mut settings, &p)?;
    let new = NewWebhook { sid: WebhookSid::generate(), service: &service, settings, now: state.clock.now() };
    let webhook = state.store.create_webhook(new).await?;
    Ok(HttpResponse::Created().json(render(&state, &webhook)))
}

async fn webhook_of(state: &AppState, account_sid: &str, path: &WebhookPath) -> ApiResult<WebhookRow> {
    let service = service_of(state, account_sid, &path.service_sid).await?;
    let missing = Missing::Webhook { service: &path.service_sid, sid: &path.sid };
    let sid: WebhookSid = path_sid(&path.sid, missing)?;
    state.store.webhook(service.id, &sid).await?.ok_or_else(|| missing.into())
}

pub async fn fetch_webhook(auth: AccountAuth, state: State, path: web::Path<WebhookPath>) -> ApiResult<HttpResponse> {
    let webhook = webhook_of(&state, &auth.account_sid, &path).await?;
    Ok(HttpResponse::Ok().json(render(&state, &webhook)))
}

pub async fn update_webhook(
    auth: AccountAuth,
    state: State,
    path: web::Path<WebhookPath>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    if p.has("EventTypes") && p.all("EventTypes").iter().all(|e| e.trim().is_empty()) {
        return Err(ApiError::WebhookParameters("Invalid `EventTypes`: must not be empty".into()));
    }
    let now = state.clock.now();
    // Applied to the row as read and written only if it is still so (a lost race rereads and
    // reapplies), so that concurrent updates all land.
    loop {
        let current = webhook_of(&state, &auth.account_sid, &path).await?;
        let mut settings = current.settings.clone();
        apply(&mut settings, &p)?;
        if let Some(webhook) = state.store.update_webhook(&current, settings, now).await? {
            return Ok(HttpResponse::Ok().json(render(&state, &webhook)));
        }
    }
}

pub async fn delete_webhook(auth: AccountAuth, state: State, path: web::Path<WebhookPath>) -> ApiResult<HttpResponse> {
    let webhook = webhook_of(&state, &auth.account_sid, &path).await?;
    state.store.delete_webhook(webhook.service_id, &webhook.sid).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_webhook(
    auth: AccountAuth,
    state: State,
    path: web::Path<ServiceScope>,
    Query(q): Query,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_webhooks(service.id, &request.window).await?;
    let url = state.urls.service_child(&service.sid, "Webhooks");
    Ok(list_response("webhooks", &url, &[], &request, page, |w| w.id, |w| render(&state, w)))
}
