//! The test controls (README, "Test controls"): the emulated clock (`/_emulator/Clock`) moves
//! expiry, access tokens, the device-JWT window (and the SDKs' re-sync), `date_*` fields and the
//! `Date` header; it freezes, resets, refuses to go back before the newest stored date, and is
//! shared by the instances on one database. Expiring one Challenge (`/_emulator/Challenges/…`),
//! `/_emulator/Reset` of one account, and `--emulator-controls off`.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use verify_push_client::{jwt, Style};
use verify_push_server::config::{EmulatorControls, ServeArgs};
use verify_push_server::domain::dates;
use verify_push_server::store::Backend;

use crate::device::enrolled_device;
use crate::helpers::{fresh_database, identity, on_both_backends, spawn_app_configured, Creds, TestApp};

on_both_backends!(
    advancing_expires_challenges_and_moves_the_device_jwt_window,
    advancing_expires_access_tokens,
    freeze_holds_now_reset_returns_and_the_date_header_follows,
    the_clock_never_moves_back_before_the_newest_stored_date,
    malformed_clock_changes_are_refused_naming_the_parameter,
    expiring_one_challenge_leaves_the_others_and_the_clock_alone,
    reset_deletes_the_calling_account_s_data_only,
);

on_both_backends!(with controls_off; with_controls_off_the_controls_are_unknown_paths);

crate::helpers::for_each_backend!(a_clock_change_on_one_instance_reaches_the_other);

fn controls_off(args: &mut ServeArgs) {
    args.emulator_controls = EmulatorControls::Off;
}

/// `POST /_emulator/Clock` with `form`, as the main account.
async fn clock(app: &TestApp, form: &[(&str, &str)]) -> crate::helpers::Reply {
    app.post("/_emulator/Clock", form).await
}

/// The server's `now`, as Unix seconds.
async fn server_now(app: &TestApp) -> i64 {
    let reply = app.get("/_emulator/Clock").await;
    dates::parse(reply.assert_status(200)["now"].as_str().unwrap()).unwrap()
}

/// The reply's `Date` header.
fn http_date(reply: &crate::helpers::Reply) -> String {
    reply.headers.get("date").unwrap().to_str().unwrap().to_owned()
}

async fn advancing_expires_challenges_and_moves_the_device_jwt_window(app: TestApp) {
    let (service, mut device) = enrolled_device(&app, Style::Android, 0).await;
    let user = device.profile.identity.clone();
    let factor = device.profile.factor_sid.clone().unwrap();
    let sid = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let fetched = device.challenge(&sid).await.unwrap();
    assert_eq!(device.resyncs(), 0);

    let moved = clock(&app, &[("Advance", "3600")]).await;
    assert_eq!(moved.assert_status(200)["offset_seconds"], 3600);
    assert_eq!(moved.body["frozen"], false);
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}");
    let backend_view = app.get(&path).await;
    assert_eq!(backend_view.assert_status(200)["status"], "expired");

    // The device's JWTs are an hour behind the server now: 401 with the server's Date, the
    // client re-syncs from it and its retry succeeds.
    let seen = device.challenge(&sid).await.unwrap();
    assert_eq!(seen.status, "expired");
    assert_eq!(device.resyncs(), 1, "one re-sync after the clock moved");
    let stale = jwt::factor_jwt(
        &device.profile.signing_key().unwrap(),
        Style::Android,
        device.profile.credential_sid.as_deref().unwrap(),
        device.profile.account_sid.as_deref().unwrap(),
        server_now(&app).await - 3600,
    );
    let token = |t: &str| Creds { user: "token".into(), password: t.to_owned() };
    let refused = app.send(Method::GET, &path, Some(&token(&stale)), &[], &[], None).await;
    refused.assert_error(401, 20003);
    let now = server_now(&app).await;
    let dates_near: Vec<String> = (now - 2..=now).map(dates::http).collect();
    assert!(dates_near.contains(&http_date(&refused)), "the 401's Date is the server's clock: {}", http_date(&refused));

    // An answer signed over the Challenge as it was, with a JWT of the server's time: 60323.
    let fields = fetched.signature_fields.clone().unwrap();
    let key = device.profile.signing_key().unwrap();
    let answer = jwt::challenge_answer(&key, Style::Android, &fields, &fetched.json, "approved").unwrap();
    let fresh = jwt::factor_jwt(
        &key,
        Style::Android,
        device.profile.credential_sid.as_deref().unwrap(),
        device.profile.account_sid.as_deref().unwrap(),
        server_now(&app).await,
    );
    let reply = app.send(Method::POST, &path, Some(&token(&fresh)), &[("AuthPayload", &answer)], &[], None).await;
    reply.assert_error(403, 60323);
    // The sweeper writes what reads already show, at the emulated time.
    let swept = app.sweep_and_drain().await.expired_challenges;
    assert_eq!(swept, 1, "the sweep at the emulated time expires the overdue Challenge");
    let stored = app.get(&path).await;
    assert_eq!(dates::parse(stored.body["date_updated"].as_str().unwrap()).unwrap(), server_now(&app).await);
}

async fn advancing_expires_access_tokens(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let reply =
        app.post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")]).await;
    let token = reply.assert_status(201)["token"].as_str().unwrap().to_owned();
    let key = crate::helpers::device_key();
    let public = crate::helpers::spki_base64(&key);
    let push_token = "t".repeat(40);
    let form = crate::helpers::factor_form(&public, "fcm", &push_token);
    let creds = Creds { user: "token".into(), password: token };
    let factors = format!("/v2/Services/{service}/Entities/{user}/Factors");
    clock(&app, &[("Advance", "301")]).await.assert_status(200);
    app.send(Method::POST, &factors, Some(&creds), &form, &[], None).await.assert_error(401, 20003);
    clock(&app, &[("Advance", "-301")]).await.assert_status(200);
    let enrolled = app.send(Method::POST, &factors, Some(&creds), &form, &[], None).await;
    enrolled.assert_status(201);
}

async fn freeze_holds_now_reset_returns_and_the_date_header_follows(app: TestApp) {
    let start = server_now(&app).await;
    let frozen = clock(&app, &[("Advance", "86400"), ("Freeze", "true")]).await;
    assert_eq!(frozen.assert_status(200)["frozen"], true);
    let at = dates::parse(frozen.body["now"].as_str().unwrap()).unwrap();
    assert!((at - start - 86_400).abs() <= 1);
    app.clock.advance(500); // the base clock ticks on; the frozen clock does not
    let reply = app.get("/_emulator/Clock").await;
    assert_eq!(dates::parse(reply.body["now"].as_str().unwrap()), Some(at));
    assert_eq!(http_date(&reply), dates::http(at), "the Date header is the emulated clock");
    let service = app.service().await;
    let created = app.get(&format!("/v2/Services/{service}")).await;
    assert_eq!(dates::parse(created.body["date_created"].as_str().unwrap()), Some(at), "date_* follow the clock");
    assert_eq!(http_date(&created), dates::http(at));

    let thawed = clock(&app, &[("Freeze", "false")]).await;
    assert_eq!(thawed.assert_status(200)["frozen"], false);
    assert_eq!(dates::parse(thawed.body["now"].as_str().unwrap()), Some(at), "thawing does not move the clock");
    app.post(&format!("/v2/Services/{service}"), &[]).await;
    app.delete(&format!("/v2/Services/{service}")).await.assert_status(204);
    // Nothing newer than the base clock is left, so the clock may go back to it.
    let reset = clock(&app, &[("Reset", "true")]).await;
    assert_eq!(reset.assert_status(200)["offset_seconds"], 0);
    assert_eq!(reset.body["frozen"], false);
    assert_eq!(server_now(&app).await, start + 500);
}

async fn the_clock_never_moves_back_before_the_newest_stored_date(app: TestApp) {
    let start = server_now(&app).await;
    clock(&app, &[("Advance", "600")]).await.assert_status(200);
    let service = app.service().await; // dated start + 600
    let before = dates::format(start + 300);
    let message = clock(&app, &[("Set", &before)]).await.assert_error(400, 60200);
    assert!(message.contains("`Set`") && message.contains(&dates::format(start + 600)), "{message}");
    let message = clock(&app, &[("Advance", "-300")]).await.assert_error(400, 60200);
    assert!(message.contains("`Advance`"), "{message}");
    clock(&app, &[("Reset", "true")]).await.assert_error(400, 60200);
    assert_eq!(server_now(&app).await, start + 600, "a refused change leaves the clock");
    // Forward, and back as far as the newest date, are fine.
    clock(&app, &[("Set", &dates::format(start + 7200))]).await.assert_status(200);
    clock(&app, &[("Set", &dates::format(start + 600))]).await.assert_status(200);
    // Once the account's data is gone, the clock may go back.
    app.post("/_emulator/Reset", &[]).await.assert_status(204);
    app.get(&format!("/v2/Services/{service}")).await.assert_error(404, 20404);
    clock(&app, &[("Reset", "true")]).await.assert_status(200);
}

async fn malformed_clock_changes_are_refused_naming_the_parameter(app: TestApp) {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("Advance", "soon")], "Advance"),
        (&[("Advance", "1.5")], "Advance"),
        (&[("Set", "tomorrow")], "Set"),
        (&[("Set", "2026-01-01")], "Set"),
        (&[("Freeze", "maybe")], "Freeze"),
        (&[("Reset", "false")], "Reset"),
        (&[], "Advance"),
        (&[("Advance", "5"), ("Set", "2030-01-01T00:00:00Z")], "Set"),
        (&[("Advance", "5"), ("Reset", "true")], "Reset"),
    ];
    for (form, name) in cases {
        let message = clock(&app, form).await.assert_error(400, 60200);
        assert!(message.contains(&format!("`{name}`")), "{form:?}: {message}");
    }
    let reply = app.get("/_emulator/Clock").await;
    assert_eq!(reply.assert_status(200)["offset_seconds"], 0, "no refused change moved the clock");
}

async fn expiring_one_challenge_leaves_the_others_and_the_clock_alone(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, key) = app.verified_factor(&service, &user).await;
    let one = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let two = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let now = server_now(&app).await;

    let reply = app.post(&format!("/_emulator/Challenges/{one}"), &[("Status", "expired")]).await;
    let body = reply.assert_status(200).clone();
    let fetched = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{one}")).await;
    assert_eq!(body, fetched.body, "answers the Challenge as FetchChallenge renders it");
    assert_eq!(body["status"], "expired");
    assert_eq!(dates::parse(body["expiration_date"].as_str().unwrap()), Some(now));
    let other = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{two}")).await;
    assert_eq!(other.body["status"], "pending", "the other Challenge is untouched");
    assert_eq!(server_now(&app).await, now, "the clock did not move");
    // Its push expired with it: the drain fails it as expired instead of sending it.
    let pushes = app.get(&format!("/_emulator/pushes?ChallengeSid={one}")).await;
    assert_eq!(dates::parse(pushes.body["pushes"][0]["expires_at"].as_str().unwrap()), Some(now));

    // Again: it stays expired. Answered ones are 60322; unknown or another account's are 404.
    app.post(&format!("/_emulator/Challenges/{one}"), &[("Status", "expired")]).await.assert_status(200);
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges/{two}");
    let pending = app.get(&path).await;
    let fields: Vec<String> =
        pending.headers["twilio-verify-signature-fields"].to_str().unwrap().split(',').map(str::to_owned).collect();
    let answer =
        jwt::challenge_answer(&key, Style::Android, &fields, pending.body.as_object().unwrap(), "approved").unwrap();
    app.post(&path, &[("AuthPayload", &answer)]).await.assert_status(200);
    app.post(&format!("/_emulator/Challenges/{two}"), &[("Status", "expired")]).await.assert_error(403, 60322);
    let unknown = format!("YC{}", "0".repeat(32));
    app.post(&format!("/_emulator/Challenges/{unknown}"), &[("Status", "expired")]).await.assert_error(404, 20404);
    app.post("/_emulator/Challenges/not-a-sid", &[("Status", "expired")]).await.assert_error(404, 20404);
    let stranger = app
        .send(
            Method::POST,
            &format!("/_emulator/Challenges/{one}"),
            Some(&app.other_account),
            &[("Status", "expired")],
            &[],
            None,
        )
        .await;
    stranger.assert_error(404, 20404);
    for (form, why) in
        [(&[("Status", "approved")][..], "approved"), (&[][..], "missing"), (&[("Status", "gone")][..], "unknown")]
    {
        let message = app.post(&format!("/_emulator/Challenges/{one}"), form).await.assert_error(400, 60200);
        assert!(message.contains("Status"), "{why}: {message}");
    }
}

async fn reset_deletes_the_calling_account_s_data_only(app: TestApp) {
    let mine = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&mine, &user).await;
    app.challenge(&mine, &user, &factor).await;
    let theirs = app
        .send(Method::POST, "/v2/Services", Some(&app.other_account), &[("FriendlyName", "Theirs")], &[], None)
        .await;
    let theirs = theirs.assert_status(201)["sid"].as_str().unwrap().to_owned();

    let reply = app.send(Method::POST, "/_emulator/Reset", Some(&app.api_key), &[], &[], None).await;
    assert_eq!(reply.status.as_u16(), 204, "{}", reply.body);
    let services = app.get("/v2/Services").await;
    assert_eq!(services.assert_status(200)["services"], Value::Array(vec![]));
    let pushes = app.get("/_emulator/pushes").await;
    assert_eq!(pushes.body["pushes"], Value::Array(vec![]));
    // The account and its API key still work; the other account is untouched.
    app.send(Method::GET, "/v2/Services", Some(&app.api_key), &[], &[], None).await.assert_status(200);
    let kept = app.send(Method::GET, &format!("/v2/Services/{theirs}"), Some(&app.other_account), &[], &[], None).await;
    assert_eq!(kept.assert_status(200)["friendly_name"], "Theirs");
}

async fn with_controls_off_the_controls_are_unknown_paths(app: TestApp) {
    let challenge = format!("YC{}", "0".repeat(32));
    for (method, path) in [
        (Method::GET, "/_emulator/Clock".to_owned()),
        (Method::POST, "/_emulator/Clock".to_owned()),
        (Method::DELETE, "/_emulator/Clock".to_owned()),
        (Method::POST, format!("/_emulator/Challenges/{challenge}")),
        (Method::POST, "/_emulator/Reset".to_owned()),
    ] {
        let reply = app.send(method.clone(), &path, Some(&app.account), &[("Advance", "60")], &[], None).await;
        let message = reply.assert_error(404, 20404);
        assert!(message.contains(&path), "{method} {path}: {message}");
    }
    app.get("/_emulator/pushes").await.assert_status(200);
    app.get("/_emulator/webhook-deliveries").await.assert_status(200);
}

async fn a_clock_change_on_one_instance_reaches_the_other(backend: Backend) {
    let database_url = fresh_database(backend).await;
    let one = spawn_app_configured(backend, &database_url, |_| {}).await;
    let two = spawn_app_configured(backend, &database_url, |_| {}).await;
    clock(&one, &[("Advance", "7200")]).await.assert_status(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = two.get("/_emulator/Clock").await;
        if seen.body["offset_seconds"] == 7200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the other instance still reads {}", seen.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And back: a freeze on the second reaches the first.
    clock(&two, &[("Freeze", "true")]).await.assert_status(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while one.get("/_emulator/Clock").await.body["frozen"] != true {
        assert!(tokio::time::Instant::now() < deadline, "the freeze did not reach the first instance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
