//! `/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges`: CreateChallenge (backends),
//! ListChallenge and FetchChallenge (backends and devices), UpdateChallenge (the device's signed
//! answer, docs/protocol/device-protocol.md#challenge-answer).
//!
//! A pending Challenge is fetched with `Twilio-Verify-Signature-Fields`, the immutable fields the
//! device must sign; its answer is an ES256 JWS whose payload repeats those fields (deep-equal to
//! what the server holds) plus the new `status`. The status is written before the answer returns:
//! the SDK re-reads the Challenge at once.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::{AccountAuth, Caller};
use super::entities::{EntityItemPath, EntityScope};
use super::paging::{list_response, PageRequest};
use super::params::{Form, Params, Query};
use super::{entity_of, json_or_null, param_sid, path_sid, service_of, AppState, Missing, State};
use crate::crypto::device_jwt::{Jws, MAX_TOKEN_LEN};
use crate::crypto::device_key::DeviceKey;
use crate::domain::dates;
use crate::domain::rules::{
    details_field, string_map, CHALLENGE_DEFAULT_TTL, CHALLENGE_MAX_TTL, DETAILS_FIELDS_MAX, DETAILS_MESSAGE_MAX,
    JSON_TEXT_MAX,
};
use crate::domain::sid::{ChallengeSid, FactorSid, ServiceSid};
use crate::domain::status::{ChallengeStatus, FactorStatus, FactorType, PushStatus};
use crate::error::{ApiError, ApiResult};
use crate::store::challenges::{ChallengeCreated, ChallengeFilter, ChallengeRow, NewChallenge};
use crate::store::factors::FactorRow;
use crate::store::Page;

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
    status: ChallengeStatus,
    responded_reason: String,
    details: Value,
    hidden_details: Value,
    metadata: Value,
    factor_type: FactorType,
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
        status: c.status.at(c.expiration_date, now),
        responded_reason: c.responded_reason.clone(),
        details: json_or_null(Some(&c.details)),
        hidden_details: json_or_null(c.hidden_details.as_deref()),
        metadata: json_or_null(c.metadata.as_deref()),
        factor_type: c.factor_type,
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
    let factor_sid: FactorSid = param_sid("FactorSid", p.required("FactorSid")?)?;
    let factor_not_found =
        || ApiError::from(Missing::Factor { service: &service.sid, identity: &path.identity, sid: &factor_sid });
    let factor = state
        .store
        .factor(&auth.account_sid, &service.sid, &path.identity, &factor_sid)
        .await?
        .ok_or_else(factor_not_found)?;
    if factor.status != FactorStatus::Verified {
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
    if service.settings.push_include_date {
        details.insert("date".into(), Value::String(dates::format(now)));
    }
    details.insert("fields".into(), Value::Array(fields));
    let new = NewChallenge {
        sid: ChallengeSid::generate(),
        factor: &factor,
        details: Value::Object(details).to_string(),
        hidden_details,
        expiration_date,
        now,
    };
    // The push is stored with the Challenge, atomically; the worker sends it after the commit.
    let push = crate::push::challenge_push(&service, &factor, (&new).into(), &state.push, None, now);
    let challenge = match state.store.create_challenge(new, push.as_ref()).await? {
        ChallengeCreated::Created(challenge) => *challenge,
        ChallengeCreated::FactorGone => return Err(factor_not_found()),
    };
    if push.is_some_and(|p| p.status == PushStatus::Queued) {
        state.push_wake.notify_one();
    }
    Ok(HttpResponse::Created().json(render(&state, &challenge, now)))
}

/// The fields a device signs: immutable ones only, never `status` or `date_updated`
/// (docs/protocol/device-protocol.md#signature-fields-header). Sent without spaces, on one header
/// line.
pub const SIGNATURE_FIELDS: [&str; 11] = [
    "sid",
    "account_sid",
    "service_sid",
    "entity_sid",
    "identity",
    "factor_sid",
    "date_created",
    "expiration_date",
    "details",
    "hidden_details",
    "factor_type",
];
const SIGNATURE_FIELDS_HEADER: &str = "Twilio-Verify-Signature-Fields";

/// The Challenge a backend, or the device of its Factor, names in the path.
async fn challenge_for(state: &AppState, caller: &Caller, path: &EntityItemPath) -> ApiResult<ChallengeRow> {
    let account_sid = caller.signed_scope(&path.service_sid, &path.identity)?;
    let missing = path.challenge();
    let sid: ChallengeSid = path_sid(&path.sid, missing)?;
    let service_sid: ServiceSid = path_sid(&path.service_sid, missing)?;
    let challenge = state
        .store
        .challenge(account_sid, &service_sid, &path.identity, &sid)
        .await?
        .ok_or_else(|| ApiError::from(missing))?;
    if caller.device_factor().is_some_and(|own| own.sid != challenge.factor_sid) {
        return Err(ApiError::Unauthenticated);
    }
    Ok(challenge)
}

/// A Challenge as a fetch answers it: its body and, when pending, the fields the device must
/// sign (`Twilio-Verify-Signature-Fields`).
pub fn challenge_view(
    state: &AppState,
    challenge: &ChallengeRow,
    now: i64,
) -> (ChallengeBody, Option<&'static [&'static str]>) {
    let body = render(state, challenge, now);
    let fields = (body.status == ChallengeStatus::Pending).then_some(&SIGNATURE_FIELDS[..]);
    (body, fields)
}

/// A Challenge response; pending ones carry the fields the device must sign.
pub fn challenge_response(state: &AppState, challenge: &ChallengeRow, now: i64) -> HttpResponse {
    let (body, fields) = challenge_view(state, challenge, now);
    let mut response = HttpResponse::Ok();
    if let Some(fields) = fields {
        response.insert_header((SIGNATURE_FIELDS_HEADER, fields.join(",")));
    }
    response.json(body)
}

pub async fn fetch_challenge(caller: Caller, state: State, path: web::Path<EntityItemPath>) -> ApiResult<HttpResponse> {
    let challenge = fetch_challenge_core(&state, &caller, &path).await?;
    Ok(challenge_response(&state, &challenge, state.clock.now()))
}

/// The core of [`fetch_challenge`], which virtual devices call too (api/virtual_device.rs).
pub async fn fetch_challenge_core(state: &AppState, caller: &Caller, path: &EntityItemPath) -> ApiResult<ChallengeRow> {
    challenge_for(state, caller, path).await
}

/// The device's answer (or a backend relaying one): verifies the `AuthPayload` JWS with the
/// Factor's key over the received bytes, compares every signed field with the stored Challenge,
/// and records `approved` or `denied`.
pub async fn update_challenge(
    caller: Caller,
    state: State,
    path: web::Path<EntityItemPath>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let updated = update_challenge_core(&state, &caller, &path, &p).await?;
    Ok(challenge_response(&state, &updated, updated.date_updated))
}

/// The core of [`update_challenge`]: the Challenge as answered.
pub async fn update_challenge_core(
    state: &AppState,
    caller: &Caller,
    path: &EntityItemPath,
    p: &Params,
) -> ApiResult<ChallengeRow> {
    let challenge = challenge_for(state, caller, path).await?;
    let payload = p.required("AuthPayload")?;
    if payload.chars().count() > MAX_TOKEN_LEN {
        return Err(ApiError::invalid("AuthPayload", format!("must be at most {MAX_TOKEN_LEN} characters long")));
    }
    let metadata = match p.get("Metadata") {
        None => None,
        Some(text) => Some(
            serde_json::Value::Object(string_map(text, JSON_TEXT_MAX).map_err(|r| ApiError::invalid("Metadata", r))?)
                .to_string(),
        ),
    };
    let c = &challenge;
    let factor = match caller.device_factor() {
        Some(own) => own.clone(),
        None => {
            state.store.factor(&c.account_sid, &c.service_sid, &c.identity, &c.factor_sid).await?.ok_or_else(|| {
                // Deleted since the Challenge was read, taking the Challenge with it.
                ApiError::from(path.challenge())
            })?
        }
    };
    if factor.status != FactorStatus::Verified {
        return Err(ApiError::FactorUnverified);
    }
    let now = state.clock.now();
    check_answerable(&challenge, now)?;
    let status = verified_answer(state, &challenge, &factor, payload, now)?;
    let kind = if status == ChallengeStatus::Approved { "challenge.approved" } else { "challenge.denied" };
    let event = crate::webhooks::challenge_event(kind, &factor, &challenge, metadata.as_deref(), &state.webhooks, now);
    if !state.store.respond_challenge(challenge.id, status, metadata.as_deref(), now, &event).await? {
        // Answered or expired between the read and the write.
        let current = challenge_for(state, caller, path).await?;
        check_answerable(&current, now)?;
        return Err(ApiError::ChallengeResponded);
    }
    state.webhook_wake.notify_one();
    // The row as the conditional UPDATE left it (no re-read: it matched, so these are its values).
    let mut updated = challenge;
    updated.status = status;
    updated.metadata = metadata.or(updated.metadata);
    updated.date_responded = Some(now);
    updated.date_updated = now;
    Ok(updated)
}

fn check_answerable(challenge: &ChallengeRow, now: i64) -> ApiResult<()> {
    match challenge.status.at(challenge.expiration_date, now) {
        ChallengeStatus::Pending => Ok(()),
        ChallengeStatus::Expired => Err(ApiError::ChallengeExpired),
        _ => Err(ApiError::ChallengeResponded),
    }
}

/// The status a valid answer asks for, or 60324.
fn verified_answer(
    state: &AppState,
    challenge: &ChallengeRow,
    factor: &FactorRow,
    payload: &str,
    now: i64,
) -> ApiResult<ChallengeStatus> {
    let jws = Jws::parse(payload).map_err(|_| ApiError::ChallengeVerificationFailed)?;
    let key = DeviceKey::from_spki_base64(&factor.binding_public_key)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored key of {} does not parse", factor.sid)))?;
    jws.verify(&key).map_err(|_| ApiError::ChallengeVerificationFailed)?;
    let status = match jws.payload.get("status").and_then(serde_json::Value::as_str).map(str::parse) {
        Some(Ok(status @ (ChallengeStatus::Approved | ChallengeStatus::Denied))) => status,
        _ => return Err(ApiError::ChallengeVerificationFailed),
    };
    let stored = serde_json::to_value(render(state, challenge, now)).map_err(anyhow::Error::from)?;
    for field in SIGNATURE_FIELDS {
        if jws.payload.get(field) != stored.get(field) {
            return Err(ApiError::ChallengeVerificationFailed);
        }
    }
    Ok(status)
}

/// Lists Challenges; a device sees only its own Factor's (the SDKs always send `FactorSid`).
pub async fn list_challenge(
    caller: Caller,
    state: State,
    path: web::Path<EntityScope>,
    Query(q): Query,
) -> ApiResult<HttpResponse> {
    let list = list_challenge_core(&state, &caller, &path, &q).await?;
    Ok(list.response(&state))
}

/// A page of Challenges as [`list_challenge`] found it.
pub struct ChallengeList {
    pub page: Page<ChallengeRow>,
    request: PageRequest,
    filters: Vec<(&'static str, String)>,
    url: String,
    now: i64,
}

impl ChallengeList {
    /// The list response (Twilio's paging envelope).
    pub fn response(self, state: &AppState) -> HttpResponse {
        let now = self.now;
        list_response(
            "challenges",
            &self.url,
            &self.filters,
            &self.request,
            self.page,
            |c| c.id,
            |c| render(state, c, now),
        )
    }
}

/// The core of [`list_challenge`], which virtual devices call too (api/virtual_device.rs).
pub async fn list_challenge_core(
    state: &AppState,
    caller: &Caller,
    path: &EntityScope,
    q: &Params,
) -> ApiResult<ChallengeList> {
    let account_sid = caller.signed_scope(&path.service_sid, &path.identity)?;
    let device = caller.device_factor();
    let (entity_id, service_sid, identity) = match device {
        // A device's own Factor names its Entity (and exists only while they do): no lookups.
        Some(own) => (own.entity_id, own.service_sid.clone(), own.identity.clone()),
        None => {
            let service = service_of(state, account_sid, &path.service_sid).await?;
            let entity = entity_of(state, &service, &path.identity).await?;
            (entity.id, service.sid, entity.identity)
        }
    };
    let mut filters = Vec::new();
    let mut filter = ChallengeFilter::default();
    let own = device.map(|f| f.sid.as_str());
    if let Some(raw) = q.get("FactorSid").or(own) {
        let factor_sid: FactorSid = param_sid("FactorSid", raw)?;
        if own.is_some_and(|own| factor_sid != *own) {
            return Err(ApiError::Unauthenticated);
        }
        filters.push(("FactorSid", factor_sid.to_string()));
        filter.factor_sid = Some(factor_sid.into());
    }
    if let Some(status) = q.word::<ChallengeStatus>("Status")? {
        filter.status = Some(status);
        filters.push(("Status", status.to_string()));
    }
    let descending = match q.one_of("Order", &["asc", "desc"])? {
        Some(order) => {
            filters.push(("Order", order.to_owned()));
            order == "desc"
        }
        None => false,
    };
    let request = PageRequest::from_query(q, descending)?;
    let now = state.clock.now();
    let page = state.store.list_challenges(entity_id, &filter, now, &request.window).await?;
    let url = state.urls.entity_child(&service_sid, &identity, "Challenges");
    Ok(ChallengeList { page, request, filters, url, now })
}
