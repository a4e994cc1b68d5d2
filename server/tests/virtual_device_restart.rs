//! A virtual device's key survives a restart (`kill -9`, then a start on the same database): the
//! sealed key is in the database and the key that opens it in the key file (SQLite) or the
//! database (PostgreSQL), so the device answers after the restart with the key it enrolled with.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use reqwest::Method;
use serde_json::Value;
use support::{call, free_port, on_both_backends, Backend, Database, Server};

on_both_backends!(a_virtual_device_answers_after_a_restart);

async fn post(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Value {
    call(http, Method::POST, url, form).await.0
}

async fn a_virtual_device_answers_after_a_restart(backend: Backend) {
    let database = Database::fresh(backend, "vdev").await;
    let http = reqwest::Client::new();
    let port = free_port();
    let mut server = Server::start(&database.url, port, &[]).await;
    let base = server.url.clone();
    let service = post(&http, &format!("{base}/v2/Services"), &[("FriendlyName", "Restart")]).await;
    let service = service["sid"].as_str().unwrap().to_owned();
    let user = "user-restart-1";
    let device =
        post(&http, &format!("{base}/_emulator/Devices"), &[("ServiceSid", &service), ("Identity", user)]).await;
    let factor = device["factor_sid"].as_str().unwrap().to_owned();
    assert_eq!(device["status"], "verified", "{device}");
    server.kill();

    let server = Server::start(&database.url, port, &[]).await;
    let base = server.url.clone();
    let challenges = format!("{base}/v2/Services/{service}/Entities/{user}/Challenges");
    let challenge = post(&http, &challenges, &[("FactorSid", &factor), ("Details.Message", "After restart")]).await;
    let answer = format!("{base}/_emulator/Devices/{factor}/Challenges/latest");
    let answered = post(&http, &answer, &[("Status", "approved")]).await;
    assert_eq!((answered["sid"].clone(), answered["status"].clone()), (challenge["sid"].clone(), "approved".into()));
}
