//! A push survives `kill -9`: the Challenge and its push are committed together, so a server
//! killed right after creating the Challenge — its push receiver down — delivers the push after
//! a restart once the receiver is up.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use reqwest::Method;
use serde_json::{json, Value};
use support::{call, fakes, free_port, temp_db, Server};

const RSA_PEM: &str = include_str!("../../tests/fixtures/fcm-service-account-key.pem");

async fn start(db: &str, port: u16, fcm: &str) -> Server {
    Server::start(
        db,
        port,
        &[("VERIFY_PUSH_FCM_URL", fcm), ("VERIFY_PUSH_PUSH_POLL_MS", "50"), ("VERIFY_PUSH_PUSH_TIMEOUT", "2")],
    )
    .await
}

async fn post(url: &str, form: &[(&str, &str)]) -> Value {
    call(&reqwest::Client::new(), Method::POST, url, form).await.0
}

#[tokio::test]
async fn a_push_queued_before_kill_9_is_delivered_after_restart() {
    let (dir, db) = temp_db("crash");
    let (port, fcm_port) = (free_port(), free_port());
    let fcm = format!("http://127.0.0.1:{fcm_port}");
    let mut server = start(&db, port, &fcm).await;
    let base = server.url.clone();

    let secret = json!({"type": "service_account", "project_id": "crash", "private_key": RSA_PEM,
        "client_email": "push@crash.iam.gserviceaccount.com", "token_uri": format!("{fcm}/token")});
    let credential = post(&format!("{base}/v1/Credentials"), &[("Type", "fcm"), ("Secret", &secret.to_string())]).await;
    let credential = credential["sid"].as_str().unwrap().to_owned();
    let service =
        post(&format!("{base}/v2/Services"), &[("FriendlyName", "Crash"), ("Push.FcmCredentialSid", &credential)])
            .await;
    let service = service["sid"].as_str().unwrap().to_owned();
    let key = SigningKey::from_slice(&[11; 32]).unwrap();
    let public =
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes());
    let factors = format!("{base}/v2/Services/{service}/Entities/user-crash-1/Factors");
    let token = "c".repeat(64);
    let factor = post(
        &factors,
        &[
            ("FriendlyName", "phone"),
            ("FactorType", "push"),
            ("Binding.Alg", "ES256"),
            ("Binding.PublicKey", &public),
            ("Config.SdkVersion", "0.9.0"),
            ("Config.AppId", "com.example"),
            ("Config.NotificationPlatform", "fcm"),
            ("Config.NotificationToken", &token),
        ],
    )
    .await;
    let factor = factor["sid"].as_str().unwrap().to_owned();
    let signature: DerSignature = key.sign(factor.as_bytes());
    let payload = base64::engine::general_purpose::STANDARD.encode(signature.as_bytes());
    post(&format!("{factors}/{factor}"), &[("AuthPayload", &payload)]).await;

    let challenges = format!("{base}/v2/Services/{service}/Entities/user-crash-1/Challenges");
    let challenge = post(&challenges, &[("FactorSid", &factor), ("Details.Message", "Survive this")]).await;
    let challenge = challenge["sid"].as_str().unwrap().to_owned();
    server.kill();

    let answers: fakes::Responder = Arc::new(|_| {
        (200, r#"{"access_token": "ya29.x", "expires_in": 3600, "name": "projects/crash/messages/1"}"#.to_owned())
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", fcm_port)).await.unwrap();
    let google = fakes::Fake::start(listener, None, answers).await;
    let mut server = start(&db, port, &fcm).await;
    for _ in 0..800 {
        if !google.log.to_path("messages:send").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = google.log.to_path("messages:send");
    assert_eq!(delivered.len(), 1, "the push queued before the crash is delivered, once");
    let body: Value = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(body["message"]["data"]["challenge_sid"], challenge.as_str());
    assert_eq!(body["message"]["token"], token.as_str());
    server.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
