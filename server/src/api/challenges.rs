//! `/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges`: CreateChallenge, ListChallenge,
//! FetchChallenge. (The device's answer, UpdateChallenge, belongs to the device protocol.)

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::AccountAuth;
use super::entities::{EntityItemPath, EntityScope};
use super::form::{Form, Query};
use super::paging::{list_response, PageRequest};
use super::{entity_of, json_or_null, service_of, AppState, State};
use crate::domain::dates;
use crate::domain::rules::{
    challenge_status, details_field, string_map, CHALLENGE_DEFAULT_TTL, CHALLENGE_MAX_TTL, DETAILS_FIELDS_MAX,
    DETAILS_MESSAGE_MAX, JSON_TEXT_MAX,
};
use crate::domain::sid::SidKind;
use crate::error::{ApiError, ApiResult};
use crate::store::challenges::{ChallengeFilter, ChallengeRow};

#[derive(Serialize)]
pub struct ChallengeBody {
    sid: String,
    account_sid: String,
    service_sid: String,
    entity_sid: String,
    identity: String,
    factor_sid: String,
    date_created: String,
    date_updated: String,
    date_responded: Option<String>,
    expiration_date: String,
    status: String,
    responded_reason: String,
    details: Value,
    hidden_details: Value,
    metadata: Value,
    factor_type: String,
    url: String,
    links: ChallengeLinks,
}

#[derive(Serialize)]
pub struct ChallengeLinks {
    notifications: String,
}

/// A Challenge as clients see it at `now` (overdue pending reads as expired).
pub fn render(state: &AppState, c: &ChallengeRow, now: i64) -> ChallengeBody {
    let url = state.urls.entity_child(&c.service_sid, &c.identity, &format!("Challenges/{}", c.sid));
    ChallengeBody {
        sid: c.sid.clone(),
        account_sid: c.account_sid.clone(),
        service_sid: c.service_sid.clone(),
        entity_sid: c.entity_sid.clone(),
        identity: c.identity.clone(),
        factor_sid: c.factor_sid.clone(),
        date_created: dates::format(c.date_created),
        date_updated: dates::format(c.date_updated),
        date_responded: dates::format_opt(c.date_responded),
        expiration_date: dates::format(c.expiration_date),
        status: challenge_status(&c.status, c.expiration_date, now).to_owned(),
        responded_reason: c.responded_reason.clone(),
        details: json_or_null(Some(&c.details)),
        hidden_details: json_or_null(c.hidden_details.as_deref()),
        metadata: json_or_null(c.metadata.as_deref()),
        factor_type: c.factor_type.clone(),
        links: ChallengeLinks { notifications: format!("{url}/Notifications") },
        url,
    }
}

pub async fn create_challenge(
    auth: AccountAuth,
    state: State,
    path: web::Path<EntityScope>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let factor_sid = p.required("FactorSid")?;
    if !SidKind::Factor.matches(factor_sid) {
        return Err(ApiError::invalid("FactorSid", "must be a YF… SID"));
    }
    let factor =
        state.store.factor(&auth.account_sid, &service.sid, &path.identity, factor_sid).await?.ok_or_else(|| {
            ApiError::NotFound(format!("/v2/Services/{}/Entities/{}/Factors/{factor_sid}", service.sid, path.identity))
        })?;
    if factor.status != "verified" {
        return Err(ApiError::FactorUnverified);
    }
    if p.has("AuthPayload") {
        return Err(ApiError::invalid("AuthPayload", "is only used with totp Factors"));
    }
    let now = state.clock.now();
    let expiration_date = match p.get("ExpirationDate") {
        None => now + CHALLENGE_DEFAULT_TTL,
        Some(text) => {
            let at = dates::parse(text)
                .ok_or_else(|| ApiError::invalid("ExpirationDate", "must be an ISO 8601 date-time"))?;
            if at <= now || at > now + CHALLENGE_MAX_TTL {
                return Err(ApiError::invalid("ExpirationDate", "must be in the future, at most 60 minutes ahead"));
            }
            at
        }
    };
    let message =
        p.text("Details.Message", DETAILS_MESSAGE_MAX)?.ok_or(ApiError::MissingParameter("Details.Message"))?;
    let raw_fields = p.all("Details.Fields");
    if raw_fields.len() > DETAILS_FIELDS_MAX {
        return Err(ApiError::invalid("Details.Fields", format!("at most {DETAILS_FIELDS_MAX} items")));
    }
    let fields = raw_fields
        .iter()
        .map(|f| details_field(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| ApiError::invalid("Details.Fields", reason))?;
    let hidden_details = match p.get("HiddenDetails") {
        None => None,
        Some(text) => Some(
            Value::Object(string_map(text, JSON_TEXT_MAX).map_err(|r| ApiError::invalid("HiddenDetails", r))?)
                .to_string(),
        ),
    };
    let mut details = Map::new();
    details.insert("message".into(), Value::String(message.to_owned()));
    if service.push_include_date {
        details.insert("date".into(), Value::String(dates::format(now)));
    }
    details.insert("fields".into(), Value::Array(fields));
    let mut challenge = ChallengeRow {
        id: 0,
        sid: SidKind::Challenge.generate(),
        entity_id: factor.entity_id,
        factor_id: factor.id,
        account_sid: factor.account_sid,
        service_sid: factor.service_sid,
        entity_sid: factor.entity_sid,
        identity: factor.identity,
        factor_sid: factor.sid,
        factor_type: factor.factor_type,
        status: "pending".to_owned(),
        responded_reason: "none".to_owned(),
        details: Value::Object(details).to_string(),
        hidden_details,
        metadata: None,
        expiration_date,
        date_responded: None,
        date_created: now,
        date_updated: now,
    };
    challenge.id = state.store.insert_challenge(&challenge).await?;
    Ok(HttpResponse::Created().json(render(&state, &challenge, now)))
}

pub async fn fetch_challenge(
    auth: AccountAuth,
    state: State,
    path: web::Path<EntityItemPath>,
) -> ApiResult<HttpResponse> {
    let not_found = || {
        ApiError::NotFound(format!(
            "/v2/Services/{}/Entities/{}/Challenges/{}",
            path.service_sid, path.identity, path.sid
        ))
    };
    if !SidKind::Challenge.matches(&path.sid) || !SidKind::Service.matches(&path.service_sid) {
        return Err(not_found());
    }
    let challenge = state
        .store
        .challenge(&auth.account_sid, &path.service_sid, &path.identity, &path.sid)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(render(&state, &challenge, state.clock.now())))
}

pub async fn list_challenge(
    auth: AccountAuth,
    state: State,
    path: web::Path<EntityScope>,
    Query(q): Query,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let entity = entity_of(&state, &service, &path.identity).await?;
    let mut filters = Vec::new();
    let mut filter = ChallengeFilter::default();
    if let Some(factor_sid) = q.get("FactorSid") {
        if !SidKind::Factor.matches(factor_sid) {
            return Err(ApiError::invalid("FactorSid", "must be a YF… SID"));
        }
        filter.factor_sid = Some(factor_sid.to_owned());
        filters.push(("FactorSid", factor_sid.to_owned()));
    }
    if let Some(status) = q.one_of("Status", &["pending", "expired", "approved", "denied"])? {
        filter.status = Some(status);
        filters.push(("Status", status.to_owned()));
    }
    let descending = match q.one_of("Order", &["asc", "desc"])? {
        Some(order) => {
            filters.push(("Order", order.to_owned()));
            order == "desc"
        }
        None => false,
    };
    let request = PageRequest::from_query(&q, descending)?;
    let now = state.clock.now();
    let page = state.store.list_challenges(entity.id, &filter, now, &request.window).await?;
    let url = state.urls.entity_child(&service.sid, &entity.identity, "Challenges");
    Ok(list_response("challenges", &url, &filters, &request, page, |c| c.id, |c| render(&state, c, now)))
}
