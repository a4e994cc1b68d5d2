//! Challenges from the backend: creation with details, validation, list filters and order,
//! expiry (lazy and swept).

use serde_json::json;
use verify_push_server::clock::Clock;

use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(
    challenges_carry_details_fields_and_hidden_details,
    challenge_creation_validates_every_parameter,
    challenges_list_by_factor_and_status_in_either_order,
    challenges_past_their_expiration_read_as_expired,
);

async fn challenges_carry_details_fields_and_hidden_details(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges");
    let expires = verify_push_server::domain::dates::format(app.clock.now() + 600);
    let created = app
        .post(
            &path,
            &[
                ("FactorSid", &factor),
                ("ExpirationDate", &expires),
                ("Details.Message", "Hi! Would you like to sign in?"),
                // python's json.dumps adds spaces; node's JSON.stringify does not.
                ("Details.Fields", r#"{"label": "Action", "value": "Sign in"}"#),
                ("Details.Fields", r#"{"label":"Location","value":"Berlin"}"#),
                ("HiddenDetails", r#"{"ip": "172.168.1.234"}"#),
            ],
        )
        .await;
    let body = created.assert_status(201).clone();
    let sid = body["sid"].as_str().unwrap();
    assert!(sid.starts_with("YC"));
    assert_eq!(body["status"], "pending");
    assert_eq!(body["responded_reason"], "none");
    assert_eq!(body["factor_sid"], factor.as_str());
    assert_eq!(body["factor_type"], "push");
    assert_eq!(body["expiration_date"], expires.as_str());
    assert!(body["date_responded"].is_null());
    assert_eq!(
        body["details"],
        json!({"message": "Hi! Would you like to sign in?", "fields": [
            {"label": "Action", "value": "Sign in"}, {"label": "Location", "value": "Berlin"}]})
    );
    assert_eq!(body["hidden_details"], json!({"ip": "172.168.1.234"}));
    assert!(body["metadata"].is_null());
    assert_eq!(body["links"]["notifications"], format!("{}{path}/{sid}/Notifications", app.url));
    assert_eq!(app.get(&format!("{path}/{sid}")).await.assert_status(200), &body);

    // Default expiry is five minutes; Push.IncludeDate adds details.date.
    app.post(&format!("/v2/Services/{service}"), &[("Push.IncludeDate", "true")]).await.assert_status(200);
    let plain = app.post(&path, &[("FactorSid", &factor), ("Details.Message", "m")]).await;
    let plain = plain.assert_status(201);
    let now = verify_push_server::domain::dates::format(app.clock.now());
    assert_eq!(plain["expiration_date"], verify_push_server::domain::dates::format(app.clock.now() + 300));
    assert_eq!(plain["details"], json!({"message": "m", "date": now, "fields": []}));
}

async fn challenge_creation_validates_every_parameter(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges");
    let now = app.clock.now();
    let late = verify_push_server::domain::dates::format(now + 3601);
    let past = verify_push_server::domain::dates::format(now - 1);
    let base = vec![("FactorSid", factor.as_str()), ("Details.Message", "m")];
    // Each case replaces (or, for the repeated Details.Fields, adds) one parameter; an empty
    // value removes it. Every one is 400 / 60200 naming the parameter.
    let cases: Vec<(&str, String)> = vec![
        ("FactorSid", String::new()),
        ("FactorSid", "XX00000000000000000000000000000000".into()),
        ("Details.Message", String::new()),
        ("Details.Message", "m".repeat(257)),
        ("ExpirationDate", late),
        ("ExpirationDate", past),
        ("ExpirationDate", "soon".into()),
        ("Details.Fields", "nope".into()),
        ("Details.Fields", format!(r#"{{"label": "{}", "value": "v"}}"#, "l".repeat(37))),
        ("Details.Fields", r#"{"label": "a"}"#.into()),
        ("HiddenDetails", r#"{"n": 1}"#.into()),
        ("HiddenDetails", format!(r#"{{"k": "{}"}}"#, "h".repeat(1100))),
        ("AuthPayload", "123456".into()),
    ];
    for (name, value) in &cases {
        let mut form: Vec<(&str, &str)> = base.iter().copied().filter(|(n, _)| n != name).collect();
        if !value.is_empty() {
            form.push((name, value));
        }
        let message = app.post(&path, &form).await.assert_error(400, 60200);
        assert!(message.contains(name), "{message} should name {name}");
    }
    let fields: Vec<(&str, String)> =
        (0..21).map(|i| ("Details.Fields", format!(r#"{{"label":"l{i}","value":"v"}}"#))).collect();
    let mut form: Vec<(&str, &str)> = base.clone();
    form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
    app.post(&path, &form).await.assert_error(400, 60200);
    // Another entity's factor is not this entity's.
    let other = identity();
    app.post(&format!("/v2/Services/{service}/Entities/{other}"), &[]).await;
    app.post(&format!("/v2/Services/{service}/Entities/{other}/Challenges"), &base).await.assert_error(404, 20404);
    // Nothing was stored by any refused request.
    let list = app.get(&path).await;
    assert_eq!(list.assert_status(200)["challenges"], json!([]));
}

async fn challenges_list_by_factor_and_status_in_either_order(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (a, _) = app.verified_factor(&service, &user).await;
    let (b, _) = app.verified_factor(&service, &user).await;
    let mut of_a = Vec::new();
    for i in 0..4 {
        let factor = if i % 2 == 0 { &a } else { &b };
        let c = app.challenge(&service, &user, factor).await;
        if factor == &a {
            of_a.push(c["sid"].as_str().unwrap().to_owned());
        }
    }
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges");
    let sids = |reply: &crate::helpers::Reply| -> Vec<String> {
        reply.body["challenges"].as_array().unwrap().iter().map(|c| c["sid"].as_str().unwrap().to_owned()).collect()
    };
    let asc = app.get(&format!("{path}?FactorSid={a}&Status=pending")).await;
    asc.assert_status(200);
    assert_eq!(sids(&asc), of_a);
    let desc = app.get(&format!("{path}?FactorSid={a}&Status=pending&Order=desc&PageSize=1")).await;
    assert_eq!(sids(&desc), vec![of_a[1].clone()]);
    let next = desc.body["meta"]["next_page_url"].as_str().unwrap();
    assert!(next.contains(&format!("FactorSid={a}")) && next.contains("Order=desc") && next.contains("Status=pending"));
    assert_eq!(sids(&app.get(next).await), vec![of_a[0].clone()]);
    assert_eq!(sids(&app.get(&format!("{path}?Status=approved")).await), Vec::<String>::new());
    assert_eq!(sids(&app.get(&path).await).len(), 4);
    app.get(&format!("{path}?Status=done")).await.assert_error(400, 60200);
    app.get(&format!("{path}?Order=up")).await.assert_error(400, 60200);
    app.get(&format!("{path}?FactorSid=nope")).await.assert_error(400, 60200);
}

async fn challenges_past_their_expiration_read_as_expired(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let c = app.challenge(&service, &user, &factor).await;
    let sid = c["sid"].as_str().unwrap();
    let path = format!("/v2/Services/{service}/Entities/{user}/Challenges");
    app.clock.advance(299);
    assert_eq!(app.get(&format!("{path}/{sid}")).await.body["status"], "pending");
    app.clock.advance(1);
    assert_eq!(app.get(&format!("{path}/{sid}")).await.body["status"], "expired", "lazily, before any sweep");
    let pending = app.get(&format!("{path}?Status=pending")).await;
    assert_eq!(pending.body["challenges"], json!([]));
    let expired = app.get(&format!("{path}?Status=expired")).await;
    assert_eq!(expired.body["challenges"][0]["sid"], sid);
    assert_eq!(app.sweep_and_drain().await.expired_challenges, 1);
    assert_eq!(app.sweep_and_drain().await.expired_challenges, 0, "the sweep wrote the status");
    let after = app.get(&format!("{path}?Status=expired")).await;
    assert_eq!(after.body["challenges"][0]["status"], "expired");
}
