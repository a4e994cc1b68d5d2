//! Services: create, fetch, update, list, delete, settings and cascade.

use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(
    services_are_created_fetched_updated_and_deleted,
    service_settings_are_validated_and_echoed,
    deleting_a_service_removes_everything_beneath_it,
);

async fn services_are_created_fetched_updated_and_deleted(app: TestApp) {
    let created = app
        .post(
            "/v2/Services",
            &[
                ("FriendlyName", "Owl Bank"),
                ("Push.IncludeDate", "false"),
                ("Totp.Issuer", "Owl"),
                ("Totp.TimeStep", "30"),
            ],
        )
        .await;
    let body = created.assert_status(201).clone();
    let sid = body["sid"].as_str().unwrap();
    assert!(sid.starts_with("VA") && sid.len() == 34);
    assert_eq!(body["account_sid"], app.account.user.as_str());
    assert_eq!(body["friendly_name"], "Owl Bank");
    assert_eq!(body["push"]["include_date"], false);
    assert_eq!(body["totp"]["issuer"], "Owl");
    assert_eq!(body["totp"]["time_step"], 30);
    assert!(body["totp"]["skew"].is_null(), "unset totp settings stay null: {body}");
    assert_eq!(body["url"], format!("{}/v2/Services/{sid}", app.url));
    assert_eq!(body["links"]["entities"], format!("{}/v2/Services/{sid}/Entities", app.url));

    let fetched = app.get(&format!("/v2/Services/{sid}")).await;
    assert_eq!(fetched.assert_status(200), &body);

    app.clock.advance(5);
    let updated =
        app.post(&format!("/v2/Services/{sid}"), &[("FriendlyName", "Owl Bank 2"), ("Push.IncludeDate", "true")]).await;
    let updated = updated.assert_status(200);
    assert_eq!(updated["friendly_name"], "Owl Bank 2");
    assert_eq!(updated["push"]["include_date"], true);
    assert_eq!(updated["totp"]["issuer"], "Owl", "untouched settings keep their value");
    assert_ne!(updated["date_updated"], updated["date_created"]);

    assert_eq!(app.delete(&format!("/v2/Services/{sid}")).await.status, 204);
    app.get(&format!("/v2/Services/{sid}")).await.assert_error(404, 20404);
    app.delete(&format!("/v2/Services/{sid}")).await.assert_error(404, 20404);
}

async fn service_settings_are_validated_and_echoed(app: TestApp) {
    let cases: &[(&str, &str)] = &[
        ("FriendlyName", &"x".repeat(33)),
        ("FriendlyName", "   "),
        ("Push.IncludeDate", "yes"),
        ("Push.ApnCredentialSid", "XX00000000000000000000000000000000"),
        ("Push.FcmCredentialSid", "CR123"),
        ("Totp.TimeStep", "19"),
        ("Totp.TimeStep", "61"),
        ("Totp.CodeLength", "9"),
        ("Totp.Skew", "3"),
        ("Totp.Skew", "one"),
        ("CodeLength", "3"),
    ];
    for (name, value) in cases {
        let form: Vec<(&str, &str)> =
            if *name == "FriendlyName" { vec![(name, value)] } else { vec![("FriendlyName", "ok"), (name, value)] };
        let reply = app.post("/v2/Services", &form).await;
        let message = reply.assert_error(400, 60200);
        assert!(message.contains(name), "{name}={value}: {message}");
    }
    app.post("/v2/Services", &[]).await.assert_error(400, 60200);
    let p8 = include_str!("../fixtures/apns-token-key.p8");
    let credential = app
        .post(
            "/v1/Credentials",
            &[("Type", "apn"), ("PrivateKey", p8), ("KeyId", "ABC123DEFG"), ("TeamId", "TEAM123456")],
        )
        .await;
    let credential = credential.assert_status(201)["sid"].as_str().unwrap().to_owned();
    let body = app
        .post(
            "/v2/Services",
            &[
                ("FriendlyName", "x".repeat(32).as_str()),
                ("Push.ApnCredentialSid", &credential),
                ("Totp.CodeLength", "8"),
                ("Totp.Skew", "0"),
                ("CodeLength", "8"),
                ("Psd2Enabled", "true"),
            ],
        )
        .await;
    let body = body.assert_status(201);
    assert_eq!(body["push"]["apn_credential_sid"], credential.as_str());
    assert_eq!(body["totp"]["code_length"], 8);
    assert_eq!(body["totp"]["skew"], 0);
    assert_eq!(body["code_length"], 8);
    assert_eq!(body["psd2_enabled"], true);
}

async fn deleting_a_service_removes_everything_beneath_it(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let challenge = app.challenge(&service, &user, &factor).await;
    let hook = app
        .post(
            &format!("/v2/Services/{service}/Webhooks"),
            &[("FriendlyName", "h"), ("EventTypes", "*"), ("WebhookUrl", "https://example.com/h")],
        )
        .await;
    let hook = hook.assert_status(201)["sid"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/v2/Services/{service}")).await.status, 204);
    for path in [
        format!("/v2/Services/{service}/Entities/{user}"),
        format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}"),
        format!("/v2/Services/{service}/Entities/{user}/Challenges/{}", challenge["sid"].as_str().unwrap()),
        format!("/v2/Services/{service}/Webhooks/{hook}"),
    ] {
        app.get(&path).await.assert_error(404, 20404);
    }
}
