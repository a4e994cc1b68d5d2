//! The device protocol through the client crate (which speaks the SDKs' protocol): enrolment with
//! an access token, verification, listing, approving and denying, in Android and iOS style; the
//! SDKs' clock re-sync; and hostile tokens, none of which changes state.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use reqwest::Method;
use verify_push_client::device::Connection;
use verify_push_client::{jwt, Device, ListOptions, Profile, Style};
use verify_push_server::clock::Clock;

use crate::helpers::{identity, on_both_backends, Creds, TestApp};

on_both_backends!(
    an_android_device_enrolls_and_answers_challenges,
    an_ios_device_enrolls_and_answers_challenges,
    a_device_whose_clock_is_an_hour_off_succeeds_after_one_retry,
    hostile_factor_jwts_are_refused_without_changing_state,
    access_tokens_only_enroll_their_own_identity_while_valid,
    challenge_answers_are_checked_against_signature_state_and_fields,
);

/// A Service, an access token for a new identity, and an enrolled, verified device.
pub async fn enrolled_device(app: &TestApp, style: Style, clock_error: i64) -> (String, Device) {
    let service = app.service().await;
    let user = identity();
    let token =
        app.post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")]).await;
    let token = token.assert_status(201)["token"].as_str().unwrap().to_owned();
    let mut profile = Profile::new("test", &app.url, style, &service, &user);
    profile.push_token = Some(format!("{:0>64}", "ab"));
    let mut device = Device::new(profile, None, &Connection { ca_cert_pem: None, clock_error }).unwrap();
    let factor = device.enroll(&token, None).await.unwrap();
    assert_eq!(factor.status, "verified");
    (service, device)
}

async fn enroll_and_answer(app: TestApp, style: Style) {
    let (service, mut device) = enrolled_device(&app, style, 0).await;
    let user = device.profile.identity.clone();
    let factor = device.profile.factor_sid.clone().unwrap();
    let stored = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await;
    assert_eq!(stored.assert_status(200)["status"], "verified");
    assert_eq!(stored.body["config"]["notification_platform"], style.platform());
    assert_eq!(stored.body["config"]["sdk_version"], style.sdk_version());

    let first = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let second = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let third = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();

    // Paging through pending challenges newest first, one per page, by the page token.
    let mut options =
        ListOptions { status: Some("pending".into()), order: "desc".into(), page_size: 1, page_token: None };
    let mut seen = Vec::new();
    loop {
        let page = device.challenges(&options).await.unwrap();
        seen.extend(page.challenges.iter().map(|c| c.sid.clone()));
        match page.next_page_token {
            Some(token) => options.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!(seen, vec![third.clone(), second.clone(), first.clone()]);

    let fetched = device.challenge(&first).await.unwrap();
    assert_eq!(fetched.message, "Login request");
    assert!(fetched.signature_fields.as_ref().is_some_and(|f| f.len() == 11 && !f.contains(&"status".to_owned())));

    let approved = device.approve(&first).await.unwrap();
    assert_eq!(approved.status, "approved");
    assert!(approved.signature_fields.is_none(), "only pending challenges advertise fields");
    let denied = device.deny(&second).await.unwrap();
    assert_eq!(denied.status, "denied");
    let backend_view = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{first}")).await;
    assert_eq!(backend_view.body["status"], "approved");
    assert!(backend_view.body["date_responded"].is_string());
    let latest = device.latest_pending().await.unwrap().unwrap();
    assert_eq!(latest.sid, third);

    let error = device.approve(&first).await.unwrap_err();
    assert!(error.to_string().contains("not pending"), "{error}");

    let updated = device.update_push_token(Some(&"c".repeat(64))).await.unwrap();
    assert_eq!(updated.sid, factor);
    let stored = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await;
    assert_eq!(stored.body["config"]["notification_token"], "c".repeat(64));

    device.unenroll().await.unwrap();
    app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await.assert_error(404, 20404);
}

async fn an_android_device_enrolls_and_answers_challenges(app: TestApp) {
    enroll_and_answer(app, Style::Android).await;
}

async fn an_ios_device_enrolls_and_answers_challenges(app: TestApp) {
    enroll_and_answer(app, Style::Ios).await;
}

async fn a_device_whose_clock_is_an_hour_off_succeeds_after_one_retry(app: TestApp) {
    // Enrolment's verify call is the first JWT call: it fails on the clock, re-syncs, retries.
    let (service, mut device) = enrolled_device(&app, Style::Android, 3600).await;
    assert_eq!(device.resyncs(), 1, "exactly one re-sync during enrolment");
    let user = device.profile.identity.clone();
    let factor = device.profile.factor_sid.clone().unwrap();
    let sid = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    device.approve(&sid).await.unwrap();
    assert_eq!(device.resyncs(), 1, "the learnt correction holds for later calls");
    let (_, late) = enrolled_device(&app, Style::Ios, -3600).await;
    assert_eq!(late.resyncs(), 1);
}

/// Sends `token` as the factor JWT of a raw request.
async fn with_token(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    form: &[(&str, &str)],
) -> crate::helpers::Reply {
    let creds = Creds { user: "token".into(), password: token.into() };
    app.send(method, path, Some(&creds), form, &[], None).await
}

async fn hostile_factor_jwts_are_refused_without_changing_state(app: TestApp) {
    let (service, device) = enrolled_device(&app, Style::Android, 0).await;
    let (other_service, other) = enrolled_device(&app, Style::Ios, 0).await;
    let user = device.profile.identity.clone();
    let factor = device.profile.factor_sid.clone().unwrap();
    let credential = device.profile.credential_sid.clone().unwrap();
    let account = device.profile.account_sid.clone().unwrap();
    let key = device.profile.signing_key().unwrap();
    let now = app.clock.now();
    let good = jwt::factor_jwt(&key, Style::Android, &credential, &account, now);
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}");
    with_token(&app, Method::GET, &path, &good, &[]).await.assert_status(200);

    let (input, sig) = good.rsplit_once('.').unwrap();
    let (header, _) = input.split_once('.').unwrap();
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let forged_claims =
        format!("{header}.{}.{sig}", b64(&format!(r#"{{"sub":"{account}","exp":{},"nbf":{now}}}"#, now + 9999)));
    let reencoded = format!("{}.{}", URL_SAFE_NO_PAD.encode(STANDARD.encode(input)), sig);
    let raw_sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let sig63 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw_sig[..63]));
    let none_alg =
        format!("{}.{}.", b64(&format!(r#"{{"alg":"none","kid":"{credential}"}}"#)), input.split_once('.').unwrap().1);
    let hs256 = format!(
        "{}.{}.{sig}",
        b64(&format!(r#"{{"alg":"HS256","kid":"{credential}","typ":"JWT"}}"#)),
        input.split_once('.').unwrap().1
    );
    let other_key = other.profile.signing_key().unwrap();
    let wrong_key = jwt::factor_jwt(&other_key, Style::Android, &credential, &account, now);
    let wrong_kid = jwt::factor_jwt(&key, Style::Android, "CR00000000000000000000000000000000", &account, now);
    let wrong_sub = jwt::factor_jwt(&key, Style::Android, &credential, &"AC".repeat(17), now);
    let expired = jwt::factor_jwt(&key, Style::Android, &credential, &account, now - 661 - 600);
    let future = jwt::factor_jwt(&key, Style::Android, &credential, &account, now + 61);
    let oversized = format!("{good}{}", "A".repeat(5500));
    let cases: Vec<(&str, String)> = vec![
        ("forged claims", forged_claims),
        ("re-encoded", reencoded),
        ("truncated", good[..good.len() - 5].to_owned()),
        ("63-byte signature", sig63),
        ("alg none", none_alg),
        ("alg HS256", hs256),
        ("another factor's key", wrong_key),
        ("unknown kid", wrong_kid),
        ("wrong sub", wrong_sub),
        ("replayed after expiry", expired),
        ("from the future", future),
        ("oversized", oversized),
        ("not JSON", format!("{}.{}.{sig}", b64("not json"), b64("{}"))),
        ("empty", String::new()),
    ];
    let challenge = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    for (why, token) in &cases {
        for (method, target) in [
            (Method::GET, path.clone()),
            (Method::DELETE, path.clone()),
            (Method::POST, format!("/v2/Services/{service}/Entities/{user}/Challenges/{challenge}")),
        ] {
            let reply = with_token(&app, method.clone(), &target, token, &[("AuthPayload", "x")]).await;
            assert_eq!(reply.status.as_u16(), 401, "{why} on {method} {target}: {}", reply.body);
            reply.assert_error(401, 20003);
            assert!(reply.headers.contains_key("date"), "401s carry Date so the SDK can re-sync");
        }
    }
    // A valid JWT on another identity's or Service's paths, or for another factor's resources.
    let other_user = other.profile.identity.clone();
    let other_factor = other.profile.factor_sid.clone().unwrap();
    for target in [
        format!("/v2/Services/{other_service}/Entities/{other_user}/Factors/{other_factor}"),
        format!("/v2/Services/{service}/Entities/{other_user}/Factors/{factor}"),
        format!("/v2/Services/{other_service}/Entities/{user}/Factors/{factor}"),
        format!("/v2/Services/{other_service}/Entities/{other_user}/Challenges"),
        format!("/v2/Services/{service}/Entities/{user}/Challenges?FactorSid={other_factor}"),
    ] {
        with_token(&app, Method::GET, &target, &good, &[]).await.assert_error(401, 20003);
    }
    // Factor JWTs are not account credentials.
    with_token(&app, Method::GET, "/v2/Services", &good, &[]).await.assert_error(401, 20003);
    with_token(
        &app,
        Method::POST,
        &format!("/v2/Services/{service}/Entities/{user}/Challenges"),
        &good,
        &[("FactorSid", &factor), ("Details.Message", "m")],
    )
    .await
    .assert_error(401, 20003);
    // Nothing changed.
    assert_eq!(app.get(&path).await.body["status"], "verified");
    let c = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{challenge}")).await;
    assert_eq!(c.body["status"], "pending");
}

async fn access_tokens_only_enroll_their_own_identity_while_valid(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let token = app
        .post(
            &format!("/v2/Services/{service}/AccessTokens"),
            &[("Identity", &user), ("FactorType", "push"), ("Ttl", "60")],
        )
        .await;
    let token = token.body["token"].as_str().unwrap().to_owned();
    let other_service = app.service().await;
    let enroll = |s: &str, who: &str| Profile::new("t", &app.url, Style::Android, s, who);
    for (profile, why) in
        [(enroll(&service, &identity()), "another identity"), (enroll(&other_service, &user), "another service")]
    {
        let mut device = Device::new(profile, None, &Connection::default()).unwrap();
        let error = device.enroll(&token, None).await.unwrap_err();
        assert_eq!((error.status(), error.code()), (Some(401), Some(20003)), "{why}");
    }
    let mut tampered = token.clone();
    tampered.replace_range(tampered.len() - 3.., "AAA");
    let mut device = Device::new(enroll(&service, &user), None, &Connection::default()).unwrap();
    assert_eq!(device.enroll(&tampered, None).await.unwrap_err().code(), Some(20003));
    // An access token is no factor JWT: it cannot read or answer anything.
    let creds = Creds { user: "token".into(), password: token.clone() };
    let reply = app
        .send(Method::GET, &format!("/v2/Services/{service}/Entities/{user}/Challenges"), Some(&creds), &[], &[], None)
        .await;
    reply.assert_error(401, 20003);
    app.clock.advance(60);
    let mut device = Device::new(enroll(&service, &user), None, &Connection::default()).unwrap();
    assert_eq!(device.enroll(&token, None).await.unwrap_err().code(), Some(20003), "expired");
    app.get(&format!("/v2/Services/{service}/Entities/{user}")).await.assert_error(404, 20404);
}

async fn challenge_answers_are_checked_against_signature_state_and_fields(app: TestApp) {
    let (service, mut device) = enrolled_device(&app, Style::Ios, 0).await;
    let user = device.profile.identity.clone();
    let factor = device.profile.factor_sid.clone().unwrap();
    let key = device.profile.signing_key().unwrap();
    let credential = device.profile.credential_sid.clone().unwrap();
    let account = device.profile.account_sid.clone().unwrap();
    let sid = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let fetched = device.challenge(&sid).await.unwrap();
    let fields = fetched.signature_fields.clone().unwrap();
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}");
    let post = |payload: String| {
        let token = jwt::factor_jwt(&key, Style::Ios, &credential, &account, app.clock.now());
        let path = path.clone();
        let app = &app;
        async move { with_token(app, Method::POST, &path, &token, &[("AuthPayload", &payload)]).await }
    };
    let mut tampered = fetched.json.clone();
    tampered.insert("hidden_details".into(), serde_json::json!({"ip": "1.2.3.4"}));
    let stranger = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let cases = vec![
        ("another key", jwt::challenge_answer(&stranger, Style::Ios, &fields, &fetched.json, "approved").unwrap()),
        ("a changed field", jwt::challenge_answer(&key, Style::Ios, &fields, &tampered, "approved").unwrap()),
        ("an unknown status", jwt::challenge_answer(&key, Style::Ios, &fields, &fetched.json, "maybe").unwrap()),
        ("too few fields", jwt::challenge_answer(&key, Style::Ios, &fields[..3], &fetched.json, "approved").unwrap()),
        ("not a JWS", "abc".to_owned()),
    ];
    for (why, payload) in cases {
        let reply = post(payload).await;
        assert_eq!(reply.status.as_u16(), 403, "{why}: {}", reply.body);
        reply.assert_error(403, 60324);
    }
    post("x".repeat(5457)).await.assert_error(400, 60200);
    assert_eq!(app.get(&path).await.body["status"], "pending", "no refused answer changed it");

    let good = jwt::challenge_answer(&key, Style::Ios, &fields, &fetched.json, "denied").unwrap();
    post(good.clone()).await.assert_status(200);
    post(good).await.assert_error(403, 60322);

    let late = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let late_json = device.challenge(&late).await.unwrap();
    app.clock.advance(301);
    let answer = jwt::challenge_answer(&key, Style::Ios, &fields, &late_json.json, "approved").unwrap();
    let token = jwt::factor_jwt(&key, Style::Ios, &credential, &account, app.clock.now());
    let reply = with_token(
        &app,
        Method::POST,
        &format!("/v2/Services/{service}/Entities/{user}/Challenges/{late}"),
        &token,
        &[("AuthPayload", &answer)],
    )
    .await;
    reply.assert_error(403, 60323);
}
