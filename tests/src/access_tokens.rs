//! Access tokens: creation, fetch, the JWE's claims, parameter checks, and one key shared by
//! every instance on a database.

use verify_push_server::clock::Clock;
use verify_push_server::crypto::access_token::TokenKey;

use crate::helpers::{identity, on_both_backends, spawn_app_on, TestApp};

on_both_backends!(
    access_tokens_are_jwe_bound_to_service_identity_and_expiry,
    access_token_parameters_are_checked,
    every_instance_on_a_database_shares_the_token_key
);

/// The server's token key, as a server on this database loads it (key file or database).
async fn server_key(app: &TestApp) -> TokenKey {
    let mut args = verify_push_server::config::ServeArgs::defaults();
    args.database.database_url = app.database_url.clone();
    TokenKey::new(&verify_push_server::keys::load(&app.store, &args).await.unwrap().access_token)
}

async fn access_tokens_are_jwe_bound_to_service_identity_and_expiry(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let created = app
        .post(
            &format!("/v2/Services/{service}/AccessTokens"),
            &[("Identity", &user), ("FactorType", "push"), ("FactorFriendlyName", "Pixel"), ("Ttl", "120")],
        )
        .await;
    let body = created.assert_status(201).clone();
    let sid = body["sid"].as_str().unwrap();
    assert!(sid.starts_with("YK"));
    assert_eq!(body["entity_identity"], user.as_str());
    assert_eq!(body["factor_type"], "push");
    assert_eq!(body["factor_friendly_name"], "Pixel");
    assert_eq!(body["ttl"], 120);
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 5, "compact JWE");
    let claims = server_key(&app).await.open(token).expect("the server's key opens its token");
    assert_eq!(claims.jti, sid);
    assert_eq!(claims.service_sid, service);
    assert_eq!(claims.account_sid, app.account.user);
    assert_eq!(claims.identity, user);
    assert_eq!(claims.factor_type.as_str(), "push");
    assert_eq!(claims.factor_friendly_name.as_deref(), Some("Pixel"));
    assert_eq!(claims.exp - claims.iat, 120);
    assert_eq!(claims.iat, app.clock.now());

    let fetched = app.get(&format!("/v2/Services/{service}/AccessTokens/{sid}")).await;
    assert_eq!(fetched.assert_status(200), &body);
    let default =
        app.post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")]).await;
    assert_eq!(default.assert_status(201)["ttl"], 60);
    assert!(default.body["factor_friendly_name"].is_null());

    let other = app.service().await;
    app.get(&format!("/v2/Services/{other}/AccessTokens/{sid}")).await.assert_error(404, 20404);
}

async fn access_token_parameters_are_checked(app: TestApp) {
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/AccessTokens");
    let user = identity();
    let long_name = "n".repeat(65);
    for form in [
        vec![("FactorType", "push")],
        vec![("Identity", user.as_str())],
        vec![("Identity", user.as_str()), ("FactorType", "totp")],
        vec![("Identity", "short"), ("FactorType", "push")],
        vec![("Identity", user.as_str()), ("FactorType", "push"), ("Ttl", "59")],
        vec![("Identity", user.as_str()), ("FactorType", "push"), ("Ttl", "301")],
        vec![("Identity", user.as_str()), ("FactorType", "push"), ("Ttl", "1e2")],
        vec![("Identity", user.as_str()), ("FactorType", "push"), ("FactorFriendlyName", long_name.as_str())],
    ] {
        app.post(&path, &form).await.assert_error(400, 60305);
    }
}

async fn every_instance_on_a_database_shares_the_token_key(app: TestApp) {
    let second = spawn_app_on(app.backend, &app.database_url).await;
    let service = app.service().await;
    let created = app
        .post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &identity()), ("FactorType", "push")])
        .await;
    let token = created.assert_status(201)["token"].as_str().unwrap().to_owned();
    assert!(server_key(&second).await.open(&token).is_ok());
    // And the second instance serves the first's resources.
    let sid = created.body["sid"].as_str().unwrap();
    second.get(&format!("/v2/Services/{service}/AccessTokens/{sid}")).await.assert_status(200);
}
