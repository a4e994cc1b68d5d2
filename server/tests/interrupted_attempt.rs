//! An attempt cut off by `kill -9` is a recorded attempt: a server killed while its push and its
//! webhook delivery wait for their receivers' answers sends both again once their leases lapse
//! (after a restart), and `/_emulator` shows two attempts each — the interrupted one, then the
//! delivered one — matching the two requests each receiver got.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::fakes::{Fake, Responder};
use support::{approve, call, free_port, on_both_backends, verified_factor, Backend, Database, Server};

const RSA_PEM: &str = include_str!("../../tests/fixtures/fcm-service-account-key.pem");

/// Timeouts of 3 s: the kill comes well within them (the requests wait for answers, not for a
/// timeout), and the leases lapse 11 s after the claims.
async fn start(db: &str, port: u16, fcm: &str) -> Server {
    let env = [
        ("VERIFY_PUSH_FCM_URL", fcm),
        ("VERIFY_PUSH_PUSH_POLL_MS", "50"),
        ("VERIFY_PUSH_PUSH_TIMEOUT", "3"),
        ("VERIFY_PUSH_WEBHOOK_POLL_MS", "50"),
        ("VERIFY_PUSH_WEBHOOK_TIMEOUT", "3"),
    ];
    Server::start(db, port, &env).await
}

async fn fake(body: &'static str) -> Fake {
    let answer: Responder = Arc::new(move |_| (200, body.to_owned()));
    Fake::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), None, answer).await
}

/// The one item of an `/_emulator` list, once it has `status` (deadline 30 s).
async fn settled(http: &reqwest::Client, url: &str, key: &str, field: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let item = call(http, Method::GET, url, &[]).await.0[key][0].clone();
        if item[field] == status {
            return item;
        }
        assert!(Instant::now() < deadline, "never {status}: {item}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two attempts: the one the kill cut off (no answer, marked interrupted), then the answered one.
fn assert_interrupted_then_sent(item: &Value) {
    let attempts = item["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{item}");
    assert_eq!(attempts[0]["attempt"], 1, "{item}");
    assert!(attempts[0]["http_status"].is_null(), "{item}");
    assert_eq!(attempts[0]["outcome"], "retry", "{item}");
    assert!(attempts[0]["error"].as_str().unwrap().starts_with("interrupted"), "{item}");
    assert_eq!((&attempts[1]["attempt"], &attempts[1]["http_status"]), (&json!(2), &json!(200)), "{item}");
}

on_both_backends!(an_attempt_cut_off_by_kill_9_is_recorded_and_retried);

async fn an_attempt_cut_off_by_kill_9_is_recorded_and_retried(backend: Backend) {
    let database = Database::fresh(backend, "interrupted").await;
    let db = database.url.as_str();
    let http = reqwest::Client::new();
    let oauth = fake(r#"{"access_token": "ya29.x", "expires_in": 3600}"#).await;
    let google = fake(r#"{"name": "projects/cut/messages/1"}"#).await;
    let receiver = fake("{}").await;
    let port = free_port();
    let fcm = google.url(false);
    let mut server = start(db, port, &fcm).await;
    let base = server.url.clone();

    let secret = json!({"type": "service_account", "project_id": "cut", "private_key": RSA_PEM,
        "client_email": "push@cut.iam.gserviceaccount.com", "token_uri": format!("{}/token", oauth.url(false))});
    let form = [("Type", "fcm"), ("Secret", &secret.to_string())];
    let credential = call(&http, Method::POST, &format!("{base}/v1/Credentials"), &form).await.0;
    let form = [("FriendlyName", "Cut"), ("Push.FcmCredentialSid", credential["sid"].as_str().unwrap())];
    let service = call(&http, Method::POST, &format!("{base}/v2/Services"), &form).await.0;
    let service = service["sid"].as_str().unwrap().to_owned();
    let hook = format!("{}/hook", receiver.url(false));
    let form = [("FriendlyName", "h"), ("EventTypes", "challenge.approved"), ("WebhookUrl", hook.as_str())];
    call(&http, Method::POST, &format!("{base}/v2/Services/{service}/Webhooks"), &form).await;
    let entity = format!("{base}/v2/Services/{service}/Entities/user-cut");
    let (factor, key) = verified_factor(&http, &entity, &entity, 12, "fcm", Some(&"d".repeat(64))).await;

    // Receivers that take their time: the server waits for both answers when it is killed.
    google.hold.set(Duration::from_secs(30));
    receiver.hold.set(Duration::from_secs(30));
    let form = [("FactorSid", factor.as_str()), ("Details.Message", "Cut off")];
    let challenge = call(&http, Method::POST, &format!("{entity}/Challenges"), &form).await.0;
    let challenge = challenge["sid"].as_str().unwrap().to_owned();
    approve(&http, &format!("{entity}/Challenges/{challenge}"), &key).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while google.log.to_path("messages:send").is_empty() || receiver.log.all().is_empty() {
        assert!(Instant::now() < deadline, "the push and the webhook were never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();

    google.hold.set(Duration::ZERO);
    receiver.hold.set(Duration::ZERO);
    let server = start(db, port, &fcm).await;
    let pushes = format!("{}/_emulator/pushes?ChallengeSid={challenge}", server.url);
    let push = settled(&http, &pushes, "pushes", "status", "sent").await;
    let deliveries = format!("{}/_emulator/webhook-deliveries", server.url);
    let delivery = settled(&http, &deliveries, "webhook_deliveries", "outcome", "delivered").await;
    assert_eq!(google.log.to_path("messages:send").len(), 2, "sent before the kill and after");
    assert_interrupted_then_sent(&push);
    assert_eq!(receiver.log.all().len(), 2, "delivered before the kill and after");
    assert_interrupted_then_sent(&delivery);
}
