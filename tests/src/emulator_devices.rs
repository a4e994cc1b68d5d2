//! Virtual devices over HTTP (`/_emulator/Devices`, README "Virtual devices"): enrolment in
//! both styles, with and without an access token; list, fetch, delete; approve, deny and
//! `latest`; the real errors (60318, 60322, 60323, 404s, 400s); a tampered key refused as a
//! client-crate device's is; a virtual and a client-crate device answering on one Service.

use serde_json::Value;
use verify_push_client::device::Connection;
use verify_push_client::{Device, DeviceError, Profile, Style};
use verify_push_server::store::Backend;

use crate::device::enrolled_device;
use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(
    virtual_devices_enrol_in_both_styles_as_ordinary_push_factors,
    virtual_devices_are_listed_fetched_and_unenrolled,
    virtual_devices_approve_deny_and_answer_the_latest,
    answers_get_the_real_errors,
    other_accounts_services_and_devices_are_not_found,
    a_tampered_key_is_refused_as_a_client_crate_device_s_is,
    virtual_and_client_crate_devices_answer_on_one_service,
);

const DEVICES: &str = "/_emulator/Devices";

/// Enrols a virtual device with `form` plus the Service and identity; returns its body.
async fn device(app: &TestApp, service: &str, user: &str, form: &[(&str, &str)]) -> Value {
    let mut full = vec![("ServiceSid", service), ("Identity", user)];
    full.extend_from_slice(form);
    app.post(DEVICES, &full).await.assert_status(201).clone()
}

fn sid(v: &Value) -> String {
    v["sid"].as_str().or(v["factor_sid"].as_str()).unwrap().to_owned()
}

/// A webhook at a closed port subscribed to every event: its deliveries record the events.
async fn record_events(app: &TestApp, service: &str) {
    app.expect_leftovers("the deliveries of a webhook at a closed port are read, never sent");
    let form = [("FriendlyName", "all"), ("EventTypes", "*"), ("WebhookUrl", "http://127.0.0.1:9/hook")];
    app.post(&format!("/v2/Services/{service}/Webhooks"), &form).await.assert_status(201);
}

/// The event types recorded for Factor `factor`, in order.
async fn events(app: &TestApp, factor: &str) -> Vec<String> {
    let reply = app.get("/_emulator/webhook-deliveries?PageSize=1000").await;
    let all = reply.assert_status(200)["webhook_deliveries"].as_array().unwrap().clone();
    all.iter().filter(|d| d["factor_sid"] == factor).map(|d| d["event_type"].as_str().unwrap().to_owned()).collect()
}

async fn virtual_devices_enrol_in_both_styles_as_ordinary_push_factors(app: TestApp) {
    let service = app.service().await;
    record_events(&app, &service).await;
    let push_token = "p".repeat(64);
    for (style, platform, sdk_version) in [("android", "fcm", "0.9.0"), ("ios", "apn", "3.0.2")] {
        // Without an access token (one is minted), with a push token.
        let user = identity();
        let form = [("Style", style), ("PushToken", push_token.as_str()), ("FriendlyName", "Ann's phone")];
        let body = device(&app, &service, &user, &form).await;
        let factor = sid(&body);
        assert_eq!(body["style"], style);
        assert_eq!(body["status"], "verified");
        assert_eq!(
            (body["service_sid"].as_str(), body["identity"].as_str()),
            (Some(service.as_str()), Some(user.as_str()))
        );
        assert_eq!(body["url"], format!("{}{DEVICES}/{factor}", app.url));
        let rest = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await;
        let rest = rest.assert_status(200);
        assert_eq!((rest["factor_type"].as_str(), rest["status"].as_str()), (Some("push"), Some("verified")));
        assert_eq!(rest["friendly_name"], "Ann's phone");
        assert_eq!(rest["config"]["notification_platform"], platform);
        assert_eq!(rest["config"]["notification_token"], push_token.as_str());
        assert_eq!(rest["config"]["sdk_version"], sdk_version);
        assert_eq!(events(&app, &factor).await, ["factor.created", "factor.verified"]);

        // With the backend's access token, no push token, unverified.
        let user = identity();
        let token = app
            .post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")])
            .await;
        let token = token.assert_status(201)["token"].as_str().unwrap().to_owned();
        let body =
            device(&app, &service, &user, &[("Style", style), ("AccessToken", &token), ("Verify", "false")]).await;
        assert_eq!(body["status"], "unverified");
        let factor = sid(&body);
        let rest = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await;
        assert_eq!(rest.assert_status(200)["config"]["notification_platform"], "none");
        assert_eq!(events(&app, &factor).await, ["factor.created"]);

        // An access token for another identity is refused as it is to a phone.
        let other = identity();
        app.post(DEVICES, &[("ServiceSid", &service), ("Identity", &other), ("AccessToken", &token)])
            .await
            .assert_error(401, 20003);
    }
}

async fn virtual_devices_are_listed_fetched_and_unenrolled(app: TestApp) {
    let (service, other_service) = (app.service().await, app.service().await);
    record_events(&app, &service).await;
    let (ann, bob) = (identity(), identity());
    let first = sid(&device(&app, &service, &ann, &[]).await);
    let second = sid(&device(&app, &service, &bob, &[("Style", "ios")]).await);
    let third = sid(&device(&app, &other_service, &ann, &[]).await);

    let all = app.get(&format!("{DEVICES}?ServiceSid={service}&PageSize=1")).await;
    let all = all.assert_status(200);
    assert_eq!(all["devices"].as_array().unwrap().iter().map(sid).collect::<Vec<_>>(), [first.as_str()]);
    let next = all["meta"]["next_page_url"].as_str().unwrap().to_owned();
    assert!(next.contains(&format!("ServiceSid={service}")), "{next}");
    let page2 = app.get(&next).await;
    assert_eq!(
        page2.assert_status(200)["devices"].as_array().unwrap().iter().map(sid).collect::<Vec<_>>(),
        [second.as_str()]
    );
    assert!(page2.body["meta"]["next_page_url"].is_null());
    let anns = app.get(&format!("{DEVICES}?Identity={ann}")).await;
    let anns: Vec<String> = anns.assert_status(200)["devices"].as_array().unwrap().iter().map(sid).collect();
    assert_eq!(anns, [first.clone(), third.clone()]);

    let fetched = app.get(&format!("{DEVICES}/{second}")).await;
    let fetched = fetched.assert_status(200);
    assert_eq!((fetched["style"].as_str(), fetched["identity"].as_str()), (Some("ios"), Some(bob.as_str())));

    // Unenrolling deletes the Factor through the device's own signed DELETE.
    app.delete(&format!("{DEVICES}/{first}")).await.assert_status(204);
    app.get(&format!("{DEVICES}/{first}")).await.assert_error(404, 20404);
    app.get(&format!("/v2/Services/{service}/Entities/{ann}/Factors/{first}")).await.assert_error(404, 20404);
    assert_eq!(events(&app, &first).await, ["factor.created", "factor.verified", "factor.deleted"]);
    app.delete(&format!("{DEVICES}/{first}")).await.assert_error(404, 20404);

    // The Factor deleted by the backend, or its Entity, or its Service: the device is gone too.
    app.delete(&format!("/v2/Services/{service}/Entities/{bob}/Factors/{second}")).await.assert_status(204);
    app.get(&format!("{DEVICES}/{second}")).await.assert_error(404, 20404);
    let fourth = sid(&device(&app, &service, &bob, &[]).await);
    app.delete(&format!("/v2/Services/{service}/Entities/{bob}")).await.assert_status(204);
    app.get(&format!("{DEVICES}/{fourth}")).await.assert_error(404, 20404);
    app.delete(&format!("/v2/Services/{other_service}")).await.assert_status(204);
    app.get(&format!("{DEVICES}/{third}")).await.assert_error(404, 20404);
    let left = app.get(DEVICES).await;
    assert_eq!(left.assert_status(200)["devices"].as_array().map(Vec::len), Some(0));
}

async fn virtual_devices_approve_deny_and_answer_the_latest(app: TestApp) {
    let service = app.service().await;
    record_events(&app, &service).await;
    for style in ["android", "ios"] {
        let user = identity();
        let factor = sid(&device(&app, &service, &user, &[("Style", style)]).await);
        let base = format!("{DEVICES}/{factor}/Challenges");
        app.post(&format!("{base}/latest"), &[("Status", "approved")]).await.assert_error(404, 20404);

        let first = sid(&app.challenge(&service, &user, &factor).await);
        let second = sid(&app.challenge(&service, &user, &factor).await);
        let third = sid(&app.challenge(&service, &user, &factor).await);
        let approved = app.post(&format!("{base}/{first}"), &[("Status", "approved")]).await;
        assert_eq!(approved.assert_status(200)["status"], "approved");
        assert_eq!(approved.body["sid"], first.as_str());
        // `latest` is the newest pending one.
        let denied = app.post(&format!("{base}/latest"), &[("Status", "denied")]).await;
        assert_eq!(
            (denied.assert_status(200)["sid"].as_str(), denied.body["status"].as_str()),
            (Some(third.as_str()), Some("denied"))
        );
        let latest = app.post(&format!("{base}/latest"), &[("Status", "approved")]).await;
        assert_eq!(latest.assert_status(200)["sid"], second.as_str());

        // As the backend sees them.
        for (challenge, status) in [(&first, "approved"), (&second, "approved"), (&third, "denied")] {
            let rest = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{challenge}")).await;
            assert_eq!(rest.assert_status(200)["status"], status);
        }
        // The device's view: its Challenges, filtered and ordered as the SDK asks.
        let listed = app.get(&format!("{base}?Status=approved&Order=desc")).await;
        let listed: Vec<String> = listed.assert_status(200)["challenges"].as_array().unwrap().iter().map(sid).collect();
        assert_eq!(listed, [second.clone(), first.clone()]);
        let kinds = events(&app, &factor).await;
        let answers: Vec<&str> = kinds.iter().map(String::as_str).filter(|k| k.starts_with("challenge.")).collect();
        assert_eq!(answers, ["challenge.approved", "challenge.denied", "challenge.approved"]);
    }
}

async fn answers_get_the_real_errors(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let factor = sid(&device(&app, &service, &user, &[]).await);
    let base = format!("{DEVICES}/{factor}/Challenges");
    let challenge = sid(&app.challenge(&service, &user, &factor).await);
    app.post(&format!("{base}/{challenge}"), &[("Status", "approved")]).await.assert_status(200);
    app.post(&format!("{base}/{challenge}"), &[("Status", "denied")]).await.assert_error(403, 60322);

    let expiring = sid(&app.challenge(&service, &user, &factor).await);
    app.clock.advance(301);
    app.post(&format!("{base}/{expiring}"), &[("Status", "approved")]).await.assert_error(403, 60323);
    let rest = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{expiring}")).await;
    assert_eq!(rest.assert_status(200)["status"], "expired");

    // An unverified device: its answers are refused 60318, as the server refuses them.
    let unverified = sid(&device(&app, &service, &identity(), &[("Verify", "false")]).await);
    let reply = app.post(&format!("{DEVICES}/{unverified}/Challenges/latest"), &[("Status", "approved")]).await;
    reply.assert_error(403, 60318);

    for (form, name) in
        [(vec![("Status", "expired")], "Status"), (vec![("Status", "Approved")], "Status"), (vec![], "Status")]
    {
        let message = app.post(&format!("{base}/latest"), &form).await.assert_error(400, 60200);
        assert!(message.contains(name), "{message}");
    }
    for (form, name) in [
        (vec![("Style", "windows")], "Style"),
        (vec![("Verify", "maybe")], "Verify"),
        (vec![("PushToken", "short")], "PushToken"),
        (vec![("Identity", "no")], "Identity"),
    ] {
        let mut full = vec![("ServiceSid", service.as_str()), ("Identity", "user-000001")];
        full.retain(|(n, _)| !form.iter().any(|(m, _)| m == n));
        full.extend(form);
        let message = app.post(DEVICES, &full).await.assert_error(400, 60200);
        assert!(message.contains(name), "{name}: {message}");
    }
    let message =
        app.post(DEVICES, &[("ServiceSid", "XX1"), ("Identity", "user-000001")]).await.assert_error(400, 60200);
    assert!(message.contains("ServiceSid"), "{message}");
    let unknown = format!("VA{}", "0".repeat(32));
    app.post(DEVICES, &[("ServiceSid", &unknown), ("Identity", "user-000001")]).await.assert_error(404, 20404);
}

async fn other_accounts_services_and_devices_are_not_found(app: TestApp) {
    let service = app.service().await;
    let (ann, bob) = (identity(), identity());
    let anns = sid(&device(&app, &service, &ann, &[]).await);
    let anns_second = sid(&device(&app, &service, &ann, &[]).await);
    let bobs = sid(&device(&app, &service, &bob, &[]).await);
    let bobs_challenge = sid(&app.challenge(&service, &bob, &bobs).await);
    let sibling_challenge = sid(&app.challenge(&service, &ann, &anns_second).await);

    // Another device's Challenge, of another identity or of the same one.
    for challenge in [&bobs_challenge, &sibling_challenge] {
        let reply = app.post(&format!("{DEVICES}/{anns}/Challenges/{challenge}"), &[("Status", "approved")]).await;
        reply.assert_error(404, 20404);
    }
    let unknown = format!("YC{}", "0".repeat(32));
    for challenge in [unknown.as_str(), "YC1", "not-a-sid"] {
        let reply = app.post(&format!("{DEVICES}/{anns}/Challenges/{challenge}"), &[("Status", "approved")]).await;
        reply.assert_error(404, 20404);
    }
    for path in [format!("{DEVICES}/YF1"), format!("{DEVICES}/YF{}", "0".repeat(32))] {
        app.get(&path).await.assert_error(404, 20404);
    }

    // Another account: nothing of this one is found, and its Service is not usable.
    let other = app.other_account.clone();
    let as_other = |method, path: String, form: Vec<(&'static str, String)>| {
        let other = other.clone();
        let app = &app;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
            app.send(method, &path, Some(&other), &form, &[], None).await
        }
    };
    let get = reqwest::Method::GET;
    as_other(get.clone(), format!("{DEVICES}/{anns}"), vec![]).await.assert_error(404, 20404);
    as_other(get.clone(), format!("{DEVICES}/{bobs}/Challenges"), vec![]).await.assert_error(404, 20404);
    as_other(reqwest::Method::DELETE, format!("{DEVICES}/{anns}"), vec![]).await.assert_error(404, 20404);
    let answer = vec![("Status", "approved".to_owned())];
    as_other(reqwest::Method::POST, format!("{DEVICES}/{bobs}/Challenges/{bobs_challenge}"), answer)
        .await
        .assert_error(404, 20404);
    let enrol = vec![("ServiceSid", service.clone()), ("Identity", identity())];
    as_other(reqwest::Method::POST, DEVICES.to_owned(), enrol).await.assert_error(404, 20404);
    let listed = as_other(get, DEVICES.to_owned(), vec![]).await;
    assert_eq!(listed.assert_status(200)["devices"].as_array().map(Vec::len), Some(0));
    // Nothing changed: the Challenge is still pending.
    let rest = app.get(&format!("/v2/Services/{service}/Entities/{bob}/Challenges/{bobs_challenge}")).await;
    assert_eq!(rest.assert_status(200)["status"], "pending");
}

/// Runs one statement on the test's database.
async fn execute(app: &TestApp, sql: &str, args: &[&str]) {
    use sqlx::Connection;
    match app.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
            let mut query = sqlx::query(sql);
            for a in args {
                query = query.bind(*a);
            }
            assert_eq!(query.execute(&mut conn).await.unwrap().rows_affected(), 1);
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
            let mut query = sqlx::query(sql);
            for a in args {
                query = query.bind(*a);
            }
            assert_eq!(query.execute(&mut conn).await.unwrap().rows_affected(), 1);
        }
    }
}

async fn a_tampered_key_is_refused_as_a_client_crate_device_s_is(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let tampered = sid(&device(&app, &service, &user, &[]).await);
    let donor = sid(&device(&app, &service, &identity(), &[]).await);
    let challenge = sid(&app.challenge(&service, &user, &tampered).await);
    // Another valid key, sealed as the server seals keys: the donor device's.
    execute(
        &app,
        "UPDATE virtual_devices SET sealed_key = (SELECT sealed_key FROM virtual_devices WHERE factor_sid = $2) \
         WHERE factor_sid = $1",
        &[&tampered, &donor],
    )
    .await;
    let virtual_reply =
        app.post(&format!("{DEVICES}/{tampered}/Challenges/{challenge}"), &[("Status", "approved")]).await;
    virtual_reply.assert_error(401, 20003);

    // A client-crate device whose key is swapped the same way gets the same refusal.
    let (client_service, client) = enrolled_device(&app, Style::Android, 0).await;
    let client_user = client.profile.identity.clone();
    let client_factor = client.profile.factor_sid.clone().unwrap();
    let client_challenge = sid(&app.challenge(&client_service, &client_user, &client_factor).await);
    let mut profile = serde_json::to_value(&client.profile).unwrap();
    let other =
        serde_json::to_value(Profile::new("other", &app.url, Style::Android, &client_service, &client_user)).unwrap();
    profile["private_key"] = other["private_key"].clone();
    let profile: Profile = serde_json::from_value(profile).unwrap();
    let mut swapped = Device::new(profile, None, &Connection { ca_cert_pem: None, clock_error: 0 }).unwrap();
    match swapped.approve(&client_challenge).await {
        Err(DeviceError::Api { status, code, .. }) => assert_eq!((status, code), (401, Some(20003))),
        other => panic!("the swapped key was not refused: {other:?}"),
    }

    // Neither answer changed anything.
    for (service, user, challenge) in
        [(&service, &user, &challenge), (&client_service, &client_user, &client_challenge)]
    {
        let rest = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{challenge}")).await;
        assert_eq!(rest.assert_status(200)["status"], "pending");
    }
}

async fn virtual_and_client_crate_devices_answer_on_one_service(app: TestApp) {
    let (service, mut client) = enrolled_device(&app, Style::Ios, 0).await;
    let client_user = client.profile.identity.clone();
    let client_factor = client.profile.factor_sid.clone().unwrap();
    let user = identity();
    let factor = sid(&device(&app, &service, &user, &[("Style", "ios")]).await);
    let theirs = sid(&app.challenge(&service, &client_user, &client_factor).await);
    let ours = sid(&app.challenge(&service, &user, &factor).await);

    let approved = app.post(&format!("{DEVICES}/{factor}/Challenges/{ours}"), &[("Status", "approved")]).await;
    assert_eq!(approved.assert_status(200)["status"], "approved");
    assert_eq!(client.deny(&theirs).await.unwrap().status, "denied");
    // Each answers only its own.
    let reply = app.post(&format!("{DEVICES}/{factor}/Challenges/{theirs}"), &[("Status", "approved")]).await;
    reply.assert_error(404, 20404);
    for (user, challenge, status) in [(&user, &ours, "approved"), (&client_user, &theirs, "denied")] {
        let rest = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{challenge}")).await;
        assert_eq!(rest.assert_status(200)["status"], status);
    }
}
