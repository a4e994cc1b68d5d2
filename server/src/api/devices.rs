//! `/_emulator/Devices`: virtual devices over HTTP (README, "Virtual devices"), account
//! credentials required. HTTP only: what a device does is api/virtual_device.rs.
//!
//! - `POST /_emulator/Devices` enrols one (`ServiceSid`, `Identity`, optional `AccessToken`,
//!   `Style`, `FriendlyName`, `PushToken`, `Verify`); `GET` lists them (`ServiceSid`,
//!   `Identity`; Twilio paging).
//! - `GET` / `DELETE /_emulator/Devices/{FactorSid}`: fetch; unenrol (the Factor's DELETE, signed).
//! - `GET /_emulator/Devices/{FactorSid}/Challenges`: the device's list (`Status`, `Order`).
//! - `POST /_emulator/Devices/{FactorSid}/Challenges/{ChallengeSid}` with
//!   `Status=approved|denied` answers it (`latest`: the newest pending one).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::AccountAuth;
use super::challenges::render as render_challenge;
use super::paging::{list_response, PageRequest};
use super::params::{Form, Query};
use super::virtual_device::{enroll, Enrolment, VirtualDevice};
use super::{param_sid, AppState, State};
use crate::domain::dates;
use crate::domain::rules::{FACTOR_FRIENDLY_NAME_MAX, NOTIFICATION_TOKEN_LEN};
use crate::domain::sid::ServiceSid;
use crate::domain::status::{ChallengeStatus, DeviceStyle, FactorStatus};
use crate::error::{ApiError, ApiResult};
use crate::store::devices::{DeviceFilter, DeviceRow};

/// The `FriendlyName` of a device enrolled without one.
pub const DEFAULT_FRIENDLY_NAME: &str = "Virtual device";

#[derive(Deserialize)]
pub struct DevicePath {
    #[serde(rename = "FactorSid")]
    factor_sid: String,
}

#[derive(Deserialize)]
pub struct DeviceChallengePath {
    #[serde(rename = "FactorSid")]
    factor_sid: String,
    #[serde(rename = "ChallengeSid")]
    challenge_sid: String,
}

#[derive(Serialize)]
struct DeviceBody {
    factor_sid: String,
    account_sid: String,
    service_sid: String,
    identity: String,
    style: DeviceStyle,
    status: FactorStatus,
    friendly_name: String,
    date_created: String,
    url: String,
}

fn render(state: &AppState, d: &DeviceRow) -> DeviceBody {
    DeviceBody {
        factor_sid: d.factor_sid.clone(),
        account_sid: d.account_sid.clone(),
        service_sid: d.service_sid.clone(),
        identity: d.identity.clone(),
        style: d.style,
        status: d.status,
        friendly_name: d.friendly_name.clone(),
        date_created: dates::format(d.date_created),
        url: state.urls.absolute(&format!("/_emulator/Devices/{}", d.factor_sid)),
    }
}

pub async fn create_device(auth: AccountAuth, state: State, Form(p): Form) -> ApiResult<HttpResponse> {
    let service_sid: ServiceSid = param_sid("ServiceSid", p.required("ServiceSid")?)?;
    let identity = p.required("Identity")?;
    let style = p.word::<DeviceStyle>("Style")?.unwrap_or(DeviceStyle::Android);
    let friendly_name = p.text("FriendlyName", FACTOR_FRIENDLY_NAME_MAX)?.unwrap_or(DEFAULT_FRIENDLY_NAME);
    let push_token = p.get("PushToken").filter(|t| !t.is_empty());
    if push_token.is_some_and(|t| !NOTIFICATION_TOKEN_LEN.contains(&t.chars().count())) {
        return Err(ApiError::invalid("PushToken", "must be between 32 and 255 characters long"));
    }
    let enrolment = Enrolment {
        service_sid: &service_sid,
        identity,
        access_token: p.get("AccessToken"),
        style,
        friendly_name,
        push_token,
        verify: p.bool("Verify")?.unwrap_or(true),
        factor_sid: None,
    };
    let device = enroll(&state, &auth.account_sid, &enrolment).await?;
    Ok(HttpResponse::Created().json(render(&state, &device.row)))
}

pub async fn list_devices(auth: AccountAuth, state: State, Query(q): Query) -> ApiResult<HttpResponse> {
    let mut filter = DeviceFilter::default();
    let mut echoed = Vec::new();
    for (name, slot) in [("ServiceSid", &mut filter.service_sid), ("Identity", &mut filter.identity)] {
        if let Some(value) = q.get(name) {
            *slot = Some(value.to_owned());
            echoed.push((name, value.to_owned()));
        }
    }
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_devices(&auth.account_sid, &filter, &request.window).await?;
    let url = state.urls.absolute("/_emulator/Devices");
    Ok(list_response("devices", &url, &echoed, &request, page, |d| d.id, |d| render(&state, d)))
}

pub async fn fetch_device(auth: AccountAuth, state: State, path: web::Path<DevicePath>) -> ApiResult<HttpResponse> {
    let device = VirtualDevice::load(&state, &auth.account_sid, &path.factor_sid).await?;
    Ok(HttpResponse::Ok().json(render(&state, &device.row)))
}

pub async fn delete_device(auth: AccountAuth, state: State, path: web::Path<DevicePath>) -> ApiResult<HttpResponse> {
    let device = VirtualDevice::load(&state, &auth.account_sid, &path.factor_sid).await?;
    device.unenroll(&state).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_device_challenges(
    auth: AccountAuth,
    state: State,
    path: web::Path<DevicePath>,
    Query(q): Query,
) -> ApiResult<HttpResponse> {
    let device = VirtualDevice::load(&state, &auth.account_sid, &path.factor_sid).await?;
    Ok(device.challenges(&state, &q).await?.response(&state))
}

pub async fn update_device_challenge(
    auth: AccountAuth,
    state: State,
    path: web::Path<DeviceChallengePath>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let device = VirtualDevice::load(&state, &auth.account_sid, &path.factor_sid).await?;
    let status = match p.required("Status")?.parse() {
        Ok(status @ (ChallengeStatus::Approved | ChallengeStatus::Denied)) => status,
        _ => return Err(ApiError::invalid("Status", "must be one of: approved, denied")),
    };
    let challenge = device.answer(&state, &path.challenge_sid, status).await?;
    Ok(HttpResponse::Ok().json(render_challenge(&state, &challenge, challenge.date_updated)))
}
