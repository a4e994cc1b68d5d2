//! `/v2/Services`: CreateService, ListService, FetchService, UpdateService, DeleteService.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{AccountAuth, Caller};
use super::paging::{list_response, PageRequest};
use super::params::{Form, Params, Query};
use super::{param_sid, service_of, Missing, State};
use crate::domain::dates;
use crate::domain::rules::{SERVICE_FRIENDLY_NAME_MAX, TOTP_CODE_LENGTH, TOTP_ISSUER_MAX, TOTP_SKEW, TOTP_TIME_STEP};
use crate::domain::sid::{CredentialSid, ServiceSid, WrongSid};
use crate::domain::status::CredentialType;
use crate::error::{ApiError, ApiResult};
use crate::store::services::{NewService, ServiceRow, ServiceSettings};

#[derive(Deserialize)]
pub struct ServicePath {
    #[serde(rename = "Sid")]
    sid: String,
}

/// The SMS/WhatsApp/Passkeys settings: stored and echoed, with no behaviour behind them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct OtherSettings {
    code_length: Option<i64>,
    lookup_enabled: Option<bool>,
    skip_sms_to_landlines: Option<bool>,
    dtmf_input_required: Option<bool>,
    tts_name: Option<String>,
    psd2_enabled: Option<bool>,
    do_not_share_warning_enabled: Option<bool>,
    custom_code_enabled: Option<bool>,
    default_template_sid: Option<String>,
    whatsapp_msg_service_sid: Option<String>,
    whatsapp_from: Option<String>,
    passkeys_relying_party_id: Option<String>,
    passkeys_relying_party_name: Option<String>,
    passkeys_relying_party_origins: Option<Vec<String>>,
    passkeys_authenticator_attachment: Option<String>,
    passkeys_discoverable_credentials: Option<bool>,
    passkeys_user_verification: Option<String>,
    verify_event_subscription_enabled: Option<bool>,
}

#[derive(Serialize)]
struct ServiceBody {
    sid: String,
    account_sid: String,
    friendly_name: String,
    code_length: i64,
    lookup_enabled: bool,
    psd2_enabled: bool,
    skip_sms_to_landlines: bool,
    dtmf_input_required: bool,
    tts_name: Option<String>,
    do_not_share_warning_enabled: bool,
    custom_code_enabled: bool,
    push: PushBody,
    totp: TotpBody,
    default_template_sid: Option<String>,
    whatsapp: WhatsappBody,
    passkeys: PasskeysBody,
    verify_event_subscription_enabled: bool,
    date_created: String,
    date_updated: String,
    url: String,
    links: ServiceLinks,
}

#[derive(Serialize)]
struct PushBody {
    include_date: bool,
    apn_credential_sid: Option<String>,
    fcm_credential_sid: Option<String>,
}

#[derive(Serialize)]
struct TotpBody {
    issuer: Option<String>,
    time_step: Option<i64>,
    code_length: Option<i64>,
    skew: Option<i64>,
}

#[derive(Serialize)]
struct WhatsappBody {
    msg_service_sid: Option<String>,
    from: Option<String>,
}

#[derive(Serialize)]
struct PasskeysBody {
    relying_party: RelyingPartyBody,
    authenticator_attachment: Option<String>,
    discoverable_credentials: Option<bool>,
    user_verification: Option<String>,
}

#[derive(Serialize)]
struct RelyingPartyBody {
    id: Option<String>,
    name: Option<String>,
    origins: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ServiceLinks {
    verification_checks: String,
    verifications: String,
    rate_limits: String,
    messaging_configurations: String,
    entities: String,
    webhooks: String,
    access_tokens: String,
}

fn render(state: &State, s: &ServiceRow) -> ServiceBody {
    let other: OtherSettings = serde_json::from_str(&s.settings.other).unwrap_or_default();
    let child = |name: &str| state.urls.service_child(&s.sid, name);
    ServiceBody {
        sid: s.sid.clone(),
        account_sid: s.account_sid.clone(),
        friendly_name: s.settings.friendly_name.clone(),
        code_length: other.code_length.unwrap_or(6),
        lookup_enabled: other.lookup_enabled.unwrap_or(false),
        psd2_enabled: other.psd2_enabled.unwrap_or(false),
        skip_sms_to_landlines: other.skip_sms_to_landlines.unwrap_or(false),
        dtmf_input_required: other.dtmf_input_required.unwrap_or(true),
        tts_name: other.tts_name,
        do_not_share_warning_enabled: other.do_not_share_warning_enabled.unwrap_or(false),
        custom_code_enabled: other.custom_code_enabled.unwrap_or(false),
        push: PushBody {
            include_date: s.settings.push_include_date,
            apn_credential_sid: s.settings.push_apn_credential_sid.clone(),
            fcm_credential_sid: s.settings.push_fcm_credential_sid.clone(),
        },
        totp: TotpBody {
            issuer: s.settings.totp_issuer.clone(),
            time_step: s.settings.totp_time_step,
            code_length: s.settings.totp_code_length,
            skew: s.settings.totp_skew,
        },
        default_template_sid: other.default_template_sid,
        whatsapp: WhatsappBody { msg_service_sid: other.whatsapp_msg_service_sid, from: other.whatsapp_from },
        passkeys: PasskeysBody {
            relying_party: RelyingPartyBody {
                id: other.passkeys_relying_party_id,
                name: other.passkeys_relying_party_name,
                origins: other.passkeys_relying_party_origins,
            },
            authenticator_attachment: other.passkeys_authenticator_attachment,
            discoverable_credentials: other.passkeys_discoverable_credentials,
            user_verification: other.passkeys_user_verification,
        },
        verify_event_subscription_enabled: other.verify_event_subscription_enabled.unwrap_or(false),
        date_created: dates::format(s.date_created),
        date_updated: dates::format(s.date_updated),
        url: state.urls.service(&s.sid),
        links: ServiceLinks {
            verification_checks: child("VerificationCheck"),
            verifications: child("Verifications"),
            rate_limits: child("RateLimits"),
            messaging_configurations: child("MessagingConfigurations"),
            entities: child("Entities"),
            webhooks: child("Webhooks"),
            access_tokens: child("AccessTokens"),
        },
    }
}

/// An optional SID parameter of the kind `S`.
fn sid_param<S>(p: &Params, name: &'static str) -> ApiResult<Option<String>>
where
    S: std::str::FromStr<Err = WrongSid> + Into<String>,
{
    p.get(name).map(|v| param_sid::<S>(name, v).map(Into::into)).transpose()
}

/// Applies every settable parameter present in `p` to `s` (create and update share this).
fn apply(s: &mut ServiceSettings, p: &Params) -> ApiResult<()> {
    if let Some(name) = p.text("FriendlyName", SERVICE_FRIENDLY_NAME_MAX)? {
        if name.trim().is_empty() {
            return Err(ApiError::invalid("FriendlyName", "must not be empty"));
        }
        s.friendly_name = name.to_owned();
    }
    if let Some(v) = p.bool("Push.IncludeDate")? {
        s.push_include_date = v;
    }
    if let Some(v) = sid_param::<CredentialSid>(p, "Push.ApnCredentialSid")? {
        s.push_apn_credential_sid = Some(v);
    }
    if let Some(v) = sid_param::<CredentialSid>(p, "Push.FcmCredentialSid")? {
        s.push_fcm_credential_sid = Some(v);
    }
    if let Some(v) = p.text("Totp.Issuer", TOTP_ISSUER_MAX)? {
        s.totp_issuer = Some(v.to_owned());
    }
    if let Some(v) = p.int_in("Totp.TimeStep", TOTP_TIME_STEP)? {
        s.totp_time_step = Some(v);
    }
    if let Some(v) = p.int_in("Totp.CodeLength", TOTP_CODE_LENGTH)? {
        s.totp_code_length = Some(v);
    }
    if let Some(v) = p.int_in("Totp.Skew", TOTP_SKEW)? {
        s.totp_skew = Some(v);
    }

    let mut o: OtherSettings = serde_json::from_str(&s.other).unwrap_or_default();
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(v) = $value {
                o.$field = Some(v.into());
            }
        };
    }
    set!(code_length, p.int_in("CodeLength", 4..=10)?);
    set!(lookup_enabled, p.bool("LookupEnabled")?);
    set!(skip_sms_to_landlines, p.bool("SkipSmsToLandlines")?);
    set!(dtmf_input_required, p.bool("DtmfInputRequired")?);
    set!(tts_name, p.text("TtsName", 255)?);
    set!(psd2_enabled, p.bool("Psd2Enabled")?);
    set!(do_not_share_warning_enabled, p.bool("DoNotShareWarningEnabled")?);
    set!(custom_code_enabled, p.bool("CustomCodeEnabled")?);
    if let Some(v) = p.get("DefaultTemplateSid") {
        let valid = v.len() == 34 && v.starts_with("HJ") && v.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
        if !valid {
            return Err(ApiError::invalid("DefaultTemplateSid", "must be an HJ… SID"));
        }
        o.default_template_sid = Some(v.to_owned());
    }
    set!(whatsapp_msg_service_sid, p.text("Whatsapp.MsgServiceSid", 34)?);
    set!(whatsapp_from, p.text("Whatsapp.From", 64)?);
    set!(passkeys_relying_party_id, p.text("Passkeys.RelyingParty.Id", 255)?);
    set!(passkeys_relying_party_name, p.text("Passkeys.RelyingParty.Name", 255)?);
    let origins: Vec<String> = p
        .all("Passkeys.RelyingParty.Origins")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if !origins.is_empty() {
        o.passkeys_relying_party_origins = Some(origins);
    }
    set!(
        passkeys_authenticator_attachment,
        p.one_of("Passkeys.AuthenticatorAttachment", &["platform", "cross-platform", "any"])?
    );
    set!(passkeys_discoverable_credentials, p.bool("Passkeys.DiscoverableCredentials")?);
    set!(passkeys_user_verification, p.one_of("Passkeys.UserVerification", &["required", "preferred", "discouraged"])?);
    set!(verify_event_subscription_enabled, p.bool("VerifyEventSubscriptionEnabled")?);
    s.other = serde_json::to_string(&o).map_err(anyhow::Error::from)?;
    Ok(())
}

/// Credential SIDs given in `p` must name this account's credentials of the right type.
async fn check_credentials(state: &State, account_sid: &str, service: &ServiceSettings, p: &Params) -> ApiResult<()> {
    let pairs = [
        ("Push.ApnCredentialSid", CredentialType::Apn, &service.push_apn_credential_sid),
        ("Push.FcmCredentialSid", CredentialType::Fcm, &service.push_fcm_credential_sid),
    ];
    for (name, kind, sid) in pairs {
        let Some(sid) = sid.as_deref().filter(|_| p.has(name)) else { continue };
        match state.store.credential(account_sid, sid).await? {
            Some(c) if c.r#type == kind => {}
            Some(_) => return Err(ApiError::invalid(name, format!("{sid} is not an {kind} credential"))),
            None => return Err(ApiError::invalid(name, format!("no credential {sid} in this account"))),
        }
    }
    Ok(())
}

pub async fn create_service(auth: AccountAuth, state: State, Form(p): Form) -> ApiResult<HttpResponse> {
    let mut settings = ServiceSettings::named(p.required("FriendlyName")?);
    apply(&mut settings, &p)?;
    check_credentials(&state, &auth.account_sid, &settings, &p).await?;
    let new =
        NewService { sid: ServiceSid::generate(), account_sid: &auth.account_sid, settings, now: state.clock.now() };
    let service = state.store.create_service(new).await?;
    Ok(HttpResponse::Created().json(render(&state, &service)))
}

pub async fn fetch_service(caller: Caller, state: State, path: web::Path<ServicePath>) -> ApiResult<HttpResponse> {
    let account_sid = match &caller {
        Caller::Account { account_sid } => account_sid,
        Caller::Device(factor) if factor.service_sid == path.sid => &factor.account_sid,
        _ => return Err(ApiError::Unauthenticated),
    };
    let service = service_of(&state, account_sid, &path.sid).await?;
    Ok(HttpResponse::Ok().json(render(&state, &service)))
}

pub async fn update_service(
    auth: AccountAuth,
    state: State,
    path: web::Path<ServicePath>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    // Applied to the row as read and written only if it is still so (a lost race rereads and
    // reapplies), so that concurrent updates all land.
    loop {
        let current = service_of(&state, &auth.account_sid, &path.sid).await?;
        let mut settings = current.settings.clone();
        apply(&mut settings, &p)?;
        check_credentials(&state, &auth.account_sid, &settings, &p).await?;
        if let Some(service) = state.store.update_service(&current, settings, now).await? {
            return Ok(HttpResponse::Ok().json(render(&state, &service)));
        }
    }
}

pub async fn delete_service(auth: AccountAuth, state: State, path: web::Path<ServicePath>) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.sid).await?;
    if !state.store.delete_service(&auth.account_sid, &service.sid).await? {
        return Err(Missing::Service(&service.sid).into());
    }
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_service(auth: AccountAuth, state: State, Query(q): Query) -> ApiResult<HttpResponse> {
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_services(&auth.account_sid, &request.window).await?;
    Ok(list_response("services", &state.urls.services(), &[], &request, page, |s| s.id, |s| render(&state, s)))
}
