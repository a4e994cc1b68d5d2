//! `POST …/Challenges/{ChallengeSid}/Notifications` (CreateNotification): re-send the push of a
//! pending Challenge. `Ttl` 0–300 (default 300; 0 = one attempt, now). At most three per
//! Challenge (429 / 60309; the push sent at creation does not count); a Factor on platform
//! `none` cannot be notified (60307).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::AccountAuth;
use super::params::Form;
use super::{path_sid, service_of, Missing, State};
use crate::domain::dates;
use crate::domain::sid::ChallengeSid;
use crate::domain::status::{ChallengeStatus, PushStatus};
use crate::error::{ApiError, ApiResult};
use crate::push::{challenge_push, Resend};
use crate::store::notifications::{NewNotification, NotificationCreated};

/// Notifications one Challenge may have.
pub const MAX_NOTIFICATIONS: i64 = 3;

#[derive(Deserialize)]
pub struct NotificationPath {
    #[serde(rename = "ServiceSid")]
    service_sid: String,
    #[serde(rename = "Identity")]
    identity: String,
    #[serde(rename = "ChallengeSid")]
    challenge_sid: String,
}

#[derive(Serialize)]
struct NotificationBody {
    sid: String,
    account_sid: String,
    service_sid: String,
    entity_sid: String,
    identity: String,
    challenge_sid: String,
    priority: String,
    ttl: i64,
    date_created: String,
}

pub async fn create_notification(
    auth: AccountAuth,
    state: State,
    path: web::Path<NotificationPath>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let service = service_of(&state, &auth.account_sid, &path.service_sid).await?;
    let missing = Missing::Challenge { service: &path.service_sid, identity: &path.identity, sid: &path.challenge_sid };
    let not_found = || ApiError::from(missing);
    let challenge_sid: ChallengeSid = path_sid(&path.challenge_sid, missing)?;
    let ttl = p.int_in("Ttl", 0..=300)?.unwrap_or(300);
    let challenge = state
        .store
        .challenge(&auth.account_sid, &service.sid, &path.identity, &challenge_sid)
        .await?
        .ok_or_else(not_found)?;
    let now = state.clock.now();
    match challenge.status.at(challenge.expiration_date, now) {
        ChallengeStatus::Pending => {}
        ChallengeStatus::Expired => return Err(ApiError::ChallengeExpired),
        _ => return Err(ApiError::ChallengeResponded),
    }
    let factor = state
        .store
        .factor(&auth.account_sid, &service.sid, &path.identity, &challenge.factor_sid)
        .await?
        .ok_or_else(not_found)?;
    let push = challenge_push(&service, &factor, (&challenge).into(), &state.push, Some(Resend { ttl }), now)
        .ok_or(ApiError::NotificationPlatformNone)?;
    let new = NewNotification {
        sid: "NT".to_owned() + &crate::domain::sid::random_hex::<16>(),
        challenge: &challenge,
        ttl,
        now,
    };
    let notification = match state.store.create_notification(new, &push, MAX_NOTIFICATIONS).await? {
        NotificationCreated::Created(notification) => notification,
        NotificationCreated::LimitReached => return Err(ApiError::NotificationLimit(MAX_NOTIFICATIONS)),
        NotificationCreated::ChallengeGone => return Err(not_found()),
    };
    if push.status == PushStatus::Queued {
        state.push_wake.notify_one();
    }
    Ok(HttpResponse::Created().json(NotificationBody {
        sid: notification.sid,
        account_sid: notification.account_sid,
        service_sid: notification.service_sid,
        entity_sid: notification.entity_sid,
        identity: notification.identity,
        challenge_sid: notification.challenge_sid,
        priority: notification.priority,
        ttl,
        date_created: dates::format(now),
    }))
}
