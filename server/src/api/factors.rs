//! `/v2/Services/{ServiceSid}/Entities/{Identity}/Factors`: CreateNewFactor, ListFactor,
//! FetchFactor, UpdateFactor (which also verifies with `AuthPayload`), DeleteFactor.
//!
//! Push Factors: the device's P-256 key is validated on creation; verification is a DER ECDSA
//! signature over the Factor SID (docs/protocol/device-protocol.md#verifying-a-factor). Creating a
//! Factor for a new identity creates its Entity. `binding` appears only in the creation response.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::auth::{AccountAuth, Caller};
use super::entities::{identity_param, EntityItemPath, EntityScope};
use super::paging::{list_response, PageRequest};
use super::params::{Form, Params, Query};
use super::{entity_of, json_or_null, path_sid, service_of, AppState, Missing, State};
use crate::config::RateLimits;
use crate::crypto::b64_decode;
use crate::crypto::device_key::DeviceKey;
use crate::domain::dates;
use crate::domain::rules::{
    string_map, APP_ID_MAX, FACTOR_FRIENDLY_NAME_MAX, JSON_TEXT_MAX, MAX_FACTORS_PER_ENTITY_PER_DAY,
    MAX_PUSH_FACTORS_PER_ENTITY, NOTIFICATION_TOKEN_LEN,
};
use crate::domain::sid::{CredentialSid, EntitySid, FactorSid, ServiceSid};
use crate::domain::status::{FactorStatus, FactorType, NotificationPlatform};
use crate::error::{ApiError, ApiResult};
use crate::store::factors::{FactorCreated, FactorLimits, FactorRow, NewFactor};
use crate::store::services::ServiceRow;
use crate::webhooks;

#[derive(Serialize)]
pub struct FactorBody {
    sid: String,
    account_sid: String,
    service_sid: String,
    entity_sid: String,
    identity: String,
    date_created: String,
    date_updated: String,
    friendly_name: String,
    status: FactorStatus,
    factor_type: FactorType,
    config: Value,
    metadata: Value,
    url: String,
}

/// The creation response: the Factor plus `binding` and `options`.
#[derive(Serialize)]
struct NewFactorBody {
    #[serde(flatten)]
    factor: FactorBody,
    binding: Value,
    options: Value,
}

pub fn render(state: &AppState, f: &FactorRow) -> FactorBody {
    FactorBody {
        sid: f.sid.clone(),
        account_sid: f.account_sid.clone(),
        service_sid: f.service_sid.clone(),
        entity_sid: f.entity_sid.clone(),
        identity: f.identity.clone(),
        date_created: dates::format(f.date_created),
        date_updated: dates::format(f.date_updated),
        friendly_name: f.friendly_name.clone(),
        status: f.status,
        factor_type: f.factor_type,
        config: json_or_null(Some(&f.config)),
        metadata: json_or_null(f.metadata.as_deref()),
        url: state.urls.entity_child(&f.service_sid, &f.identity, &format!("Factors/{}", f.sid)),
    }
}

fn notification_token(p: &Params) -> ApiResult<Option<&str>> {
    match p.get("Config.NotificationToken") {
        Some(t) if !NOTIFICATION_TOKEN_LEN.contains(&t.chars().count()) => {
            Err(ApiError::invalid("Config.NotificationToken", "must be between 32 and 255 characters long"))
        }
        other => Ok(other),
    }
}

fn metadata_param(p: &Params) -> ApiResult<Option<String>> {
    match p.get("Metadata") {
        None => Ok(None),
        Some(text) => {
            let map = string_map(text, JSON_TEXT_MAX).map_err(|reason| ApiError::invalid("Metadata", reason))?;
            Ok(Some(Value::Object(map).to_string()))
        }
    }
}

/// Validates a push Factor creation and stores it (with its Entity when new). Shared by the
/// backend route and, later, the device's access-token route.
pub async fn create_push_factor(
    state: &AppState,
    service: &ServiceRow,
    identity: &str,
    p: &Params,
    fixed_sid: Option<&FactorSid>,
) -> ApiResult<FactorRow> {
    identity_param(identity)?;
    let friendly_name = p.required("FriendlyName")?;
    p.text("FriendlyName", FACTOR_FRIENDLY_NAME_MAX)?;
    match p.required("FactorType")?.parse() {
        Ok(FactorType::Push) => {}
        Ok(FactorType::Totp | FactorType::Passkeys) => {
            return Err(ApiError::invalid("FactorType", "only `push` Factors are supported by this emulator"))
        }
        Err(_) => return Err(ApiError::invalid("FactorType", "must be one of: push, totp, passkeys")),
    }
    match p.get("Binding.Alg") {
        Some("ES256") => {}
        Some(_) => return Err(ApiError::BindingInvalid("Binding.Alg must be ES256".into())),
        None => return Err(ApiError::BindingInvalid("Binding.Alg is required for push Factors".into())),
    }
    let public_key = p
        .get("Binding.PublicKey")
        .ok_or_else(|| ApiError::BindingInvalid("Binding.PublicKey is required for push Factors".into()))?;
    if DeviceKey::from_spki_base64(public_key).is_none() {
        return Err(ApiError::BindingInvalid(
            "Binding.PublicKey must be a base64 P-256 public key in X.509 SubjectPublicKeyInfo DER".into(),
        ));
    }
    let sdk_version = p.required("Config.SdkVersion")?;
    p.text("Config.SdkVersion", 64)?;
    let app_id = p.required("Config.AppId")?;
    p.text("Config.AppId", APP_ID_MAX)?;
    let platform = p
        .word::<NotificationPlatform>("Config.NotificationPlatform")?
        .ok_or(ApiError::MissingParameter("Config.NotificationPlatform"))?;
    let token = notification_token(p)?;
    if platform != NotificationPlatform::None && token.is_none() {
        return Err(ApiError::MissingParameter("Config.NotificationToken"));
    }
    let metadata = metadata_param(p)?;
    let credential_sid = CredentialSid::generate();
    let config = json!({
        "sdk_version": sdk_version,
        "app_id": app_id,
        "notification_platform": platform,
        "notification_token": token,
        "credential_sid": credential_sid,
    });
    let now = state.clock.now();
    let new = NewFactor {
        sid: fixed_sid.cloned().unwrap_or_else(FactorSid::generate),
        service,
        identity,
        entity_sid: EntitySid::generate(),
        friendly_name,
        factor_type: FactorType::Push,
        binding_alg: "ES256",
        binding_public_key: public_key,
        credential_sid,
        config: config.to_string(),
        metadata,
        now,
    };
    let limits = FactorLimits {
        per_type: MAX_PUSH_FACTORS_PER_ENTITY,
        per_day: (state.rate_limits == RateLimits::On).then_some(MAX_FACTORS_PER_ENTITY_PER_DAY),
    };
    let event = |factor: &FactorRow| webhooks::factor_event("factor.created", factor, &state.webhooks, now);
    match state.store.create_factor(&new, limits, event).await? {
        FactorCreated::Created(row) => {
            state.webhook_wake.notify_one();
            Ok(*row)
        }
        FactorCreated::LimitReached => Err(ApiError::FactorLimit(20)),
        FactorCreated::DuplicateBinding => Err(ApiError::FactorExists),
        FactorCreated::DailyLimitReached => Err(ApiError::FactorRateLimit),
        FactorCreated::EntityRateLimited => Err(ApiError::EntityRateLimit),
        FactorCreated::ServiceGone => Err(Missing::Service(&service.sid).into()),
    }
}

/// A backend (account credentials) or an enrolling device (`token:<access token>`) creates a
/// push Factor; the access token must be for this Service and identity, unexpired.
pub async fn create_new_factor(
    caller: Caller,
    state: State,
    path: web::Path<EntityScope>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let factor = create_new_factor_core(&state, &caller, &path, &p, None).await?;
    let binding = json!({"alg": factor.binding_alg, "public_key": factor.binding_public_key});
    Ok(HttpResponse::Created().json(NewFactorBody { factor: render(&state, &factor), binding, options: Value::Null }))
}

/// The core of [`create_new_factor`], which virtual devices call too (api/virtual_device.rs).
/// `fixed_sid` names the new Factor (the seed file's devices); the route passes `None`.
pub async fn create_new_factor_core(
    state: &AppState,
    caller: &Caller,
    path: &EntityScope,
    p: &Params,
    fixed_sid: Option<&FactorSid>,
) -> ApiResult<FactorRow> {
    if caller.device_factor().is_some() {
        return Err(ApiError::Unauthenticated);
    }
    let account_sid = caller.scope(&path.service_sid, &path.identity)?;
    let service = service_of(state, account_sid, &path.service_sid).await?;
    create_push_factor(state, &service, &path.identity, p, fixed_sid).await
}

async fn factor_of(state: &AppState, account_sid: &str, path: &EntityItemPath) -> ApiResult<FactorRow> {
    let missing = path.factor();
    let sid: FactorSid = path_sid(&path.sid, missing)?;
    let service_sid: ServiceSid = path_sid(&path.service_sid, missing)?;
    state.store.factor(account_sid, &service_sid, &path.identity, &sid).await?.ok_or_else(|| missing.into())
}

/// The Factor a backend or its own device names in the path.
async fn factor_for(state: &AppState, caller: &Caller, path: &EntityItemPath) -> ApiResult<FactorRow> {
    let account_sid = caller.signed_scope(&path.service_sid, &path.identity)?;
    match caller.device_factor() {
        Some(own) if own.sid == path.sid => Ok(own.clone()),
        Some(_) => Err(ApiError::Unauthenticated),
        None => factor_of(state, account_sid, path).await,
    }
}

pub async fn fetch_factor(caller: Caller, state: State, path: web::Path<EntityItemPath>) -> ApiResult<HttpResponse> {
    let factor = fetch_factor_core(&state, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(render(&state, &factor)))
}

/// The core of [`fetch_factor`].
pub async fn fetch_factor_core(state: &AppState, caller: &Caller, path: &EntityItemPath) -> ApiResult<FactorRow> {
    factor_for(state, caller, path).await
}

/// Applies an update body to a push Factor: `AuthPayload` verifies it, `FriendlyName` and
/// `Config.*` change it (unknown `Config.*` keys are accepted and ignored, as the SDKs may send
/// newer ones).
pub fn apply_factor_update(factor: &mut FactorRow, p: &Params, now: i64) -> ApiResult<()> {
    if let Some(payload) = p.get("AuthPayload") {
        let key = DeviceKey::from_spki_base64(&factor.binding_public_key)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored key of {} does not parse", factor.sid)))?;
        let verified = b64_decode(payload).is_some_and(|sig| key.verify_der(factor.sid.as_bytes(), &sig));
        if !verified {
            return Err(ApiError::FactorVerificationFailed);
        }
        factor.status = FactorStatus::Verified;
    }
    if let Some(name) = p.text("FriendlyName", FACTOR_FRIENDLY_NAME_MAX)? {
        factor.friendly_name = name.to_owned();
    }
    let mut config: Map<String, Value> = serde_json::from_str(&factor.config).unwrap_or_default();
    if let Some(token) = notification_token(p)? {
        config.insert("notification_token".into(), Value::String(token.to_owned()));
    }
    if let Some(version) = p.text("Config.SdkVersion", 64)? {
        config.insert("sdk_version".into(), Value::String(version.to_owned()));
    }
    if let Some(platform) = p.word::<NotificationPlatform>("Config.NotificationPlatform")? {
        if platform != NotificationPlatform::None && config.get("notification_token").is_none_or(Value::is_null) {
            return Err(ApiError::MissingParameter("Config.NotificationToken"));
        }
        config.insert("notification_platform".into(), Value::String(platform.to_string()));
    }
    factor.config = Value::Object(config).to_string();
    factor.date_updated = now;
    Ok(())
}

pub async fn update_factor(
    caller: Caller,
    state: State,
    path: web::Path<EntityItemPath>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let factor = update_factor_core(&state, &caller, &path, &p).await?;
    Ok(HttpResponse::Ok().json(render(&state, &factor)))
}

/// The core of [`update_factor`]: the Factor as updated.
pub async fn update_factor_core(
    state: &AppState,
    caller: &Caller,
    path: &EntityItemPath,
    p: &Params,
) -> ApiResult<FactorRow> {
    let mut current = factor_for(state, caller, path).await?;
    let now = state.clock.now();
    // Applied to the row as read and written only if it is still so: a lost race reads the
    // row again and reapplies, so concurrent updates all land and a verification happens once.
    // Each lost race is another update's success, so this ends.
    loop {
        let mut factor = current.clone();
        apply_factor_update(&mut factor, p, now)?;
        let event = (current.status != FactorStatus::Verified && factor.status == FactorStatus::Verified)
            .then(|| webhooks::factor_event("factor.verified", &factor, &state.webhooks, now));
        if state.store.update_factor(&current, &factor, event.as_ref()).await? {
            if event.is_some() {
                state.webhook_wake.notify_one();
            }
            return Ok(factor);
        }
        current = factor_of(state, &current.account_sid, path).await?;
    }
}

pub async fn delete_factor(caller: Caller, state: State, path: web::Path<EntityItemPath>) -> ApiResult<HttpResponse> {
    delete_factor_core(&state, &caller, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The core of [`delete_factor`].
pub async fn delete_factor_core(state: &AppState, caller: &Caller, path: &EntityItemPath) -> ApiResult<()> {
    let factor = factor_for(state, caller, path).await?;
    let event = webhooks::factor_event("factor.deleted", &factor, &state.webhooks, state.clock.now());
    state.store.delete_factor(&factor, &event).await?;
    state.webhook_wake.notify_one();
    Ok(())
}

pub async fn list_factor(
    auth: AccountAuth,
    state: State,
    path: web::Path<EntityScope>,
    Query(q): Query,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let entity = entity_of(&state, &service, &path.identity).await?;
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_factors(entity.id, &request.window).await?;
    let url = state.urls.entity_child(&service.sid, &entity.identity, "Factors");
    Ok(list_response("factors", &url, &[], &request, page, |f| f.id, |f| render(&state, f)))
}
