//! `GET /healthz`: liveness and the database's state, without auth.
//!
//! 200 when the database answers a read and the last write succeeded (no write is made);
//! 503 `unavailable` when it does not answer, and 503 `degraded` while writes fail (for
//! example a full disk) — then each call probes the write path, so health recovers by itself
//! once writes succeed again. `database.reason` says why whenever the state is not `ok`.
//! While a graceful shutdown drains open connections the overall status is 503 `draining`
//! (the database part still says what it is), so load balancers take the instance out first.

use actix_web::HttpResponse;
use serde::Serialize;

use super::State;
use crate::store::health::DatabaseState;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    database: DatabaseHealth,
}

#[derive(Serialize)]
struct DatabaseHealth {
    backend: &'static str,
    /// `ok`, `degraded` (reads work, writes fail) or `unavailable`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

pub async fn fetch_health(state: State) -> HttpResponse {
    let (status, reason) = match state.store.health().await {
        DatabaseState::Ok => ("ok", None),
        DatabaseState::Degraded(reason) => ("degraded", Some(reason)),
        DatabaseState::Unavailable(reason) => ("unavailable", Some(reason)),
    };
    let draining = state.draining.load(std::sync::atomic::Ordering::Relaxed);
    let body = Health {
        status: if draining { "draining" } else { status },
        version: env!("CARGO_PKG_VERSION"),
        database: DatabaseHealth { backend: state.store.backend().name(), status, reason },
    };
    if status == "ok" && !draining {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
