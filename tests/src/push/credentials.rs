//! Credential material is checked for what it is: the certificate parses as X.509, the key as a
//! private key of a kind the sender can use, and the two are a pair; a bad one is a 400 naming
//! the field and stores nothing. Good material is accepted in proper PEM and in the one-line
//! form Twilio's docs show, and pushes are actually sent with it.

use p256::pkcs8::{DecodePrivateKey, LineEnding};
use serde_json::json;
use verify_push_server::store::Backend;

use super::{
    app_with, challenge, fake, google, ok, push_when_drained, service_with, TestApp, APP_ID, KEY_ID, P8, RSA_PEM,
    TEAM_ID,
};
use crate::fakes::TestCa;
use crate::helpers::{for_each_backend, on_both_backends};

on_both_backends!(bad_credential_material_is_refused_naming_the_field);
for_each_backend!(
    certificate_credentials_work_in_proper_and_one_line_pem,
    token_and_service_account_keys_work_in_one_line_pem,
);

/// `pem` with its line breaks removed, as Twilio's docs show a certificate:
/// `-----BEGIN CERTIFICATE-----MIIF…-----END CERTIFICATE-----`.
fn one_line(pem: &str) -> String {
    pem.lines().collect()
}

/// `label` armour around base64 that decodes to bytes that are no key or certificate.
fn junk(label: &str) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode("junk bytes, not DER at all. ".repeat(12));
    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
}

/// `pem` with the second half of its base64 cut off (still valid base64: whole quanta).
fn truncated(pem: &str) -> String {
    let lines: Vec<&str> = pem.lines().collect();
    let body: String = lines[1..lines.len() - 1].concat();
    let keep = body.len() / 2 / 4 * 4;
    format!("{}\n{}\n{}\n", lines[0], &body[..keep], lines[lines.len() - 1])
}

/// `pem` with a character outside base64 in its body.
fn not_base64(pem: &str) -> String {
    pem.replacen('\n', "\n*", 1)
}

fn fcm_secret(private_key: &str, token_uri: &str) -> String {
    json!({"type": "service_account", "project_id": "demo-project", "private_key": private_key,
        "client_email": "push@demo-project.iam.gserviceaccount.com", "token_uri": token_uri})
    .to_string()
}

async fn bad_credential_material_is_refused_naming_the_field(app: TestApp) {
    let ca = TestCa::new();
    let (cert, key) = ca.issue("Apple Push Services: com.example.app");
    let (_, other_key) = ca.issue("someone else");
    let rsa_cert = ca.issue_with_key("Apple Push Services: com.example.rsa", RSA_PEM);
    let apn = |certificate: &str, private_key: &str| {
        vec![
            ("Type", "apn".to_owned()),
            ("Certificate", certificate.to_owned()),
            ("PrivateKey", private_key.to_owned()),
        ]
    };
    let token = |private_key: &str| {
        vec![
            ("Type", "apn".to_owned()),
            ("PrivateKey", private_key.to_owned()),
            ("KeyId", KEY_ID.to_owned()),
            ("TeamId", TEAM_ID.to_owned()),
        ]
    };
    let fcm = |private_key: &str| vec![("Type", "fcm".to_owned()), ("Secret", fcm_secret(private_key, "https://x/t"))];
    let cases = [
        ("junk in certificate armour", apn(&junk("CERTIFICATE"), &key), "Certificate"),
        ("truncated certificate", apn(&truncated(&cert), &key), "Certificate"),
        ("certificate that is not base64", apn(&not_base64(&cert), &key), "Certificate"),
        ("a key as the certificate", apn(&key, &key), "Certificate"),
        ("junk in key armour", apn(&cert, &junk("PRIVATE KEY")), "PrivateKey"),
        ("junk in EC key armour", apn(&cert, &junk("EC PRIVATE KEY")), "PrivateKey"),
        ("truncated key", apn(&cert, &truncated(&key)), "PrivateKey"),
        ("a certificate as the key", apn(&cert, &cert), "PrivateKey"),
        ("another P-256 key than the certificate's", apn(&cert, &other_key), "PrivateKey"),
        ("an RSA key for a P-256 certificate", apn(&cert, RSA_PEM), "PrivateKey"),
        ("a P-256 key for an RSA certificate", apn(&rsa_cert, &key), "PrivateKey"),
        ("an RSA key as the .p8", token(RSA_PEM), "PrivateKey"),
        ("junk in .p8 armour", token(&junk("PRIVATE KEY")), "PrivateKey"),
        ("truncated .p8", token(&truncated(P8)), "PrivateKey"),
        ("junk as the service account key", fcm(&junk("PRIVATE KEY")), "Secret"),
        ("a P-256 key as the service account key", fcm(P8), "Secret"),
        ("truncated service account key", fcm(&truncated(RSA_PEM)), "Secret"),
    ];
    let mut wrong = Vec::new();
    for (case, form, field) in &cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = app.post("/v1/Credentials", &form).await;
        let named = reply.body["message"].as_str().is_some_and(|m| m.contains(field));
        if reply.status != 400 || reply.body["code"] != 60200 || !named {
            wrong.push(format!("{case}: {} {}", reply.status, reply.body));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases not refused naming the field:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    let listed = app.get("/v1/Credentials").await;
    assert_eq!(listed.assert_status(200)["credentials"], json!([]), "nothing stored");
}

/// Sends a challenge push on a new Service using APNs `credential`, waiting until it is sent.
async fn push_with(app: &TestApp, credential: &str, message: &str) {
    let (service, user, factor) = service_with(app, "apn", Some(credential)).await;
    let sid = challenge(app, &service, &user, &factor, message).await;
    push_when_drained(app, &sid, "sent").await;
}

async fn certificate_credentials_work_in_proper_and_one_line_pem(backend: Backend) {
    let ca = TestCa::new();
    let apns = fake(Some((&ca, true)), ok()).await;
    let url = apns.url(true);
    let app = app_with(backend, Some(&ca), |a| a.apns_url = url).await;
    let (cert, key) = ca.issue("Apple Push Services: multi-line");
    let (cert_1, key_1) = ca.issue("Apple Push Services: one-line");
    let rsa_cert = ca.issue_with_key("Apple Push Services: rsa", RSA_PEM);
    let (sec1_cert, sec1_key) = ca.issue("Apple Push Services: sec1");
    let sec1_key = p256::SecretKey::from_pkcs8_pem(&sec1_key).unwrap().to_sec1_pem(LineEnding::LF).unwrap();
    // Twilio's docs write a key's line breaks as `\n`.
    let escaped_key = key_1.trim_end().replace('\n', "\\n");
    let forms = [
        ("multi-line", cert.clone(), key.clone()),
        ("one-line", one_line(&cert_1), one_line(&key_1)),
        ("one-line", one_line(&cert_1), escaped_key),
        ("rsa", one_line(&rsa_cert), RSA_PEM.to_owned()),
        ("sec1", sec1_cert, sec1_key.to_string()),
    ];
    for (i, (cn, certificate, private_key)) in forms.iter().enumerate() {
        let form = [("Type", "apn"), ("Certificate", certificate.as_str()), ("PrivateKey", private_key.as_str())];
        let reply = app.post("/v1/Credentials", &form).await;
        let credential = reply.assert_status(201)["sid"].as_str().unwrap().to_owned();
        push_with(&app, &credential, &format!("Cert {i}")).await;
        let last = apns.log.all().pop().unwrap();
        assert_eq!(last.client_cn.as_deref(), Some(format!("Apple Push Services: {cn}").as_str()), "form {i}");
        assert_eq!(last.header("apns-topic"), Some(APP_ID));
        assert_eq!(apns.log.all().len(), i + 1);
    }

    // An update with a key of another pair is refused and changes nothing: the stored pair
    // still sends.
    let form = [("Type", "apn"), ("Certificate", cert.as_str()), ("PrivateKey", key.as_str())];
    let credential = app.post("/v1/Credentials", &form).await.assert_status(201)["sid"].as_str().unwrap().to_owned();
    let message =
        app.post(&format!("/v1/Credentials/{credential}"), &[("PrivateKey", &key_1)]).await.assert_error(400, 60200);
    assert!(message.contains("PrivateKey"), "{message}");
    let message = app
        .post(&format!("/v1/Credentials/{credential}"), &[("Certificate", &junk("CERTIFICATE"))])
        .await
        .assert_error(400, 60200);
    assert!(message.contains("Certificate"), "{message}");
    push_with(&app, &credential, "Still the first pair").await;
    let last = apns.log.all().pop().unwrap();
    assert_eq!(last.client_cn.as_deref(), Some("Apple Push Services: multi-line"));

    // A valid new pair is used from the next push on.
    let form = [("Certificate", cert_1.as_str()), ("PrivateKey", key_1.as_str())];
    app.post(&format!("/v1/Credentials/{credential}"), &form).await.assert_status(200);
    push_with(&app, &credential, "The new pair").await;
    let last = apns.log.all().pop().unwrap();
    assert_eq!(
        last.client_cn.as_deref(),
        Some("Apple Push Services: one-line"),
        "the updated certificate is presented"
    );
}

async fn token_and_service_account_keys_work_in_one_line_pem(backend: Backend) {
    let ca = TestCa::new();
    let apns = fake(Some((&ca, false)), ok()).await;
    let google = fake(None, google(vec![])).await;
    let (apns_url, google_url) = (apns.url(true), google.url(false));
    let app = app_with(backend, Some(&ca), |a| {
        a.apns_url = apns_url;
        a.fcm_url = google_url.clone();
    })
    .await;
    let p8 = one_line(P8);
    let form = [("Type", "apn"), ("PrivateKey", p8.as_str()), ("KeyId", KEY_ID), ("TeamId", TEAM_ID)];
    let credential = app.post("/v1/Credentials", &form).await.assert_status(201)["sid"].as_str().unwrap().to_owned();
    push_with(&app, &credential, "Token").await;
    let sent = apns.log.all();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].header("authorization").is_some_and(|a| a.starts_with("bearer ")), "{sent:?}");

    let secret = fcm_secret(&one_line(RSA_PEM), &format!("{google_url}/token"));
    let form = [("Type", "fcm"), ("Secret", secret.as_str())];
    let credential = app.post("/v1/Credentials", &form).await.assert_status(201)["sid"].as_str().unwrap().to_owned();
    let (service, user, factor) = service_with(&app, "fcm", Some(&credential)).await;
    let sid = challenge(&app, &service, &user, &factor, "Service account").await;
    push_when_drained(&app, &sid, "sent").await;
    // The fake token endpoint checks the assertion's RS256 signature with the fixture's key.
    assert_eq!(google.log.to_path("/token").len(), 1);
    assert_eq!(google.log.to_path("messages:send").len(), 1);
}
