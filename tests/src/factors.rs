//! Push Factors from the backend: creation (and the implicit Entity), binding validation,
//! limits, verification with a real signature, update, list, delete.

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};

use crate::helpers::{identity, on_both_backends, spki_base64, TestApp};

on_both_backends!(
    creating_a_factor_creates_its_entity_and_returns_binding_once,
    factors_verify_only_with_a_signature_of_their_own_key,
    factors_are_updated_listed_and_deleted,
    factor_creation_enforces_binding_config_and_limits,
);

fn factor_form<'a>(key: &'a str, token: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("FriendlyName", "Pixel 8"),
        ("FactorType", "push"),
        ("Binding.Alg", "ES256"),
        ("Binding.PublicKey", key),
        ("Config.SdkVersion", "0.9.0"),
        ("Config.AppId", "com.example.app"),
        ("Config.NotificationPlatform", "fcm"),
        ("Config.NotificationToken", token),
    ]
}

async fn creating_a_factor_creates_its_entity_and_returns_binding_once(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    app.get(&format!("/v2/Services/{service}/Entities/{user}")).await.assert_error(404, 20404);
    let key = spki_base64(&SigningKey::from_slice(&[9; 32]).unwrap());
    let token = "f".repeat(64);
    let mut form = factor_form(&key, &token);
    form.push(("Metadata", r#"{"os": "Android", "model": "Pixel"}"#));
    let created = app.post(&format!("/v2/Services/{service}/Entities/{user}/Factors"), &form).await;
    let body = created.assert_status(201).clone();
    let sid = body["sid"].as_str().unwrap();
    assert!(sid.starts_with("YF"));
    assert_eq!(body["status"], "unverified");
    assert_eq!(body["factor_type"], "push");
    assert_eq!(body["binding"]["alg"], "ES256");
    assert_eq!(body["binding"]["public_key"], key.as_str());
    assert!(body["options"].is_null());
    assert_eq!(body["config"]["notification_platform"], "fcm");
    assert_eq!(body["config"]["notification_token"], token.as_str());
    assert_eq!(body["config"]["app_id"], "com.example.app");
    assert_eq!(body["config"]["sdk_version"], "0.9.0");
    let credential = body["config"]["credential_sid"].as_str().unwrap();
    assert!(credential.starts_with("CR") && credential.len() == 34, "the SDKs need config.credential_sid");
    assert_eq!(body["metadata"], serde_json::json!({"os": "Android", "model": "Pixel"}));

    let entity = app.get(&format!("/v2/Services/{service}/Entities/{user}")).await;
    assert_eq!(entity.assert_status(200)["sid"], body["entity_sid"]);

    let fetched = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{sid}")).await;
    let fetched = fetched.assert_status(200);
    assert!(fetched.get("binding").is_none(), "binding is only in the create response: {fetched}");
    assert_eq!(fetched["config"]["credential_sid"], credential, "credential_sid is stable");
}

async fn factors_verify_only_with_a_signature_of_their_own_key(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (sid, key) = app.unverified_factor(&service, &user).await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors/{sid}");
    let b64 = |sig: DerSignature| base64::engine::general_purpose::STANDARD.encode(sig.as_bytes());
    let stranger = SigningKey::from_slice(&[5; 32]).unwrap();
    for (why, payload) in [
        ("another key's signature", b64(stranger.sign(sid.as_bytes()))),
        ("a signature over other bytes", b64(key.sign(b"YF00000000000000000000000000000000"))),
        ("not base64", "***".to_owned()),
        ("empty", String::new()),
    ] {
        let reply = app.post(&path, &[("AuthPayload", &payload)]).await;
        reply.assert_error(403, 60311);
        let status = app.get(&path).await.body["status"].clone();
        assert_eq!(status, "unverified", "{why} must not verify");
    }
    app.post(
        &format!("/v2/Services/{service}/Entities/{user}/Challenges"),
        &[("FactorSid", &sid), ("Details.Message", "hi")],
    )
    .await
    .assert_error(403, 60318);
    let reply = app.post(&path, &[("AuthPayload", &b64(key.sign(sid.as_bytes())))]).await;
    assert_eq!(reply.assert_status(200)["status"], "verified");
}

async fn factors_are_updated_listed_and_deleted(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (first, _) = app.unverified_factor(&service, &user).await;
    let (second, _) = app.unverified_factor(&service, &user).await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors/{first}");
    let new_token = "n".repeat(40);
    let updated = app
        .post(
            &path,
            &[
                ("FriendlyName", "Work phone"),
                ("Config.NotificationToken", &new_token),
                ("Config.SdkVersion", "1.0.0"),
                ("Config.SomethingNewer", "ignored"),
            ],
        )
        .await;
    let updated = updated.assert_status(200);
    assert_eq!(updated["friendly_name"], "Work phone");
    assert_eq!(updated["config"]["notification_token"], new_token.as_str());
    assert_eq!(updated["config"]["sdk_version"], "1.0.0");
    app.post(&path, &[("Config.NotificationToken", "short")]).await.assert_error(400, 60200);
    app.post(&path, &[("FriendlyName", &"x".repeat(65))]).await.assert_error(400, 60200);
    app.post(&path, &[("Config.NotificationPlatform", "sms")]).await.assert_error(400, 60200);

    let list = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors")).await;
    let sids: Vec<&str> =
        list.assert_status(200)["factors"].as_array().unwrap().iter().map(|f| f["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, vec![first.as_str(), second.as_str()]);

    assert_eq!(app.delete(&path).await.status, 204);
    app.get(&path).await.assert_error(404, 20404);
    app.delete(&path).await.assert_error(404, 20404);
    app.get(&format!("/v2/Services/{service}/Entities/nobody-here/Factors")).await.assert_error(404, 20404);
}

async fn factor_creation_enforces_binding_config_and_limits(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let path = format!("/v2/Services/{service}/Entities/{user}/Factors");
    let key = spki_base64(&SigningKey::from_slice(&[3; 32]).unwrap());
    let token = "t".repeat(40);
    let with = |name: &'static str, value: &'static str| {
        let mut form = factor_form(&key, &token);
        form.retain(|(n, _)| *n != name);
        if !value.is_empty() {
            form.push((name, value));
        }
        form
    };
    // (form, status, code)
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, u64);
    let cases: Vec<Case> = vec![
        (with("Binding.PublicKey", "dGVzdF9rZXk="), 400, 60314),
        (with("Binding.PublicKey", ""), 400, 60314),
        (with("Binding.Alg", "RS256"), 400, 60314),
        (with("FactorType", "totp"), 400, 60200),
        (with("FactorType", "sms"), 400, 60200),
        (with("FriendlyName", ""), 400, 60200),
        (with("Config.AppId", ""), 400, 60200),
        (with("Config.SdkVersion", ""), 400, 60200),
        (with("Config.NotificationPlatform", "webpush"), 400, 60200),
        (with("Config.NotificationToken", ""), 400, 60200),
        (with("Config.NotificationToken", "too-short"), 400, 60200),
        (with("Metadata", r#"{"os": 1}"#), 400, 60200),
        (with("Metadata", "not json"), 400, 60200),
    ];
    for (form, status, code) in &cases {
        app.post(&path, form).await.assert_error(*status, *code);
    }
    // Nothing was written: the entity was not even created.
    app.get(&format!("/v2/Services/{service}/Entities/{user}")).await.assert_error(404, 20404);

    // A factor on platform `none` needs no token.
    let mut none = with("Config.NotificationToken", "");
    none.retain(|(n, _)| *n != "Config.NotificationPlatform");
    none.push(("Config.NotificationPlatform", "none"));
    let created = app.post(&path, &none).await;
    assert!(created.assert_status(201)["config"]["notification_token"].is_null());
    // The same key twice on one entity is a duplicate.
    app.post(&path, &none).await.assert_error(409, 60317);

    for i in 1..20u8 {
        let key = spki_base64(&SigningKey::from_slice(&[i + 100; 32]).unwrap());
        app.post(&path, &factor_form(&key, &token)).await.assert_status(201);
    }
    let key = spki_base64(&SigningKey::from_slice(&[200; 32]).unwrap());
    app.post(&path, &factor_form(&key, &token)).await.assert_error(400, 60315);
}
