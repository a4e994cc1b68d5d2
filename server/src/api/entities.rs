//! `/v2/Services/{ServiceSid}/Entities`: CreateEntity, ListEntity, FetchEntity, DeleteEntity.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::AccountAuth;
use super::paging::{list_response, PageRequest};
use super::params::{Form, Query};
use super::{entity_of, service_of, Missing, State};
use crate::config::RateLimits;
use crate::domain::dates;
use crate::domain::rules::is_valid_identity;
use crate::domain::sid::EntitySid;
use crate::error::{ApiError, ApiResult};
use crate::store::entities::{EntityCreated, EntityRow, NewEntity};

#[derive(Deserialize)]
pub struct ServiceScope {
    #[serde(rename = "ServiceSid")]
    pub service_sid: String,
}

#[derive(Deserialize)]
pub struct EntityScope {
    #[serde(rename = "ServiceSid")]
    pub service_sid: String,
    #[serde(rename = "Identity")]
    pub identity: String,
}

/// A resource beneath an Entity: `…/Entities/{Identity}/<Kind>/{Sid}`.
#[derive(Deserialize)]
pub struct EntityItemPath {
    #[serde(rename = "ServiceSid")]
    pub service_sid: String,
    #[serde(rename = "Identity")]
    pub identity: String,
    #[serde(rename = "Sid")]
    pub sid: String,
}

impl EntityItemPath {
    /// This path as a Factor's.
    pub fn factor(&self) -> Missing<'_> {
        Missing::Factor { service: &self.service_sid, identity: &self.identity, sid: &self.sid }
    }

    /// This path as a Challenge's.
    pub fn challenge(&self) -> Missing<'_> {
        Missing::Challenge { service: &self.service_sid, identity: &self.identity, sid: &self.sid }
    }
}

#[derive(Serialize)]
struct EntityBody {
    sid: String,
    identity: String,
    account_sid: String,
    service_sid: String,
    date_created: String,
    date_updated: String,
    url: String,
    links: EntityLinks,
}

#[derive(Serialize)]
struct EntityLinks {
    factors: String,
    new_factors: String,
    challenges: String,
}

fn render(state: &State, e: &EntityRow) -> EntityBody {
    let factors = state.urls.entity_child(&e.service_sid, &e.identity, "Factors");
    EntityBody {
        sid: e.sid.clone(),
        identity: e.identity.clone(),
        account_sid: e.account_sid.clone(),
        service_sid: e.service_sid.clone(),
        date_created: dates::format(e.date_created),
        date_updated: dates::format(e.date_updated),
        url: state.urls.entity(&e.service_sid, &e.identity),
        links: EntityLinks {
            new_factors: factors.clone(),
            factors,
            challenges: state.urls.entity_child(&e.service_sid, &e.identity, "Challenges"),
        },
    }
}

/// Checks an identity from a body parameter.
pub fn identity_param(identity: &str) -> ApiResult<()> {
    if is_valid_identity(identity) {
        Ok(())
    } else {
        Err(ApiError::invalid("Identity", "must be 8 to 64 characters of letters, digits and dashes"))
    }
}

pub async fn create_entity(
    auth: AccountAuth,
    state: State,
    path: web::Path<ServiceScope>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let identity = p.required("Identity")?;
    identity_param(identity)?;
    let new = NewEntity { sid: EntitySid::generate(), service: &service, identity, now: state.clock.now() };
    let entity = match state.store.create_entity(&new, state.rate_limits == RateLimits::On).await? {
        EntityCreated::Created(entity) => entity,
        EntityCreated::Exists => return Err(ApiError::EntityExists),
        EntityCreated::RateLimited => return Err(ApiError::EntityRateLimit),
        EntityCreated::ServiceGone => return Err(Missing::Service(&service.sid).into()),
    };
    Ok(HttpResponse::Created().json(render(&state, &entity)))
}

pub async fn fetch_entity(auth: AccountAuth, state: State, path: web::Path<EntityScope>) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let entity = entity_of(&state, &service, &path.identity).await?;
    Ok(HttpResponse::Ok().json(render(&state, &entity)))
}

pub async fn delete_entity(auth: AccountAuth, state: State, path: web::Path<EntityScope>) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    if !state.store.delete_entity(service.id, &path.identity).await? {
        return Err(Missing::Entity { service: &service.sid, identity: &path.identity }.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_entity(
    auth: AccountAuth,
    state: State,
    path: web::Path<ServiceScope>,
    Query(q): Query,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_entities(service.id, &request.window).await?;
    let url = state.urls.service_child(&service.sid, "Entities");
    Ok(list_response("entities", &url, &[], &request, page, |e| e.id, |e| render(&state, e)))
}
