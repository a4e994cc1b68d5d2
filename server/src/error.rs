//! The one error type of the HTTP API and its Twilio envelope.
//!
//! Every failure a client can see is an [`ApiError`]; its single `ResponseError` impl writes
//! Twilio's legacy envelope `{code, message, more_info, status}` and nothing else. The helper
//! libraries switch to their RFC 9457 exception class when a body carries `type` and `title`,
//! so those keys must never appear (docs/protocol/rest-api.md#errors).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 / 20003: missing, malformed or wrong credentials.
    #[error("Authenticate")]
    Unauthenticated,
    /// 404 / 20404: the path names nothing this account can see.
    #[error("The requested resource {0} was not found")]
    NotFound(String),
    /// 405 / 20004: the path exists but not with this method.
    #[error("Method not allowed: {0}")]
    MethodNotAllowed(String),
    /// 413 / 60306: the request body is larger than the limit.
    #[error("Invalid Request: the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415 / 60306: a body that is not `application/x-www-form-urlencoded`.
    #[error("Invalid Request: request bodies must be application/x-www-form-urlencoded, not {0}")]
    UnsupportedMediaType(String),
    /// 400 / 60200: a required parameter is absent.
    #[error("Missing required parameter {0} in the post body")]
    MissingParameter(&'static str),
    /// 400 / 60200: a parameter is present but invalid; the message names it.
    #[error("Invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// 400 / 60200: a parameter (form, query or path segment) holds U+0000, which PostgreSQL
    /// cannot store in text; refused on both backends alike. Names the parameter.
    #[error("Invalid parameter `{0}`: must not contain a NUL character (U+0000)")]
    NulCharacter(String),
    /// 400 / 60200: the request could not be decoded at all (bad percent-encoding, non-UTF-8).
    #[error("Invalid request body: {0}")]
    MalformedBody(String),
    /// 409 / 60301: an Entity with this identity already exists in the Service.
    #[error("Entity already exists")]
    EntityExists,
    /// 400 / 60305: AccessToken parameters are missing or out of range.
    #[error("Access Token parameters are invalid: {0}")]
    AccessTokenParameters(String),
    /// 400 / 60306: invalid Webhooks parameters (event types, URL).
    #[error("Invalid Webhooks parameters: {0}")]
    WebhookParameters(String),
    /// 403 / 60311: the AuthPayload does not verify the Factor.
    #[error("Factor verification failed")]
    FactorVerificationFailed,
    /// 400 / 60314: `Binding.*` is not an ES256 P-256 public key.
    #[error("Factors binding format is invalid: {0}")]
    BindingInvalid(String),
    /// 400 / 60315: the Entity already has the maximum number of Factors of this type.
    #[error("Reached max limit of {0} push Factors associated per Entity")]
    FactorLimit(u32),
    /// 409 / 60317: a Factor with the same binding already exists on the Entity.
    #[error("Factor already exists")]
    FactorExists,
    /// 403 / 60318: Challenges need a verified Factor.
    #[error("Factor is unverified")]
    FactorUnverified,
    /// 403 / 60322: the Challenge was already approved or denied.
    #[error("Challenge already responded")]
    ChallengeResponded,
    /// 403 / 60323: the Challenge is past its expiration date.
    #[error("Challenge expired")]
    ChallengeExpired,
    /// 403 / 60324: the AuthPayload's signature or fields do not match the Challenge.
    #[error("Challenge verification failed")]
    ChallengeVerificationFailed,
    /// 400 / 60307: the Factor's notification platform is `none`.
    #[error("Cannot resend push notifications to 'none' notification platform")]
    NotificationPlatformNone,
    /// 429 / 60309: the Challenge already has the most Notifications allowed.
    #[error("Push notifications limit reached for a Challenge: at most {0}")]
    NotificationLimit(i64),
    /// 429 / 60326: more than 100 Factor creations for one Entity in a day.
    #[error("Too many requests to create factors for the entity")]
    FactorRateLimit,
    /// 429 / 60328: more than 40 Entity creations (Factor creations included) per account per second.
    #[error("Entities rate limit exceeded")]
    EntityRateLimit,
    /// 400 / 60373: `PageSize` out of 1..=1000 or not a number.
    #[error("Invalid page size: PageSize must be an integer between 1 and 1000")]
    InvalidPageSize,
    /// 400 / 60374: a `PageToken` this server did not issue for this list.
    #[error("Invalid page token")]
    InvalidPageToken,
    /// 500 / 20500: anything unexpected; the cause is logged, never sent.
    #[error("An internal server error has occurred")]
    Internal(#[source] anyhow::Error),
    /// 503 / 20503: the database cannot be reached or cannot take writes (refused connections,
    /// a server starting up or shutting down, a full disk).
    #[error("Service unavailable: the database cannot be reached")]
    Unavailable(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        ApiError::InvalidParameter { name, reason: reason.into() }
    }

    /// The Twilio error code of this error.
    pub fn code(&self) -> u32 {
        match self {
            ApiError::Unauthenticated => 20003,
            ApiError::NotFound(_) => 20404,
            ApiError::MethodNotAllowed(_) => 20004,
            ApiError::PayloadTooLarge(_) | ApiError::UnsupportedMediaType(_) => 60306,
            ApiError::MissingParameter(_)
            | ApiError::InvalidParameter { .. }
            | ApiError::NulCharacter(_)
            | ApiError::MalformedBody(_) => 60200,
            ApiError::EntityExists => 60301,
            ApiError::AccessTokenParameters(_) => 60305,
            ApiError::WebhookParameters(_) => 60306,
            ApiError::FactorVerificationFailed => 60311,
            ApiError::BindingInvalid(_) => 60314,
            ApiError::FactorLimit(_) => 60315,
            ApiError::FactorExists => 60317,
            ApiError::FactorUnverified => 60318,
            ApiError::ChallengeResponded => 60322,
            ApiError::ChallengeExpired => 60323,
            ApiError::ChallengeVerificationFailed => 60324,
            ApiError::NotificationPlatformNone => 60307,
            ApiError::NotificationLimit(_) => 60309,
            ApiError::FactorRateLimit => 60326,
            ApiError::EntityRateLimit => 60328,
            ApiError::InvalidPageSize => 60373,
            ApiError::InvalidPageToken => 60374,
            ApiError::Internal(_) => 20500,
            ApiError::Unavailable(_) => 20503,
        }
    }
}

/// Twilio's error envelope, exactly these four keys.
#[derive(Serialize)]
pub struct ErrorBody {
    pub code: u32,
    pub message: String,
    pub more_info: String,
    pub status: u16,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::EntityExists | ApiError::FactorExists => StatusCode::CONFLICT,
            ApiError::FactorVerificationFailed
            | ApiError::FactorUnverified
            | ApiError::ChallengeResponded
            | ApiError::ChallengeExpired
            | ApiError::ChallengeVerificationFailed => StatusCode::FORBIDDEN,
            ApiError::NotificationLimit(_) | ApiError::FactorRateLimit | ApiError::EntityRateLimit => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            _ => {}
        }
        let status = self.status_code();
        let code = self.code();
        let body = ErrorBody {
            code,
            message: self.to_string(),
            more_info: format!("https://www.twilio.com/docs/errors/{code}"),
            status: status.as_u16(),
        };
        let mut response = HttpResponse::build(status);
        if matches!(self, ApiError::Unauthenticated) {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"Twilio API\""));
        }
        response.json(body)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        // A refused or dropped connection, a server starting up or shutting down, a full disk:
        // the database is unavailable, not broken (`store::health` lists the codes).
        match crate::store::health::unavailable_reason(&err) {
            Some(_) => ApiError::Unavailable(err.into()),
            None => ApiError::Internal(err.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Internal(err)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
