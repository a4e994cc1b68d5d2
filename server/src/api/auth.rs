//! Authentication extractors. A handler names the caller it accepts in its signature, so it
//! cannot forget to check.
//!
//! [`AccountAuth`]: HTTP Basic with an Account SID + auth token, or an API key SID + secret
//! (REST-API.md §2.2). Anything else — no header, another scheme, bad base64, an unknown SID, a
//! wrong secret — is 401 / 20003, with no hint of which part was wrong.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::AppState;
use crate::error::ApiError;

/// A caller authenticated as an account (a customer backend).
#[derive(Debug, Clone)]
pub struct AccountAuth {
    pub account_sid: String,
}

/// Splits `Authorization: Basic …` into username and password (at the first `:`).
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
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
