//! Entities: create, fetch, list, delete; duplicates and cascade.

use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(
    entities_are_created_fetched_and_deleted,
    deleting_an_entity_removes_its_factors_and_challenges,
    entity_identities_are_validated,
);

async fn entities_are_created_fetched_and_deleted(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let created = app.post(&format!("/v2/Services/{service}/Entities"), &[("Identity", &user)]).await;
    let body = created.assert_status(201).clone();
    assert!(body["sid"].as_str().unwrap().starts_with("YE"));
    assert_eq!(body["identity"], user.as_str());
    assert_eq!(body["service_sid"], service.as_str());
    let entity_url = format!("{}/v2/Services/{service}/Entities/{user}", app.url);
    assert_eq!(body["url"], entity_url.as_str());
    assert_eq!(body["links"]["factors"], format!("{entity_url}/Factors"));
    assert_eq!(body["links"]["new_factors"], format!("{entity_url}/Factors"));
    assert_eq!(body["links"]["challenges"], format!("{entity_url}/Challenges"));

    app.post(&format!("/v2/Services/{service}/Entities"), &[("Identity", &user)]).await.assert_error(409, 60301);
    assert_eq!(app.get(&format!("/v2/Services/{service}/Entities/{user}")).await.assert_status(200), &body);

    let list = app.get(&format!("/v2/Services/{service}/Entities")).await;
    assert_eq!(list.assert_status(200)["entities"][0], body);
    assert_eq!(list.body["meta"]["key"], "entities");

    assert_eq!(app.delete(&format!("/v2/Services/{service}/Entities/{user}")).await.status, 204);
    app.get(&format!("/v2/Services/{service}/Entities/{user}")).await.assert_error(404, 20404);
    app.delete(&format!("/v2/Services/{service}/Entities/{user}")).await.assert_error(404, 20404);
    // The identity is free again.
    app.post(&format!("/v2/Services/{service}/Entities"), &[("Identity", &user)]).await.assert_status(201);
}

async fn deleting_an_entity_removes_its_factors_and_challenges(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let challenge = app.challenge(&service, &user, &factor).await;
    assert_eq!(app.delete(&format!("/v2/Services/{service}/Entities/{user}")).await.status, 204);
    app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await.assert_error(404, 20404);
    let sid = challenge["sid"].as_str().unwrap();
    app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}")).await.assert_error(404, 20404);
    // Recreated, the entity starts empty.
    app.post(&format!("/v2/Services/{service}/Entities"), &[("Identity", &user)]).await.assert_status(201);
    let factors = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors")).await;
    assert_eq!(factors.assert_status(200)["factors"], serde_json::json!([]));
    let challenges = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges")).await;
    assert_eq!(challenges.assert_status(200)["challenges"], serde_json::json!([]));
}

async fn entity_identities_are_validated(app: TestApp) {
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/Entities");
    let long = "a".repeat(65);
    for bad in ["short", "bad id!!", "user_12345", "usér-12345", long.as_str()] {
        let message = app.post(&path, &[("Identity", bad)]).await.assert_error(400, 60200);
        assert!(message.contains("Identity"), "{bad}: {message}");
    }
    app.post(&path, &[]).await.assert_error(400, 60200);
    app.post(&path, &[("Identity", &"a".repeat(64))]).await.assert_status(201);
    app.post(&path, &[("Identity", "12345678")]).await.assert_status(201);
    let list = app.get(&path).await;
    assert_eq!(list.body["entities"].as_array().unwrap().len(), 2, "only the valid ones were stored");
}
