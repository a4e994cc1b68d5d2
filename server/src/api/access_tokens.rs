//! `/v2/Services/{ServiceSid}/AccessTokens`: CreateAccessToken, FetchAccessToken.
//!
//! The token is a compact JWE binding the account, Service, identity, factor type, friendly name
//! and expiry (see `crypto::access_token`). The backend hands it to the app, whose SDK creates
//! its push Factor with it.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::AccountAuth;
use super::entities::ServiceScope;
use super::params::Form;
use super::{path_sid, service_of, AppState, Missing, State};
use crate::crypto::access_token::AccessTokenClaims;
use crate::domain::dates;
use crate::domain::rules::{is_valid_identity, ACCESS_TOKEN_DEFAULT_TTL, ACCESS_TOKEN_TTL, FACTOR_FRIENDLY_NAME_MAX};
use crate::domain::sid::AccessTokenSid;
use crate::domain::status::FactorType;
use crate::error::{ApiError, ApiResult};
use crate::store::services::ServiceRow;
use crate::store::tokens::{AccessTokenRow, NewAccessToken};

#[derive(Deserialize)]
pub struct AccessTokenPath {
    #[serde(rename = "ServiceSid")]
    service_sid: String,
    #[serde(rename = "Sid")]
    sid: String,
}

#[derive(Serialize)]
struct AccessTokenBody {
    sid: String,
    account_sid: String,
    service_sid: String,
    entity_identity: String,
    factor_type: FactorType,
    factor_friendly_name: Option<String>,
    token: String,
    url: String,
    ttl: i64,
    date_created: String,
}

fn render(state: &AppState, t: &AccessTokenRow) -> AccessTokenBody {
    AccessTokenBody {
        sid: t.sid.clone(),
        account_sid: t.account_sid.clone(),
        service_sid: t.service_sid.clone(),
        entity_identity: t.entity_identity.clone(),
        factor_type: t.factor_type,
        factor_friendly_name: t.factor_friendly_name.clone(),
        token: t.token.clone(),
        url: state.urls.service_child(&t.service_sid, &format!("AccessTokens/{}", t.sid)),
        ttl: t.ttl,
        date_created: dates::format(t.date_created),
    }
}

pub async fn create_access_token(
    auth: AccountAuth,
    state: State,
    path: web::Path<ServiceScope>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let bad = |why: &str| ApiError::AccessTokenParameters(why.to_owned());
    let identity = p.get("Identity").ok_or_else(|| bad("Identity is required"))?;
    if !is_valid_identity(identity) {
        return Err(bad("Identity must be 8 to 64 characters of letters, digits and dashes"));
    }
    match p.get("FactorType").map(str::parse) {
        Some(Ok(FactorType::Push)) => {}
        Some(_) => return Err(bad("FactorType must be push")),
        None => return Err(bad("FactorType is required")),
    }
    let friendly_name = p.get("FactorFriendlyName");
    if friendly_name.is_some_and(|n| n.chars().count() > FACTOR_FRIENDLY_NAME_MAX) {
        return Err(bad("FactorFriendlyName must be at most 64 characters long"));
    }
    let ttl = match p.get("Ttl") {
        None => ACCESS_TOKEN_DEFAULT_TTL,
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|t| ACCESS_TOKEN_TTL.contains(t))
            .ok_or_else(|| bad("Ttl must be an integer between 60 and 300"))?,
    };
    let row = mint_access_token(&state, service, identity, friendly_name, ttl).await?;
    Ok(HttpResponse::Created().json(render(&state, &row)))
}

/// Issues and stores an access token for `identity` of `service` (validated parameters): what
/// [`create_access_token`] does, and what a virtual device enrolling without a token is given.
pub async fn mint_access_token(
    state: &AppState,
    service: ServiceRow,
    identity: &str,
    friendly_name: Option<&str>,
    ttl: i64,
) -> ApiResult<AccessTokenRow> {
    let now = state.clock.now();
    let sid = AccessTokenSid::generate();
    let claims = AccessTokenClaims {
        jti: sid.to_string(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        identity: identity.to_owned(),
        factor_type: FactorType::Push,
        factor_friendly_name: friendly_name.map(str::to_owned),
        iat: now,
        exp: now + ttl,
    };
    let new = NewAccessToken {
        sid,
        service: &service,
        identity,
        factor_type: FactorType::Push,
        factor_friendly_name: friendly_name,
        token: state.token_key.seal(&claims),
        ttl,
        now,
    };
    Ok(state.store.create_access_token(new).await?)
}

pub async fn fetch_access_token(
    auth: AccountAuth,
    state: State,
    path: web::Path<AccessTokenPath>,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let missing = Missing::AccessToken { service: &service.sid, sid: &path.sid };
    let sid: AccessTokenSid = path_sid(&path.sid, missing)?;
    let row = state.store.access_token(service.id, &sid).await?.ok_or_else(|| ApiError::from(missing))?;
    Ok(HttpResponse::Ok().json(render(&state, &row)))
}
