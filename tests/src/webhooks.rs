//! Webhook configurations: create, fetch, update, list, delete and validation.

use crate::helpers::{on_both_backends, TestApp};

on_both_backends!(webhooks_are_created_fetched_updated_and_deleted, webhook_parameters_are_validated);

async fn webhooks_are_created_fetched_updated_and_deleted(app: TestApp) {
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/Webhooks");
    let created = app
        .post(
            &path,
            &[
                ("FriendlyName", "Approvals"),
                ("EventTypes", "factor.verified"),
                ("EventTypes", "challenge.approved"),
                ("WebhookUrl", "https://example.com/hook?x=1"),
                ("Status", "enabled"),
                ("Version", "v2"),
            ],
        )
        .await;
    let body = created.assert_status(201).clone();
    let sid = body["sid"].as_str().unwrap();
    assert!(sid.starts_with("YW"));
    assert_eq!(body["event_types"], serde_json::json!(["factor.verified", "challenge.approved"]));
    assert_eq!(body["webhook_method"], "POST");
    assert_eq!(body["webhook_url"], "https://example.com/hook?x=1");
    assert_eq!(body["status"], "enabled");
    assert_eq!(body["version"], "v2");
    assert_eq!(app.get(&format!("{path}/{sid}")).await.assert_status(200), &body);

    let updated =
        app.post(&format!("{path}/{sid}"), &[("Status", "disabled"), ("EventTypes", "*"), ("Version", "v1")]).await;
    let updated = updated.assert_status(200);
    assert_eq!(updated["status"], "disabled");
    assert_eq!(updated["event_types"], serde_json::json!(["*"]));
    assert_eq!(updated["version"], "v1");
    assert_eq!(updated["friendly_name"], "Approvals");

    let defaults =
        app.post(&path, &[("FriendlyName", "d"), ("EventTypes", "*"), ("WebhookUrl", "http://127.0.0.1:9/h")]).await;
    assert_eq!(defaults.assert_status(201)["status"], "enabled");
    assert_eq!(defaults.body["version"], "v2");

    let list = app.get(&path).await;
    assert_eq!(list.assert_status(200)["webhooks"].as_array().unwrap().len(), 2);
    assert_eq!(app.delete(&format!("{path}/{sid}")).await.status, 204);
    app.get(&format!("{path}/{sid}")).await.assert_error(404, 20404);
    app.delete(&format!("{path}/{sid}")).await.assert_error(404, 20404);
}

async fn webhook_parameters_are_validated(app: TestApp) {
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/Webhooks");
    let ok = [("FriendlyName", "n"), ("EventTypes", "*"), ("WebhookUrl", "https://example.com")];
    let replace = |name: &'static str, value: &'static str| {
        let mut form: Vec<(&str, &str)> = ok.iter().copied().filter(|(n, _)| *n != name).collect();
        if !value.is_empty() {
            form.push((name, value));
        }
        form
    };
    for (form, code) in [
        (replace("EventTypes", "nope"), 60306),
        (replace("EventTypes", "challenge.expired"), 60306),
        (replace("WebhookUrl", "ftp://example.com"), 60306),
        (replace("WebhookUrl", "example.com/hook"), 60306),
        (replace("EventTypes", ""), 60200),
        (replace("WebhookUrl", ""), 60200),
        (replace("FriendlyName", ""), 60200),
        (replace("Status", "paused"), 60200),
        (replace("Version", "v3"), 60200),
    ] {
        app.post(&path, &form).await.assert_error(400, code);
    }
    let list = app.get(&path).await;
    assert_eq!(list.assert_status(200)["webhooks"], serde_json::json!([]), "refused requests stored nothing");
}
