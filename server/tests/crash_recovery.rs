//! A push survives `kill -9`: the Challenge and its push are committed together, so a server
//! killed right after creating the Challenge — its push receiver down — delivers the push after
//! a restart once the receiver is up.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::{call, fakes, free_port, on_both_backends, verified_factor, Backend, Database, Server};

const RSA_PEM: &str = include_str!("../../tests/fixtures/fcm-service-account-key.pem");

async fn start(db: &str, port: u16, fcm: &str) -> Server {
    Server::start(
        db,
        port,
        &[("VERIFY_PUSH_FCM_URL", fcm), ("VERIFY_PUSH_PUSH_POLL_MS", "50"), ("VERIFY_PUSH_PUSH_TIMEOUT", "2")],
    )
    .await
}

async fn post(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Value {
    call(http, Method::POST, url, form).await.0
}

on_both_backends!(a_push_queued_before_kill_9_is_delivered_after_restart);

async fn a_push_queued_before_kill_9_is_delivered_after_restart(backend: Backend) {
    let database = Database::fresh(backend, "crash").await;
    let db = database.url.as_str();
    let http = reqwest::Client::new();
    let (port, fcm_port) = (free_port(), free_port());
    let fcm = format!("http://127.0.0.1:{fcm_port}");
    let mut server = start(db, port, &fcm).await;
    let base = server.url.clone();

    let secret = json!({"type": "service_account", "project_id": "crash", "private_key": RSA_PEM,
        "client_email": "push@crash.iam.gserviceaccount.com", "token_uri": format!("{fcm}/token")});
    let credential =
        post(&http, &format!("{base}/v1/Credentials"), &[("Type", "fcm"), ("Secret", &secret.to_string())]).await;
    let credential = credential["sid"].as_str().unwrap().to_owned();
    let service = post(
        &http,
        &format!("{base}/v2/Services"),
        &[("FriendlyName", "Crash"), ("Push.FcmCredentialSid", &credential)],
    )
    .await;
    let service = service["sid"].as_str().unwrap().to_owned();
    let entity = format!("{base}/v2/Services/{service}/Entities/user-crash-1");
    let token = "c".repeat(64);
    let (factor, _) = verified_factor(&http, &entity, &entity, 11, "fcm", Some(&token)).await;

    let challenges = format!("{entity}/Challenges");
    let challenge = post(&http, &challenges, &[("FactorSid", &factor), ("Details.Message", "Survive this")]).await;
    let challenge = challenge["sid"].as_str().unwrap().to_owned();
    server.kill();

    let answers: fakes::Responder = Arc::new(|_| {
        (200, r#"{"access_token": "ya29.x", "expires_in": 3600, "name": "projects/crash/messages/1"}"#.to_owned())
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", fcm_port)).await.unwrap();
    let google = fakes::Fake::start(listener, None, answers).await;
    let mut server = start(db, port, &fcm).await;
    // The push is settled once its attempt is recorded; then every request the fake got is
    // accounted for.
    let pushes = format!("{}/_emulator/pushes?ChallengeSid={challenge}", server.url);
    let mut push = Value::Null;
    for _ in 0..800 {
        push = call(&http, Method::GET, &pushes, &[]).await.0["pushes"][0].clone();
        if push["status"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(push["status"], "sent", "{push}");
    // Attempts before the restart found the receiver down (no answer); one was answered.
    let answered = push["attempts"].as_array().unwrap().iter().filter(|a| !a["http_status"].is_null()).count();
    assert_eq!(answered, 1, "{push}");
    let delivered = google.log.to_path("messages:send");
    assert_eq!(delivered.len(), 1, "the push queued before the crash is delivered, once");
    let body: Value = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(body["message"]["data"]["challenge_sid"], challenge.as_str());
    assert_eq!(body["message"]["token"], token.as_str());
    server.kill();
}
