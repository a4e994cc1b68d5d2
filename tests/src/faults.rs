//! Faults: input PostgreSQL cannot store, a database that refuses connections or writes,
//! credentials changed by another instance, secrets at rest.

use reqwest::Method;
use serde_json::Value;
use verify_push_server::api::ROUTES;

use crate::accounts::Existing;
use crate::contract::served_contract;
use crate::helpers::{on_both_backends, TestApp};

on_both_backends!(a_nul_character_in_any_text_parameter_is_refused_naming_it);

/// The parameters of `method path` in `openapi.yaml`: (where, name), where is `path`, `query`
/// or `form`.
fn documented_parameters(doc: &Value, method: &str, path: &str) -> Vec<(String, String)> {
    let operation = &doc["paths"][path][method.to_lowercase()];
    let mut out: Vec<(String, String)> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["in"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned()))
        .collect();
    let form = &operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["properties"];
    out.extend(form.as_object().into_iter().flatten().map(|(name, _)| ("form".to_owned(), name.clone())));
    out
}

/// PostgreSQL cannot store U+0000 in text, SQLite can: both refuse it, as 400 naming the
/// parameter, in form bodies, query strings and path segments of every route (the cases come
/// from the route table and the parameters `openapi.yaml` documents for each).
async fn a_nul_character_in_any_text_parameter_is_refused_naming_it(app: TestApp) {
    let existing = Existing::create(&app).await;
    let doc = served_contract();
    let mut tried = 0;
    let mut failures = Vec::new();
    for (method, path) in ROUTES {
        let parameters = documented_parameters(&doc, method, path);
        let http_method = Method::from_bytes(method.as_bytes()).unwrap();
        for (place, name) in &parameters {
            let (url, body) = match place.as_str() {
                "path" => (existing.fill(path, Some((name, "a%00b"))), None),
                "query" => (format!("{}?{name}=a%00b", existing.fill(path, None)), None),
                "form" => (existing.fill(path, None), Some(format!("{name}=a%00b").into_bytes())),
                other => panic!("{method} {path}: parameter {name} in {other}"),
            };
            let headers: &[(&str, &str)] =
                if body.is_some() { &[("Content-Type", "application/x-www-form-urlencoded")] } else { &[] };
            let reply = app.send(http_method.clone(), &url, Some(&app.account), &[], headers, body).await;
            let named = reply.body["message"].as_str().is_some_and(|m| m.contains(&format!("`{name}`")));
            if reply.status != 400 || reply.body["code"] != 60200 || !named {
                failures.push(format!("{method} {path}, {place} {name}: {} {}", reply.status, reply.body));
            } else {
                reply.assert_error(400, 60200);
            }
            tried += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {tried} cases:\n{}", failures.len(), failures.join("\n"));
    assert!(tried >= 150, "only {tried} parameters tried");
    // Nothing was deleted or changed on the way.
    for (method, path) in ROUTES.iter().filter(|(m, p)| *m == "GET" && !p.starts_with("/_emulator")) {
        let reply = app.get(&existing.fill(path, None)).await;
        assert_eq!(reply.status.as_u16(), 200, "{method} {path}: {}", reply.body);
    }
    let service = app.get(&existing.fill("/v2/Services/{Sid}", None)).await;
    assert_eq!(service.body["friendly_name"], "Test Service");
}
