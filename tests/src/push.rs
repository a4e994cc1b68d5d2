//! Push delivery against local fakes: APNs over HTTP/2 with token and certificate auth, FCM HTTP
//! v1 with an OAuth token from the service account, retries, permanent failures, a receiver
//! that is down when the Challenge is made, record mode, Notifications and Credentials.

mod bursts;
mod credentials;
mod listing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use verify_push_server::config::ServeArgs;

use crate::fakes::{script, Fake, Recorded, Responder, TestCa};
use crate::helper_libs::backend as twilio_python;
use verify_push_server::store::Backend;

use crate::helpers::{
    for_each_backend, identity, on_both_backends, spawn_app_with, spawn_app_with_background_loops, TestApp,
};

const P8: &str = include_str!("../fixtures/apns-token-key.p8");
const RSA_PEM: &str = include_str!("../fixtures/fcm-service-account-key.pem");
const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const APP_ID: &str = "com.example.app";

fn apn_token() -> String {
    "a1b2c3d4".repeat(8)
}

fn fcm_token() -> String {
    format!("fcm-registration-token-{}", "x".repeat(40))
}

fn der(pem: &str) -> Vec<u8> {
    STANDARD.decode(pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap()
}

fn write_temp(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("vpe-{name}-{}", verify_push_server::domain::sid::random_hex::<6>()));
    std::fs::write(&path, text).unwrap();
    path
}

pub async fn fcm_credential(app: &TestApp, token_uri: &str) -> String {
    let secret = json!({"type": "service_account", "project_id": "demo-project", "private_key": RSA_PEM,
        "client_email": "push@demo-project.iam.gserviceaccount.com", "token_uri": token_uri});
    let reply =
        app.post("/v1/Credentials", &[("Type", "fcm"), ("FriendlyName", "FCM"), ("Secret", &secret.to_string())]).await;
    reply.assert_status(201)["sid"].as_str().unwrap().to_owned()
}

pub(crate) async fn apn_token_credential(app: &TestApp, sandbox: bool) -> String {
    let reply = app
        .post(
            "/v1/Credentials",
            &[
                ("Type", "apn"),
                ("PrivateKey", P8),
                ("KeyId", KEY_ID),
                ("TeamId", TEAM_ID),
                ("Sandbox", if sandbox { "true" } else { "false" }),
            ],
        )
        .await;
    reply.assert_status(201)["sid"].as_str().unwrap().to_owned()
}

/// A Service using `credential` for `platform`, and a verified factor on it.
pub(crate) async fn service_with(app: &TestApp, platform: &str, credential: Option<&str>) -> (String, String, String) {
    let field = if platform == "apn" { "Push.ApnCredentialSid" } else { "Push.FcmCredentialSid" };
    let mut form = vec![("FriendlyName", "Push")];
    if let Some(c) = credential {
        form.push((field, c));
    }
    let service = app.post("/v2/Services", &form).await.assert_status(201)["sid"].as_str().unwrap().to_owned();
    let user = identity();
    let token = if platform == "apn" { apn_token() } else { fcm_token() };
    let (factor, _) = app.verified_factor_on(&service, &user, platform, &token).await;
    (service, user, factor)
}

pub(crate) async fn challenge(app: &TestApp, service: &str, user: &str, factor: &str, message: &str) -> String {
    let reply = app
        .post(
            &format!("/v2/Services/{service}/Entities/{user}/Challenges"),
            &[("FactorSid", factor), ("Details.Message", message)],
        )
        .await;
    reply.assert_status(201)["sid"].as_str().unwrap().to_owned()
}

pub(crate) async fn pushes_of(app: &TestApp, challenge: &str) -> Vec<Value> {
    let reply = app.get(&format!("/_emulator/pushes?ChallengeSid={challenge}")).await;
    reply.assert_status(200)["pushes"].as_array().unwrap().clone()
}

/// Runs the pushes due at the clock's time ([`TestApp::drain`]), then returns the push of
/// `challenge`, which must have `status`.
async fn push_when_drained(app: &TestApp, challenge: &str, status: &str) -> Value {
    app.drain().await;
    let pushes = pushes_of(app, challenge).await;
    let found = pushes.iter().find(|p| p["status"] == status).cloned();
    found.unwrap_or_else(|| panic!("once drained, the push of {challenge} is not {status}: {pushes:?}"))
}

pub(crate) async fn fake(tls: Option<(&TestCa, bool)>, responder: Responder) -> Fake {
    Fake::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), tls, responder).await
}

/// A server whose APNs (production and sandbox) and FCM endpoints are the given URLs.
pub(crate) async fn app_with(backend: Backend, ca: Option<&TestCa>, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let ca_file = ca.map(|ca| write_temp("ca.pem", &ca.pem));
    spawn_app_with(backend, |args| {
        args.push_ca_cert = ca_file;
        args.apns_url = "https://127.0.0.1:9".into();
        args.apns_sandbox_url = "https://127.0.0.1:9".into();
        args.fcm_url = "http://127.0.0.1:9".into();
        tweak(args);
    })
    .await
}

fn ok() -> Responder {
    Arc::new(|_| (200, "{}".to_owned()))
}

on_both_backends!(
    without_a_credential_pushes_are_recorded_byte_for_byte,
    notifications_resend_with_limits,
    credentials_are_validated_encrypted_and_never_returned
);
for_each_backend!(
    apns_token_auth_makes_exactly_one_http2_request,
    apns_certificate_auth_presents_the_client_certificate,
    fcm_sends_with_an_oauth_token_from_the_service_account,
    transient_failures_are_retried_with_the_same_payload,
    permanent_failures_stop_without_touching_the_challenge,
    a_receiver_down_at_creation_still_gets_the_push,
    a_drain_waits_for_the_background_loops_send_in_flight,
);

/// The test app's drop check: a test that ends with a push due fails (with its rows named).
#[tokio::test]
#[should_panic(expected = "background work left undone at the end of the test")]
async fn a_test_that_leaves_a_push_due_fails_on_sqlite() {
    leave_a_push_due(Backend::Sqlite).await;
}

#[tokio::test]
#[should_panic(expected = "background work left undone at the end of the test")]
async fn a_test_that_leaves_a_push_due_fails_on_postgres() {
    leave_a_push_due(Backend::Postgres).await;
}

async fn leave_a_push_due(backend: Backend) {
    let app = app_with(backend, None, |_| {}).await;
    let credential = fcm_credential(&app, "http://127.0.0.1:9/token").await;
    let (service, user, factor) = service_with(&app, "fcm", Some(&credential)).await;
    let sid = challenge(&app, &service, &user, &factor, "Left behind").await;
    assert_eq!(pushes_of(&app, &sid).await[0]["status"], "queued");
}

async fn without_a_credential_pushes_are_recorded_byte_for_byte(app: TestApp) {
    let (service, user, factor) = service_with(&app, "fcm", None).await;
    let sid = challenge(&app, &service, &user, &factor, "Log in to Owl Bank?").await;
    let pushes = pushes_of(&app, &sid).await;
    assert_eq!(pushes.len(), 1);
    let push = &pushes[0];
    assert_eq!(push["mode"], "record");
    assert_eq!(push["status"], "recorded");
    assert_eq!(push["platform"], "fcm");
    assert_eq!(push["target"], fcm_token());
    assert_eq!(push["attempts"], json!([]));
    let payload: Value = serde_json::from_str(push["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({"message": {"token": fcm_token(), "data": {"type": "verify_push_challenge", "challenge_sid": sid,
            "factor_sid": factor, "message": "Log in to Owl Bank?"}, "android": {"priority": "high", "ttl": "300s"}}})
    );

    let (service, user, factor) = service_with(&app, "apn", None).await;
    app.post(&format!("/v2/Services/{service}"), &[("Push.IncludeDate", "true")]).await.assert_status(200);
    let sid = challenge(&app, &service, &user, &factor, "Approve?").await;
    let push = pushes_of(&app, &sid).await.remove(0);
    assert_eq!(push["headers"]["apns-topic"], APP_ID);
    assert_eq!(push["headers"]["apns-push-type"], "alert");
    assert_eq!(push["headers"]["apns-priority"], "10");
    let payload: Value = serde_json::from_str(push["payload"].as_str().unwrap()).unwrap();
    let created =
        app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}")).await.body["date_created"].clone();
    assert_eq!(
        payload,
        json!({"aps": {"alert": "Approve?", "category": "verify_push_challenge", "mutable-content": 1, "sound": "default"},
            "type": "verify_push_challenge", "challenge_sid": sid, "factor_sid": factor, "message": "Approve?", "date": created})
    );
    // Filters, then clearing.
    let all = app.get("/_emulator/pushes?Platform=apn&Status=recorded").await;
    assert_eq!(all.body["pushes"].as_array().unwrap().len(), 1);
    app.get("/_emulator/pushes?Status=lost").await.assert_error(400, 60200);
    assert_eq!(app.delete("/_emulator/pushes").await.status, 204);
    assert_eq!(app.get("/_emulator/pushes").await.body["pushes"], json!([]));
}

async fn apns_token_auth_makes_exactly_one_http2_request(backend: Backend) {
    let ca = TestCa::new();
    let production = fake(Some((&ca, false)), ok()).await;
    let sandbox = fake(Some((&ca, false)), ok()).await;
    let (prod_url, sandbox_url) = (production.url(true), sandbox.url(true));
    let app = app_with(backend, Some(&ca), |a| {
        a.apns_url = prod_url;
        a.apns_sandbox_url = sandbox_url;
    })
    .await;
    let credential = apn_token_credential(&app, false).await;
    let (service, user, factor) = service_with(&app, "apn", Some(&credential)).await;
    let sid = challenge(&app, &service, &user, &factor, "Sign in?").await;
    let sent = push_when_drained(&app, &sid, "sent").await;
    assert_eq!(app.drain().await.pushes, 0, "nothing more is due");
    let requests = production.log.all();
    assert_eq!(requests.len(), 1, "exactly one request: {requests:?}");
    let r: &Recorded = &requests[0];
    assert_eq!(r.version, hyper::Version::HTTP_2);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", format!("/3/device/{}", apn_token()).as_str()));
    assert_eq!(r.header("apns-topic"), Some(APP_ID));
    assert_eq!(r.header("apns-push-type"), Some("alert"));
    assert_eq!(r.header("apns-priority"), Some("10"));
    let expiration = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}")).await.body
        ["expiration_date"]
        .clone();
    let expires =
        time::OffsetDateTime::parse(expiration.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(r.header("apns-expiration"), Some(expires.unix_timestamp().to_string().as_str()));
    assert_eq!(r.body, sent["payload"].as_str().unwrap(), "the recorded payload is what was sent");
    // The provider token: ES256 by the .p8 key, kid = key id, iss = team id.
    let jwt = r.header("authorization").unwrap().strip_prefix("bearer ").unwrap();
    let (input, signature) = jwt.rsplit_once('.').unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der(P8), &ring::rand::SystemRandom::new()).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref())
        .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap())
        .expect("the provider token is signed by the .p8 key");
    let part = |i: usize| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(input.split('.').nth(i).unwrap()).unwrap()).unwrap()
    };
    assert_eq!(part(0)["kid"], KEY_ID);
    assert_eq!(part(1)["iss"], TEAM_ID);
    assert_eq!(sent["attempts"][0]["http_status"], 200);
    assert!(sandbox.log.all().is_empty());

    let sandboxed = apn_token_credential(&app, true).await;
    let (service, user, factor) = service_with(&app, "apn", Some(&sandboxed)).await;
    let sid = challenge(&app, &service, &user, &factor, "Sandbox?").await;
    push_when_drained(&app, &sid, "sent").await;
    assert_eq!(sandbox.log.all().len(), 1, "Sandbox=true sends to the sandbox endpoint");
    assert_eq!(production.log.all().len(), 1);
}

async fn apns_certificate_auth_presents_the_client_certificate(backend: Backend) {
    let ca = TestCa::new();
    let apns = fake(Some((&ca, true)), ok()).await;
    let url = apns.url(true);
    let app = app_with(backend, Some(&ca), |a| a.apns_url = url).await;
    let (cert, key) = ca.issue("Apple Push Services: com.example.app");
    // The backend side through twilio-python: Notify credential, Service update, challenge.
    let (cert_file, key_file) = (write_temp("cert.pem", &cert), write_temp("key.pem", &key));
    let files = [cert_file.to_str().unwrap(), key_file.to_str().unwrap()];
    let credential = twilio_python(&app, &["credential", "apn", files[0], files[1]]).await;
    assert_eq!(credential["type"], "apn");
    let credential = credential["sid"].as_str().unwrap().to_owned();
    let (service, user, factor) = service_with(&app, "apn", None).await;
    let updated = twilio_python(&app, &["use-credential", &service, "apn", &credential]).await;
    assert_eq!(updated["push"]["apn_credential_sid"], credential.as_str());
    let created = twilio_python(&app, &["challenge", &service, &user, &factor, "Cert?"]).await;
    let sid = created["sid"].as_str().unwrap().to_owned();
    let sent = push_when_drained(&app, &sid, "sent").await;
    assert_eq!(app.drain().await.pushes, 0, "nothing more is due");
    let requests = apns.log.all();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].client_cn.as_deref(), Some("Apple Push Services: com.example.app"));
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(requests[0].version, hyper::Version::HTTP_2);
    assert_eq!(requests[0].path, format!("/3/device/{}", apn_token()));
    assert_eq!(requests[0].header("apns-topic"), Some(APP_ID));
    assert_eq!(requests[0].header("apns-push-type"), Some("alert"));
    assert_eq!(requests[0].body, sent["payload"].as_str().unwrap());
    let payload: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(payload["aps"]["alert"], "Cert?");
    assert_eq!(payload["challenge_sid"], sid.as_str());
}

/// The fake Google endpoints: the token endpoint checks the RS256 assertion.
fn google(sends: Vec<(u16, &'static str)>) -> Responder {
    let key = RsaKeyPair::from_pkcs8(&der(RSA_PEM)).unwrap();
    let public = key.public().as_ref().to_vec();
    let sends = script(&sends, (200, r#"{"name": "projects/demo-project/messages/0:1"}"#));
    Arc::new(move |r: &Recorded| {
        if r.path == "/token" {
            let assertion = r.body.split('&').find_map(|p| p.strip_prefix("assertion=")).unwrap_or("");
            let (input, signature) = assertion.rsplit_once('.').unwrap_or(("", ""));
            let valid = UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &public)
                .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap_or_default())
                .is_ok();
            return if valid && r.body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
                (200, r#"{"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"}"#.to_owned())
            } else {
                (400, r#"{"error": "invalid_grant"}"#.to_owned())
            };
        }
        if r.header("authorization") != Some("Bearer ya29.fake") {
            return (401, r#"{"error": {"status": "UNAUTHENTICATED"}}"#.to_owned());
        }
        sends(r)
    })
}

async fn fcm_sends_with_an_oauth_token_from_the_service_account(backend: Backend) {
    let google = fake(None, google(vec![])).await;
    let url = google.url(false);
    let app = app_with(backend, None, |a| a.fcm_url = url.clone()).await;
    // The backend side through twilio-python: Notify credential, Service update, challenges.
    let account = json!({"type": "service_account", "project_id": "demo-project", "private_key": RSA_PEM,
        "client_email": "push@demo-project.iam.gserviceaccount.com", "token_uri": format!("{url}/token")});
    let account_file = write_temp("service-account.json", &account.to_string());
    let credential = twilio_python(&app, &["credential", "fcm", account_file.to_str().unwrap()]).await;
    let credential = credential["sid"].as_str().unwrap().to_owned();
    let (service, user, factor) = service_with(&app, "fcm", None).await;
    twilio_python(&app, &["use-credential", &service, "fcm", &credential]).await;
    let created = twilio_python(&app, &["challenge", &service, &user, &factor, "First"]).await;
    let first = created["sid"].as_str().unwrap().to_owned();
    let sent = push_when_drained(&app, &first, "sent").await;
    let second = challenge(&app, &service, &user, &factor, "Second").await;
    push_when_drained(&app, &second, "sent").await;
    let sends = google.log.to_path("/v1/projects/demo-project/messages:send");
    assert_eq!(sends.len(), 2);
    assert_eq!(google.log.to_path("/token").len(), 1, "the access token is reused");
    assert_eq!(sends[0].body, sent["payload"].as_str().unwrap());
    let body: Value = serde_json::from_str(&sends[0].body).unwrap();
    assert_eq!(body["message"]["token"], fcm_token());
    assert_eq!(body["message"]["data"]["type"], "verify_push_challenge");
    assert_eq!(body["message"]["data"]["challenge_sid"], first.as_str());
    assert_eq!(body["message"]["data"]["factor_sid"], factor.as_str());
    assert_eq!(body["message"]["data"]["message"], "First");
    assert_eq!(body["message"]["android"]["priority"], "high");
    assert!(body["message"].get("notification").is_none(), "a data-only message");
}

async fn transient_failures_are_retried_with_the_same_payload(backend: Backend) {
    let ca = TestCa::new();
    let apns = fake(
        Some((&ca, false)),
        script(
            &[(500, r#"{"reason": "InternalServerError"}"#), (429, r#"{"reason": "TooManyRequests"}"#)],
            (200, "{}"),
        ),
    )
    .await;
    let url = apns.url(true);
    let app = app_with(backend, Some(&ca), |a| a.apns_url = url).await;
    let credential = apn_token_credential(&app, false).await;
    let (service, user, factor) = service_with(&app, "apn", Some(&credential)).await;
    let sid = challenge(&app, &service, &user, &factor, "Retry me").await;
    let retrying = push_when_drained(&app, &sid, "retrying").await;
    assert_eq!(retrying["attempts"][0]["http_status"], 500);
    assert_eq!(retrying["attempts"][0]["outcome"], "retry");
    assert_eq!(app.drain().await.pushes, 0, "the retry waits for its backoff (at least 2 s)");
    app.clock.advance(5);
    let again = push_when_drained(&app, &sid, "retrying").await;
    assert_eq!(again["attempts"][1]["http_status"], 429);
    app.clock.advance(10);
    let sent = push_when_drained(&app, &sid, "sent").await;
    let statuses: Vec<&Value> = sent["attempts"].as_array().unwrap().iter().map(|a| &a["http_status"]).collect();
    assert_eq!(statuses, vec![&json!(500), &json!(429), &json!(200)]);
    let bodies: Vec<String> = apns.log.all().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 3);
    assert!(bodies.iter().all(|b| b == sent["payload"].as_str().unwrap()));
}

async fn permanent_failures_stop_without_touching_the_challenge(backend: Backend) {
    let ca = TestCa::new();
    let apns = fake(Some((&ca, false)), Arc::new(|_| (410, r#"{"reason": "Unregistered"}"#.to_owned()))).await;
    let url = apns.url(true);
    let app = app_with(backend, Some(&ca), |a| a.apns_url = url).await;
    let credential = apn_token_credential(&app, false).await;
    let (service, user, factor) = service_with(&app, "apn", Some(&credential)).await;
    let sid = challenge(&app, &service, &user, &factor, "Gone").await;
    let failed = push_when_drained(&app, &sid, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1);
    assert!(failed["last_error"].as_str().unwrap().contains("Unregistered"));
    app.clock.advance(200);
    assert_eq!(app.drain().await.pushes, 0, "no retry after a permanent failure");
    assert_eq!(apns.log.all().len(), 1);
    let c = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}")).await;
    assert_eq!(c.body["status"], "pending", "a push failure never fails the challenge");
}

async fn a_receiver_down_at_creation_still_gets_the_push(backend: Backend) {
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let url = format!("http://127.0.0.1:{port}");
    let app = app_with(backend, None, |a| a.fcm_url = url.clone()).await;
    let credential = fcm_credential(&app, &format!("{url}/token")).await;
    let (service, user, factor) = service_with(&app, "fcm", Some(&credential)).await;
    let sid = challenge(&app, &service, &user, &factor, "Are you there?").await;
    let retrying = push_when_drained(&app, &sid, "retrying").await;
    assert!(retrying["last_error"].as_str().unwrap().contains("unreachable"), "{retrying}");
    let google = Fake::start(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), None, google(vec![])).await;
    app.clock.advance(10);
    push_when_drained(&app, &sid, "sent").await;
    assert_eq!(google.log.to_path("messages:send").len(), 1);
}

/// With the background loops running (as in production), the loop sends a new challenge's push
/// by itself; a drain meanwhile waits for that send to be recorded instead of claiming it again.
async fn a_drain_waits_for_the_background_loops_send_in_flight(backend: Backend) {
    let ca = TestCa::new();
    let apns = fake(Some((&ca, false)), ok()).await;
    apns.hold.set(Duration::from_millis(300));
    let url = apns.url(true);
    let app = spawn_app_with_background_loops(backend, |a| {
        a.push_ca_cert = Some(write_temp("ca.pem", &ca.pem));
        a.apns_url = url;
    })
    .await;
    let credential = apn_token_credential(&app, false).await;
    let (service, user, factor) = service_with(&app, "apn", Some(&credential)).await;
    let sid = challenge(&app, &service, &user, &factor, "In flight").await;
    // The loop (woken by the enqueue) has sent; the fake holds its answer back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while apns.log.all().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the background loop never sent the push");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pushes_of(&app, &sid).await[0]["status"], "sending");
    assert_eq!(app.drain().await.pushes, 0, "the loop's claim is not claimed again");
    let push = pushes_of(&app, &sid).await.remove(0);
    assert_eq!(push["status"], "sent", "the drain returned only once the loop's attempt was recorded");
    assert_eq!(push["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(apns.log.all().len(), 1);
}

async fn notifications_resend_with_limits(app: TestApp) {
    let (service, user, factor) = service_with(&app, "fcm", None).await;
    let sid = challenge(&app, &service, &user, &factor, "Again?").await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}/Notifications");
    let created = app.post(&path, &[("Ttl", "120")]).await;
    let body = created.assert_status(201).clone();
    assert!(body["sid"].as_str().unwrap().starts_with("NT"));
    assert_eq!(body["challenge_sid"], sid.as_str());
    assert_eq!(body["priority"], "high");
    assert_eq!(body["ttl"], 120);
    assert_eq!(body["identity"], user.as_str());
    let pushes = pushes_of(&app, &sid).await;
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[1]["notification_sid"], body["sid"]);
    assert_eq!(pushes[1]["payload"], pushes[0]["payload"].as_str().unwrap().replace("\"300s\"", "\"120s\""));
    assert_eq!(app.post(&path, &[]).await.assert_status(201)["ttl"], 300);
    app.post(&path, &[("Ttl", "0")]).await.assert_status(201);
    app.post(&path, &[]).await.assert_error(429, 60309);
    assert_eq!(pushes_of(&app, &sid).await.len(), 4);

    let other = challenge(&app, &service, &user, &factor, "Other").await;
    let other_path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{other}/Notifications");
    app.post(&other_path, &[("Ttl", "301")]).await.assert_error(400, 60200);
    app.post(&other_path, &[("Ttl", "soon")]).await.assert_error(400, 60200);
    app.post(&format!("/v2/Services/{service}/Entities/{user}/Challenges/YC{}/Notifications", "0".repeat(32)), &[])
        .await
        .assert_error(404, 20404);
    app.clock.advance(301);
    app.post(&other_path, &[]).await.assert_error(403, 60323);

    let quiet = app.service().await;
    let who = identity();
    let (f, _) = app.verified_factor_on(&quiet, &who, "none", "").await;
    let c = challenge(&app, &quiet, &who, &f, "Silent").await;
    assert!(pushes_of(&app, &c).await.is_empty(), "no push for platform none");
    app.post(&format!("/v2/Services/{quiet}/Entities/{who}/Challenges/{c}/Notifications"), &[])
        .await
        .assert_error(400, 60307);
}

async fn credentials_are_validated_encrypted_and_never_returned(app: TestApp) {
    let created = app
        .post(
            "/v1/Credentials",
            &[("Type", "apn"), ("FriendlyName", "iOS"), ("PrivateKey", P8), ("KeyId", KEY_ID), ("TeamId", TEAM_ID)],
        )
        .await;
    let body = created.assert_status(201).clone();
    let sid = body["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("CR"));
    assert_eq!(body["type"], "apn");
    assert_eq!(body["sandbox"], "False");
    assert_eq!(body["url"], format!("{}/v1/Credentials/{sid}", app.url));
    for reply in [&created, &app.get(&format!("/v1/Credentials/{sid}")).await, &app.get("/v1/Credentials").await] {
        let text = reply.body.to_string();
        assert!(!text.contains("PRIVATE") && !text.contains(KEY_ID) && !text.contains(TEAM_ID), "no secret in {text}");
    }
    let updated =
        app.post(&format!("/v1/Credentials/{sid}"), &[("FriendlyName", "iOS prod"), ("Sandbox", "true")]).await;
    assert_eq!(updated.assert_status(200)["sandbox"], "True");
    assert_eq!(updated.body["friendly_name"], "iOS prod");

    // Stored encrypted.
    let stored: String = match app.backend {
        Backend::Sqlite => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM credentials WHERE sid = $1")
                .bind(&sid)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM credentials WHERE sid = $1")
                .bind(&sid)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    };
    assert!(!stored.contains("PRIVATE") && !stored.contains(TEAM_ID), "encrypted at rest");
    assert!(STANDARD.decode(&stored).is_ok());

    let not_json = "{not json";
    let no_key = json!({"project_id": "p", "client_email": "e@x", "private_key": "nope"}).to_string();
    for (form, field) in [
        (vec![("Type", "apn"), ("Certificate", "garbage"), ("PrivateKey", P8)], "Certificate"),
        (vec![("Type", "apn"), ("PrivateKey", "garbage"), ("KeyId", KEY_ID), ("TeamId", TEAM_ID)], "PrivateKey"),
        (vec![("Type", "apn"), ("PrivateKey", P8), ("KeyId", "short"), ("TeamId", TEAM_ID)], "KeyId"),
        (vec![("Type", "apn"), ("PrivateKey", P8), ("KeyId", KEY_ID)], "TeamId"),
        (vec![("Type", "apn")], "PrivateKey"),
        (vec![("Type", "fcm"), ("Secret", not_json)], "Secret"),
        (vec![("Type", "fcm"), ("Secret", &no_key)], "Secret"),
        (vec![("Type", "fcm")], "Secret"),
        (vec![("Type", "gcm"), ("ApiKey", "x")], "Type"),
        (vec![("Type", "webpush")], "Type"),
        (vec![("FriendlyName", "x")], "Type"),
    ] {
        let message = app.post("/v1/Credentials", &form).await.assert_error(400, 60200);
        assert!(message.contains(field), "{form:?}: {message}");
    }
    app.post(&format!("/v1/Credentials/{sid}"), &[("Type", "fcm")]).await.assert_error(400, 60200);
    app.post(&format!("/v1/Credentials/{sid}"), &[("PrivateKey", "garbage")]).await.assert_error(400, 60200);

    // Services reference existing credentials of the right type only.
    let unknown = format!("CR{}", "0".repeat(32));
    app.post("/v2/Services", &[("FriendlyName", "x"), ("Push.ApnCredentialSid", &unknown)])
        .await
        .assert_error(400, 60200);
    app.post("/v2/Services", &[("FriendlyName", "x"), ("Push.FcmCredentialSid", &sid)]).await.assert_error(400, 60200);
    let service = app.post("/v2/Services", &[("FriendlyName", "x"), ("Push.ApnCredentialSid", &sid)]).await;
    assert_eq!(service.assert_status(201)["push"]["apn_credential_sid"], sid.as_str());

    assert_eq!(app.delete(&format!("/v1/Credentials/{sid}")).await.status, 204);
    app.get(&format!("/v1/Credentials/{sid}")).await.assert_error(404, 20404);
    app.delete(&format!("/v1/Credentials/{sid}")).await.assert_error(404, 20404);
}
