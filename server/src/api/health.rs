//! `GET /healthz`: liveness and the database's state, without auth.

use std::time::Duration;

use actix_web::HttpResponse;
use serde::Serialize;

use super::State;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    database: DatabaseHealth,
}

#[derive(Serialize)]
struct DatabaseHealth {
    backend: &'static str,
    status: &'static str,
}

pub async fn fetch_health(state: State) -> HttpResponse {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let healthy = matches!(ping, Ok(Ok(())));
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        database: DatabaseHealth {
            backend: state.store.backend().name(),
            status: if healthy { "ok" } else { "unavailable" },
        },
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
