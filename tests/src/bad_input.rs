//! Bad input on every route: oversized, undecodable and mistyped bodies, wrong SID prefixes,
//! unknown paths and methods. Each gets a Twilio envelope with the right status and code —
//! never a 500 — and nothing is written.

use reqwest::Method;
use verify_push_server::api::ROUTES;

use crate::helpers::{identity, on_both_backends, TestApp};

on_both_backends!(
    undecodable_bodies_are_refused_on_every_post_route,
    wrong_sid_prefixes_unknown_paths_and_methods_are_refused,
    a_wrong_sid_prefix_answers_the_404_of_the_resource_it_names
);

async fn undecodable_bodies_are_refused_on_every_post_route(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let posts: Vec<String> = ROUTES
        .iter()
        .filter(|(m, _)| *m == "POST")
        .map(|(_, p)| {
            p.replace("{ServiceSid}", &service)
                .replace("{Identity}", &user)
                .replace("{Sid}", if p.contains("Factors") { &factor } else { &service })
        })
        .collect();
    let too_big = vec![b'a'; 1024 * 1024 + 1];
    let cases: Vec<(&str, Vec<u8>, &str, u16, u64)> = vec![
        ("over 1 MiB", too_big, "application/x-www-form-urlencoded", 413, 60306),
        ("non-UTF-8", b"FriendlyName=\xff\xfe".to_vec(), "application/x-www-form-urlencoded", 400, 60200),
        ("non-UTF-8 escape", b"FriendlyName=%ff%fe".to_vec(), "application/x-www-form-urlencoded", 400, 60200),
        ("broken escape", b"FriendlyName=%G1".to_vec(), "application/x-www-form-urlencoded", 400, 60200),
        ("JSON", br#"{"FriendlyName":"x"}"#.to_vec(), "application/json", 415, 60306),
    ];
    for path in &posts {
        for (why, body, content_type, status, code) in &cases {
            let reply = app
                .send(
                    Method::POST,
                    path,
                    Some(&app.account),
                    &[],
                    &[("Content-Type", content_type)],
                    Some(body.clone()),
                )
                .await;
            assert_eq!(reply.status.as_u16(), *status, "{why} on {path}: {}", reply.body);
            reply.assert_error(*status, *code);
        }
    }
    let query = app.get("/v2/Services?PageSize=%ff").await;
    query.assert_error(400, 60200);
    // Nothing was created by any of it.
    let services = app.get("/v2/Services").await;
    assert_eq!(services.body["services"].as_array().unwrap().len(), 1);
}

async fn wrong_sid_prefixes_unknown_paths_and_methods_are_refused(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let wrong = "XX".to_owned() + &"a".repeat(32);
    let short = "VA123";
    for (method, path) in ROUTES.iter().filter(|(_, p)| p.contains("{ServiceSid}") || p.contains("{Sid}")) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for bad in [wrong.as_str(), short, "%2e%2e"] {
            let with_bad_service =
                path.replace("{ServiceSid}", bad).replace("{Identity}", &user).replace("{Sid}", &factor);
            let reply = app.send(method.clone(), &with_bad_service, Some(&app.account), &[], &[], None).await;
            reply.assert_error(404, 20404);
            if path.contains("{Sid}") {
                let with_bad_sid =
                    path.replace("{ServiceSid}", &service).replace("{Identity}", &user).replace("{Sid}", bad);
                let reply = app.send(method.clone(), &with_bad_sid, Some(&app.account), &[], &[], None).await;
                reply.assert_error(404, 20404);
            }
        }
    }
    for path in ["/", "/v2", "/v2/Nope", "/v1/Services", &format!("/v2/Services/{service}/Verifications")] {
        app.get(path).await.assert_error(404, 20404);
    }
    app.get("/v2/Forms/form-sms").await.assert_error(404, 20404);
    for (method, path) in [
        (Method::PUT, "/v2/Services".to_owned()),
        (Method::DELETE, "/v2/Services".to_owned()),
        (Method::PATCH, format!("/v2/Services/{service}")),
        (Method::POST, format!("/v2/Services/{service}/Entities/{user}")),
        (Method::DELETE, format!("/v2/Services/{service}/Entities/{user}/Challenges")),
        (Method::POST, "/healthz".to_owned()),
    ] {
        let reply = app.send(method.clone(), &path, Some(&app.account), &[], &[], None).await;
        reply.assert_error(405, 20004);
    }
}

/// A malformed SID names nothing: the 404 names the resource the path would have named — the
/// Service alone where the Service SID is checked first, else the whole item.
async fn a_wrong_sid_prefix_answers_the_404_of_the_resource_it_names(app: TestApp) {
    let service = app.service().await;
    let user = identity();
    let (factor, _) = app.verified_factor(&service, &user).await;
    let bad = "XX".to_owned() + &"a".repeat(32);
    let entity = format!("/v2/Services/{service}/Entities/{user}");
    let cases = [
        (format!("/v2/Services/{bad}"), format!("/v2/Services/{bad}")),
        (format!("/v2/Services/{bad}/Entities/{user}"), format!("/v2/Services/{bad}")),
        (format!("/v2/Services/{bad}/Webhooks/{bad}"), format!("/v2/Services/{bad}")),
        (format!("{entity}/Factors/{bad}"), format!("{entity}/Factors/{bad}")),
        (
            format!("/v2/Services/{bad}/Entities/{user}/Factors/{factor}"),
            format!("/v2/Services/{bad}/Entities/{user}/Factors/{factor}"),
        ),
        (format!("{entity}/Challenges/{bad}"), format!("{entity}/Challenges/{bad}")),
        (format!("/v2/Services/{service}/Webhooks/{bad}"), format!("/v2/Services/{service}/Webhooks/{bad}")),
        (format!("/v2/Services/{service}/AccessTokens/{bad}"), format!("/v2/Services/{service}/AccessTokens/{bad}")),
        (format!("/v1/Credentials/{bad}"), format!("/v1/Credentials/{bad}")),
    ];
    for (path, named) in cases {
        let message = app.get(&path).await.assert_error(404, 20404);
        assert_eq!(message, format!("The requested resource {named} was not found"), "GET {path}");
    }
    let notify = format!("{entity}/Challenges/{bad}/Notifications");
    let message = app.post(&notify, &[]).await.assert_error(404, 20404);
    assert_eq!(message, format!("The requested resource {entity}/Challenges/{bad} was not found"));
    let challenge = app.post(&format!("{entity}/Challenges"), &[("FactorSid", &bad), ("Details.Message", "Hi")]).await;
    assert_eq!(challenge.assert_error(400, 60200), "Invalid parameter `FactorSid`: must be a YF… SID");
}
