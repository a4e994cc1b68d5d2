//! The test controls (README, "Test controls"), account credentials required, served only
//! while `--emulator-controls on` ([`super::CONTROL_ROUTES`]):
//! - `GET /_emulator/Clock` reads the server's clock; `POST` moves it (`Advance`, `Set` or
//!   `Reset`) and/or freezes or thaws it (`Freeze`), for every instance on the database;
//! - `POST /_emulator/Challenges/{ChallengeSid}` with `Status=expired` expires one pending
//!   Challenge without moving the clock;
//! - `POST /_emulator/Reset` deletes the calling account's data, keeping the account and its API
//!   keys.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::auth::AccountAuth;
use super::challenges::challenge_response;
use super::params::Form;
use super::{path_sid, Missing, State};
use crate::clock::{Change, EmulatedClock, Move, Reading, Refused};
use crate::domain::dates;
use crate::domain::sid::ChallengeSid;
use crate::domain::status::ChallengeStatus;
use crate::error::{ApiError, ApiResult};

#[derive(Serialize)]
struct ClockBody {
    now: String,
    offset_seconds: i64,
    frozen: bool,
}

fn clock_body(reading: Reading) -> HttpResponse {
    HttpResponse::Ok().json(ClockBody {
        now: dates::format(reading.now),
        offset_seconds: reading.offset_seconds,
        frozen: reading.frozen,
    })
}

/// The emulated clock (present whenever a control route runs: the routes are off without it).
fn emulated(state: &State) -> ApiResult<&EmulatedClock> {
    state.emulated_clock.as_deref().ok_or_else(|| ApiError::NotFound("/_emulator/Clock".to_owned()))
}

pub async fn fetch_clock(_auth: AccountAuth, state: State) -> ApiResult<HttpResponse> {
    Ok(clock_body(emulated(&state)?.reading()))
}

/// The seconds of `Advance`: at most a hundred years either way.
const MAX_ADVANCE: i64 = 100 * 366 * 86_400;

/// Reads the change a `POST /_emulator/Clock` asks for.
fn requested_change(p: &super::params::Params) -> ApiResult<Change> {
    let mut moves = None;
    for name in ["Advance", "Set", "Reset"] {
        let Some(value) = p.get(name) else { continue };
        let this =
            match name {
                "Advance" => Move::Advance(
                    p.int_in("Advance", -MAX_ADVANCE..=MAX_ADVANCE)?.ok_or(ApiError::MissingParameter("Advance"))?,
                ),
                "Set" => Move::Set(dates::parse(value).ok_or_else(|| {
                    ApiError::invalid("Set", "must be an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z")
                })?),
                _ => match p.bool("Reset")? {
                    Some(true) => Move::Reset,
                    _ => return Err(ApiError::invalid("Reset", "must be true")),
                },
            };
        if moves.is_some() {
            return Err(ApiError::invalid(name, "give only one of Advance, Set and Reset"));
        }
        moves = Some(this);
    }
    let freeze = p.bool("Freeze")?;
    if moves.is_none() && freeze.is_none() {
        return Err(ApiError::invalid("Advance", "give one of Advance, Set or Reset, or Freeze"));
    }
    Ok(Change { moves, freeze })
}

pub async fn update_clock(_auth: AccountAuth, state: State, Form(p): Form) -> ApiResult<HttpResponse> {
    let change = requested_change(&p)?;
    match emulated(&state)?.change(change).await {
        Ok(reading) => {
            tracing::info!(
                now = reading.now,
                offset = reading.offset_seconds,
                frozen = reading.frozen,
                "clock changed"
            );
            Ok(clock_body(reading))
        }
        Err(Refused::BeforeNewest { moves, newest }) => {
            let name = match moves {
                Move::Advance(_) => "Advance",
                Move::Set(_) => "Set",
                Move::Reset => "Reset",
            };
            Err(ApiError::invalid(
                name,
                format!(
                    "would move the clock back before {}, the newest date the database holds (README, \"Test controls\")",
                    dates::format(newest)
                ),
            ))
        }
        Err(Refused::Database(e)) => Err(e.into()),
    }
}

/// `Status=expired`: the pending Challenge expires now, as it would at its expiration date
/// (the clock does not move). An approved or denied one is 60322; an expired one stays so.
pub async fn update_challenge(
    auth: AccountAuth,
    state: State,
    path: web::Path<String>,
    Form(p): Form,
) -> ApiResult<HttpResponse> {
    let raw = path.into_inner();
    let missing = Missing::EmulatorChallenge(&raw);
    let sid: ChallengeSid = path_sid(&raw, missing)?;
    let challenge =
        state.store.account_challenge(&auth.account_sid, &sid).await?.ok_or_else(|| ApiError::from(missing))?;
    let status = p.word::<ChallengeStatus>("Status")?.ok_or(ApiError::MissingParameter("Status"))?;
    if status != ChallengeStatus::Expired {
        return Err(ApiError::invalid("Status", format!("must be {}", ChallengeStatus::Expired)));
    }
    let now = state.clock.now();
    state.store.expire_challenge(&challenge, now).await?;
    // Read again: an answer may have come first.
    let after = state.store.account_challenge(&auth.account_sid, &sid).await?.ok_or_else(|| ApiError::from(missing))?;
    if matches!(after.status, ChallengeStatus::Approved | ChallengeStatus::Denied) {
        return Err(ApiError::ChallengeResponded);
    }
    Ok(challenge_response(&state, &after, now))
}

/// Deletes the calling account's Services (and everything below them), Credentials, pushes and
/// webhook deliveries; the account and its API keys stay. 204. (It takes no parameters; a body
/// is still decoded, strictly, as on every POST.)
pub async fn create_reset(auth: AccountAuth, state: State, Form(_): Form) -> ApiResult<HttpResponse> {
    state.store.reset_account(&auth.account_sid).await?;
    if let Some(reseed) = &state.reseed {
        reseed.reseed(&state, &auth.account_sid).await.map_err(ApiError::Internal)?;
    }
    tracing::info!(account = %auth.account_sid, reseeded = state.reseed.is_some(), "account reset");
    Ok(HttpResponse::NoContent().finish())
}
