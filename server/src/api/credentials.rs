//! `/v1/Credentials` (Notify's Credential resource, which Verify Services reference as
//! `Push.ApnCredentialSid` / `Push.FcmCredentialSid`): CreateCredential, ListCredential,
//! FetchCredential, UpdateCredential, DeleteCredential.
//!
//! `Type=apn` takes `Certificate` + `PrivateKey` (PEM) and `Sandbox`, or — this emulator's
//! extension for token auth — `PrivateKey` (a `.p8`) + `KeyId` + `TeamId`. `Type=fcm` takes
//! `Secret` = a service-account JSON (FCM HTTP v1; legacy GCM keys are refused). Secrets are
//! validated, encrypted at rest, and never returned.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::AccountAuth;
use super::paging::{list_response, PageRequest};
use super::params::{Form, Params, Query};
use super::{path_sid, AppState, Missing, State};
use crate::domain::dates;
use crate::domain::rules::CREDENTIAL_FRIENDLY_NAME_MAX;
use crate::domain::sid::CredentialSid;
use crate::domain::status::CredentialType;
use crate::error::{ApiError, ApiResult};
use crate::push::secrets::Secret;
use crate::store::credentials::{CredentialRow, NewCredential};

#[derive(Deserialize)]
pub struct CredentialPath {
    #[serde(rename = "Sid")]
    sid: String,
}

#[derive(Serialize)]
struct CredentialBody {
    sid: String,
    account_sid: String,
    friendly_name: Option<String>,
    r#type: CredentialType,
    /// A string in Notify's schema ("True"/"False").
    sandbox: String,
    date_created: String,
    date_updated: String,
    url: String,
}

fn render(state: &AppState, c: &CredentialRow) -> CredentialBody {
    CredentialBody {
        sid: c.sid.clone(),
        account_sid: c.account_sid.clone(),
        friendly_name: c.friendly_name.clone(),
        r#type: c.r#type,
        sandbox: if c.sandbox { "True" } else { "False" }.to_owned(),
        date_created: dates::format(c.date_created),
        date_updated: dates::format(c.date_updated),
        url: state.urls.absolute(&format!("/v1/Credentials/{}", c.sid)),
    }
}

/// The secret of a credential of `kind` from `p`, merged over `previous` on update.
fn secret_from(kind: CredentialType, p: &Params, previous: Option<Secret>) -> ApiResult<Secret> {
    match kind {
        CredentialType::Apn => {
            let (mut certificate, mut private_key, mut key_id, mut team_id) = (None, None, None, None);
            match previous {
                Some(Secret::ApnCertificate { certificate: c, private_key: k }) => {
                    certificate = Some(c);
                    private_key = Some(k);
                }
                Some(Secret::ApnToken { private_key: k, key_id: i, team_id: t }) => {
                    private_key = Some(k);
                    key_id = Some(i);
                    team_id = Some(t);
                }
                _ => {}
            }
            let pick = |name: &str, old: Option<String>| p.get(name).map(str::to_owned).or(old);
            let certificate = pick("Certificate", certificate);
            let private_key = pick("PrivateKey", private_key);
            let key_id = pick("KeyId", key_id);
            let team_id = pick("TeamId", team_id);
            Secret::apn(certificate.as_deref(), private_key.as_deref(), key_id.as_deref(), team_id.as_deref())
        }
        CredentialType::Fcm => match (p.get("Secret"), previous) {
            (None, Some(previous)) => Ok(previous),
            (secret, _) => Secret::fcm(secret),
        },
    }
}

fn seal(state: &AppState, secret: &Secret) -> ApiResult<String> {
    let plain = serde_json::to_vec(secret).map_err(anyhow::Error::from)?;
    Ok(state.secrets.seal(&plain))
}

pub async fn create_credential(auth: AccountAuth, state: State, Form(p): Form) -> ApiResult<HttpResponse> {
    let kind = match p.required("Type")? {
        "gcm" => {
            return Err(ApiError::invalid(
                "Type",
                "gcm (the legacy FCM API) is shut down; use fcm with a service account",
            ))
        }
        other => other.parse::<CredentialType>().map_err(|_| ApiError::invalid("Type", "must be one of: apn, fcm"))?,
    };
    let secret = secret_from(kind, &p, None)?;
    let new = NewCredential {
        sid: CredentialSid::generate(),
        account_sid: &auth.account_sid,
        friendly_name: p.text("FriendlyName", CREDENTIAL_FRIENDLY_NAME_MAX)?,
        r#type: kind,
        sandbox: p.bool("Sandbox")?.unwrap_or(false),
        secret: seal(&state, &secret)?,
        now: state.clock.now(),
    };
    let row = state.store.create_credential(new).await?;
    Ok(HttpResponse::Created().json(render(&state, &row)))
}

async fn credential_of(state: &AppState, account_sid: &str, sid: &str) -> ApiResult<CredentialRow> {
    let parsed: CredentialSid = path_sid(sid, Missing::Credential(sid))?;
    state.store.credential(account_sid, &parsed).await?.ok_or_else(|| Missing::Credential(sid).into())
}

pub async fn fetch_credential(
    auth: AccountAuth,
    state: State,
    path: web::Path<CredentialPath>,
) -> ApiResult<HttpResponse> {
    let row = credential_of(&state, &auth.account_sid, &path.sid).await?;
    Ok(HttpResponse::Ok().json(render(&state, &row)))
}

pub async fn update_credential(
    auth: AccountAuth,
    state: State,
    path: web::Path<CredentialPath>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let mut row = credential_of(&state, &auth.account_sid, &path.sid).await?;
    if p.has("Type") {
        return Err(ApiError::invalid("Type", "cannot be changed"));
    }
    let touches_secret = ["Certificate", "PrivateKey", "KeyId", "TeamId", "Secret"].iter().any(|f| p.has(f));
    if touches_secret {
        let previous = state.secrets.open(&row.secret).and_then(|plain| serde_json::from_slice(&plain).ok());
        row.secret = seal(&state, &secret_from(row.r#type, &p, previous)?)?;
    }
    if let Some(name) = p.text("FriendlyName", CREDENTIAL_FRIENDLY_NAME_MAX)? {
        row.friendly_name = Some(name.to_owned());
    }
    if let Some(sandbox) = p.bool("Sandbox")? {
        row.sandbox = sandbox;
    }
    row.date_updated = state.clock.now();
    state.store.update_credential(&row).await?;
    Ok(HttpResponse::Ok().json(render(&state, &row)))
}

pub async fn delete_credential(
    auth: AccountAuth,
    state: State,
    path: web::Path<CredentialPath>,
) -> ApiResult<HttpResponse> {
    let row = credential_of(&state, &auth.account_sid, &path.sid).await?;
    state.store.delete_credential(&auth.account_sid, &row.sid).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_credential(auth: AccountAuth, state: State, Query(q): Query) -> ApiResult<HttpResponse> {
    let request = PageRequest::from_query(&q, false)?;
    let page = state.store.list_credentials(&auth.account_sid, &request.window).await?;
    let url = state.urls.absolute("/v1/Credentials");
    Ok(list_response("credentials", &url, &[], &request, page, |c| c.id, |c| render(&state, c)))
}
