//! Authentication extractors. A handler names the caller it accepts in its signature, so it
//! cannot forget to check.
//!
//! [`AccountAuth`]: HTTP Basic with an Account SID + auth token, or an API key SID + secret
//! (docs/protocol/rest-api.md#authentication). [`Caller`]: that, or a device — `token:<factor JWT>`
//! signed with one of its factor keys, or `token:<access token>` while enrolling
//! (docs/protocol/device-protocol.md#request-headers, docs/protocol/device-protocol.md#factor-jwt).
//! Anything else — no header, another scheme, bad base64, an unknown SID or `kid`, a wrong secret,
//! a bad signature, a token outside the clock window — is 401 / 20003 with a JSON body (and, as on
//! every response, a `Date` header the SDKs re-sync their clocks from), with no hint of which part
//! was wrong.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::AppState;
use crate::crypto::access_token::AccessTokenClaims;
use crate::crypto::device_jwt::FactorJwt;
use crate::crypto::device_key::DeviceKey;
use crate::domain::status::FactorType;
use crate::error::ApiError;
use crate::store::factors::FactorRow;

/// A caller authenticated as an account (a customer backend).
#[derive(Debug, Clone)]
pub struct AccountAuth {
    pub account_sid: String,
}

/// Splits `Authorization: Basic …` into username and password (at the first `:`).
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    basic_from_value(authorization(req)?)
}

/// The `Authorization` header value of `req`, if it is text.
fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()
}

/// Splits a `Basic …` header value into username and password (at the first `:`).
fn basic_from_value(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl FromRequest for AccountAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<AccountAuth, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let credentials = basic_credentials(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some((user, password)), Some(state)) = (credentials, state) else {
                return Err(ApiError::Unauthenticated);
            };
            match state.accounts.authenticate(&user, &password).await? {
                Some(account_sid) => Ok(AccountAuth { account_sid }),
                None => Err(ApiError::Unauthenticated),
            }
        })
    }
}

/// Any caller of a route the mobile SDKs also use: a backend, a device signing with one of its
/// factors (`token:<factor JWT>`), or a device enrolling (`token:<access token>`).
#[derive(Debug)]
pub enum Caller {
    Account { account_sid: String },
    Device(Box<FactorRow>),
    Enrollment(AccessTokenClaims),
}

/// The Basic username the SDKs use for JWT and access-token authentication.
const DEVICE_USER: &str = "token";

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let value = authorization(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let Some(state) = state else { return Err(ApiError::Unauthenticated) };
            caller_from_authorization(&state, value.as_deref()).await
        })
    }
}

/// The [`Caller`] an `Authorization` header value names: the one step from header to caller,
/// shared by the extractor and by virtual devices (api/virtual_device.rs), which authenticate
/// their calls exactly as a device's request is.
pub async fn caller_from_authorization(state: &AppState, value: Option<&str>) -> Result<Caller, ApiError> {
    let Some((user, password)) = value.and_then(basic_from_value) else {
        return Err(ApiError::Unauthenticated);
    };
    if user == DEVICE_USER {
        return device_caller(state, &password).await;
    }
    match state.accounts.authenticate(&user, &password).await? {
        Some(account_sid) => Ok(Caller::Account { account_sid }),
        None => Err(ApiError::Unauthenticated),
    }
}

/// The `Authorization` header value a device sends: Basic `token:<token>` (a factor JWT or an
/// access token).
pub fn device_authorization(token: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{DEVICE_USER}:{token}")))
}

/// Authenticates a device: an access token (a 5-part JWE) or a factor JWT (a 3-part JWS whose
/// `kid` names the factor's credential SID, signed by the factor's key, within the clock window).
async fn device_caller(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let now = state.clock.now();
    if token.split('.').count() == 5 {
        let claims = state.token_key.open(token).map_err(|_| ApiError::Unauthenticated)?;
        if claims.exp <= now || claims.factor_type != FactorType::Push {
            return Err(ApiError::Unauthenticated);
        }
        return Ok(Caller::Enrollment(claims));
    }
    let jwt = FactorJwt::parse(token).map_err(|_| ApiError::Unauthenticated)?;
    let Some(factor) = state.store.factor_by_credential(&jwt.kid).await? else {
        return Err(ApiError::Unauthenticated);
    };
    let key = DeviceKey::from_spki_base64(&factor.binding_public_key).ok_or(ApiError::Unauthenticated)?;
    jwt.jws.verify(&key).map_err(|_| ApiError::Unauthenticated)?;
    if !crate::crypto::secrets_equal(jwt.claims.sub.as_bytes(), factor.account_sid.as_bytes()) {
        return Err(ApiError::Unauthenticated);
    }
    jwt.check_time(now, state.device_clock_skew).map_err(|_| ApiError::Unauthenticated)?;
    Ok(Caller::Device(Box::new(factor)))
}

impl Caller {
    /// The account whose resources under `service_sid`/`identity` this caller may reach.
    /// Devices and enrollment tokens reach only their own Service and identity.
    pub fn scope(&self, service_sid: &str, identity: &str) -> Result<&str, ApiError> {
        let (account, service, who) = match self {
            Caller::Account { account_sid } => return Ok(account_sid),
            Caller::Device(f) => (&f.account_sid, &f.service_sid, &f.identity),
            Caller::Enrollment(c) => (&c.account_sid, &c.service_sid, &c.identity),
        };
        if service == service_sid && who == identity {
            Ok(account)
        } else {
            Err(ApiError::Unauthenticated)
        }
    }

    /// Like [`Caller::scope`], but refuses enrollment tokens: they only create Factors.
    pub fn signed_scope(&self, service_sid: &str, identity: &str) -> Result<&str, ApiError> {
        match self {
            Caller::Enrollment(_) => Err(ApiError::Unauthenticated),
            _ => self.scope(service_sid, identity),
        }
    }

    /// The factor a device authenticated with.
    pub fn device_factor(&self) -> Option<&FactorRow> {
        match self {
            Caller::Device(f) => Some(f),
            _ => None,
        }
    }
}
