//! HTTP only: one file per Twilio resource (and `emulator.rs`, `health.rs`, `devices.rs` for the
//! routes of this server's own; `virtual_device.rs`, what a virtual device sends through the
//! handlers' cores), the auth extractors, form decoding, paging and URLs.
//!
//! The route table below is the single place routes are declared: it registers the handlers
//! and is exported as [`ROUTES`], which a test compares with `openapi.yaml`.

pub mod access_tokens;
pub mod auth;
pub mod challenges;
pub mod controls;
pub mod credentials;
pub mod devices;
pub mod emulator;
pub mod entities;
pub mod events;
pub mod factors;
pub mod forms;
pub mod health;
pub mod missing;
pub mod notifications;
pub mod paging;
pub mod params;
#[cfg(test)]
mod params_props;
pub mod services;
pub mod urls;
pub mod virtual_device;
pub mod webhooks;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};

use crate::accounts::Accounts;
use crate::clock::SharedClock;
use crate::crypto::access_token::TokenKey;
use crate::domain::sid::ServiceSid;
use crate::error::{ApiError, ApiResult};
use crate::store::entities::EntityRow;
use crate::store::services::ServiceRow;
use crate::store::Store;
pub use missing::{param_sid, path_sid, Missing};
pub use urls::Urls;

/// Everything a handler may need.
pub struct AppState {
    pub store: Store,
    pub clock: SharedClock,
    pub accounts: Accounts,
    pub token_key: TokenKey,
    pub urls: Urls,
    /// Seconds of clock difference tolerated in device JWTs.
    pub device_clock_skew: i64,
    /// Whether Twilio's rate limits (60326, 60328) are enforced.
    pub rate_limits: crate::config::RateLimits,
    /// Encrypts push credentials at rest.
    pub secrets: std::sync::Arc<crate::crypto::secretbox::SecretBox>,
    pub push: crate::push::PushSettings,
    /// Wakes the push worker when a push is enqueued.
    pub push_wake: std::sync::Arc<tokio::sync::Notify>,
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Wakes the webhook worker when an event is recorded.
    pub webhook_wake: std::sync::Arc<tokio::sync::Notify>,
    /// The clock the test controls move (README, "Test controls"); `None` with
    /// `--emulator-controls off`. Ask [`AppState::controls_on`].
    pub emulated_clock: Option<std::sync::Arc<crate::clock::EmulatedClock>>,
    /// Set when a graceful shutdown begins: `/healthz` then answers 503 `draining`, so load
    /// balancers stop sending new requests while the open ones are answered.
    pub draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Woken (`notify_waiters`) when `draining` is set: open event streams end then.
    pub drain_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Puts back what the seed file gives an account after `/_emulator/Reset` (README.md,
    /// "Reset"); none without a seed file.
    pub reseed: Option<std::sync::Arc<dyn Reseed>>,
}

/// Start-up seeding again, for one account: the seed file's Services, webhooks, credentials and
/// virtual devices of `account_sid`, as a start would put them. Implemented by `startup` (which
/// owns the seed file), called by `/_emulator/Reset`.
pub trait Reseed: Send + Sync {
    fn reseed<'a>(
        &'a self,
        state: &'a AppState,
        account_sid: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;
}

impl AppState {
    /// Resolves once a graceful shutdown has begun.
    pub async fn draining_begun(&self) {
        loop {
            // Created before the check: a wake between the check and the wait is not lost.
            let woken = self.drain_wake.notified();
            if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            woken.await;
        }
    }

    /// Whether the test controls are served (`--emulator-controls`): without them their routes
    /// ([`CONTROL_ROUTES`]) answer 404 as unknown paths do.
    pub fn controls_on(&self) -> bool {
        self.emulated_clock.is_some()
    }
}

pub type State = web::Data<AppState>;

/// The routes of the test controls, served only while [`AppState::controls_on`].
pub const CONTROL_ROUTES: &[&str] = &[
    "/_emulator/Clock",
    "/_emulator/Challenges/{ChallengeSid}",
    "/_emulator/Reset",
    "/_emulator/Devices",
    "/_emulator/Devices/{FactorSid}",
    "/_emulator/Devices/{FactorSid}/Challenges",
    "/_emulator/Devices/{FactorSid}/Challenges/{ChallengeSid}",
];

/// Declares the routes once: `configure` registers them, `ROUTES` lists them.
macro_rules! routes {
    ($( $path:literal => { $( $method:ident => $handler:path ),+ $(,)? } ),+ $(,)?) => {
        /// Every (method, path) this server serves, in OpenAPI path syntax.
        pub const ROUTES: &[(&str, &str)] = &[ $( $( (stringify!($method), $path) ),+ ),+ ];

        /// Registers every route, with 405 for a known path under another method.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        $( .route(web::method(Method::$method).to($handler)) )+
                        .default_service(web::to(method_not_allowed))
                        .wrap(actix_web::middleware::from_fn(refuse_nul_in_path))
                        .wrap(actix_web::middleware::Condition::new(
                            CONTROL_ROUTES.contains(&$path),
                            actix_web::middleware::from_fn(controls_only),
                        )),
                );
            )+
        }
    };
}

routes! {
    "/healthz" => { GET => health::fetch_health },
    "/v2/Services" => { POST => services::create_service, GET => services::list_service },
    "/v2/Services/{Sid}" => {
        GET => services::fetch_service,
        POST => services::update_service,
        DELETE => services::delete_service,
    },
    "/v2/Services/{ServiceSid}/Entities" => {
        POST => entities::create_entity,
        GET => entities::list_entity,
    },
    "/v2/Services/{ServiceSid}/Entities/{Identity}" => {
        GET => entities::fetch_entity,
        DELETE => entities::delete_entity,
    },
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Factors" => {
        POST => factors::create_new_factor,
        GET => factors::list_factor,
    },
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Factors/{Sid}" => {
        GET => factors::fetch_factor,
        POST => factors::update_factor,
        DELETE => factors::delete_factor,
    },
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges" => {
        POST => challenges::create_challenge,
        GET => challenges::list_challenge,
    },
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges/{Sid}" => {
        GET => challenges::fetch_challenge,
        POST => challenges::update_challenge,
    },
    "/v2/Services/{ServiceSid}/AccessTokens" => { POST => access_tokens::create_access_token },
    "/v2/Services/{ServiceSid}/AccessTokens/{Sid}" => { GET => access_tokens::fetch_access_token },
    "/v2/Services/{ServiceSid}/Webhooks" => {
        POST => webhooks::create_webhook,
        GET => webhooks::list_webhook,
    },
    "/v2/Services/{ServiceSid}/Webhooks/{Sid}" => {
        GET => webhooks::fetch_webhook,
        POST => webhooks::update_webhook,
        DELETE => webhooks::delete_webhook,
    },
    "/v2/Services/{ServiceSid}/Entities/{Identity}/Challenges/{ChallengeSid}/Notifications" => {
        POST => notifications::create_notification,
    },
    "/v2/Forms/{FormType}" => { GET => forms::fetch_form },
    "/v1/Credentials" => { POST => credentials::create_credential, GET => credentials::list_credential },
    "/v1/Credentials/{Sid}" => {
        GET => credentials::fetch_credential,
        POST => credentials::update_credential,
        DELETE => credentials::delete_credential,
    },
    "/_emulator/pushes" => { GET => emulator::list_pushes, DELETE => emulator::delete_pushes },
    "/_emulator/webhook-deliveries" => {
        GET => emulator::list_webhook_deliveries,
        DELETE => emulator::delete_webhook_deliveries,
    },
    "/_emulator/Clock" => { GET => controls::fetch_clock, POST => controls::update_clock },
    "/_emulator/Challenges/{ChallengeSid}" => { POST => controls::update_challenge },
    "/_emulator/Reset" => { POST => controls::create_reset },
    // Emulator controls: virtual devices (one group, so that one switch can remove them).
    "/_emulator/Devices" => { POST => devices::create_device, GET => devices::list_devices },
    "/_emulator/Devices/{FactorSid}" => { GET => devices::fetch_device, DELETE => devices::delete_device },
    "/_emulator/Devices/{FactorSid}/Challenges" => { GET => devices::list_device_challenges },
    "/_emulator/Devices/{FactorSid}/Challenges/{ChallengeSid}" => { POST => devices::update_device_challenge },
    "/_emulator/Events" => { GET => events::stream_events },
}

/// Refuses a path segment that holds U+0000 (`%00`) with 400 naming its parameter: PostgreSQL
/// cannot store it, so both backends refuse it, as [`params`] does for bodies and query strings.
/// One check on every route's matched `{Name}` segments, before any extractor runs.
async fn refuse_nul_in_path(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some((name, _)) = req.match_info().iter().find(|(_, value)| value.contains('\0')) {
        let error = ApiError::NulCharacter(name.to_owned());
        return Ok(req.error_response(error).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

/// Answers a test control's route as an unknown path (any method) while the controls are off.
async fn controls_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !req.app_data::<State>().is_some_and(|state| state.controls_on()) {
        let error = ApiError::NotFound(req.path().to_owned());
        return Ok(req.error_response(error).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

async fn method_not_allowed(req: HttpRequest) -> ApiResult<actix_web::HttpResponse> {
    Err(ApiError::MethodNotAllowed(format!("{} {}", req.method(), req.path())))
}

/// The answer for any path no route matches.
pub async fn not_found(req: HttpRequest) -> ApiResult<actix_web::HttpResponse> {
    Err(ApiError::NotFound(req.path().to_owned()))
}

/// The Service `sid` of `account_sid`, or 404 (also for a malformed SID).
pub async fn service_of(state: &AppState, account_sid: &str, sid: &str) -> ApiResult<ServiceRow> {
    let service_sid: ServiceSid = path_sid(sid, Missing::Service(sid))?;
    state.store.service(account_sid, &service_sid).await?.ok_or_else(|| Missing::Service(sid).into())
}

/// The Entity `identity` of `service`, or 404.
pub async fn entity_of(state: &AppState, service: &ServiceRow, identity: &str) -> ApiResult<EntityRow> {
    state
        .store
        .entity(service.id, identity)
        .await?
        .ok_or_else(|| Missing::Entity { service: &service.sid, identity }.into())
}

/// Parses an optional stored JSON text into a value (`null` when absent or unreadable).
pub fn json_or_null(text: Option<&str>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(serde_json::Value::Null)
}
