//! Authentication and isolation: every route refuses missing or wrong credentials with 401 /
//! 20003, API keys act for their account, and one account never sees another's resources.

use reqwest::Method;
use verify_push_server::api::ROUTES;
use verify_push_server::clock::SystemClock;
use verify_push_server::config::ServeArgs;
use verify_push_server::startup::Application;

use crate::helpers::{fresh_database, identity, on_both_backends, Creds, TestApp};

on_both_backends!(
    every_route_refuses_missing_or_wrong_credentials,
    api_keys_act_for_their_account,
    accounts_never_see_each_others_resources,
    a_first_start_without_accounts_generates_one_and_only_once,
);

/// One existing resource of the main account for each path parameter of the route table.
pub(crate) struct Existing {
    service: String,
    user: String,
    factor: String,
    challenge: String,
    token: String,
    hook: String,
    credential: String,
    /// A virtual device (its Factor SID) and a pending Challenge of it.
    device: String,
    device_challenge: String,
}

impl Existing {
    /// Creates a Service, a verified Factor, a Challenge, an AccessToken, a Webhook, a
    /// Credential and a virtual device with a Challenge.
    pub(crate) async fn create(app: &TestApp) -> Existing {
        let service = app.service().await;
        let user = identity();
        let (factor, _) = app.verified_factor(&service, &user).await;
        let challenge = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
        // Before the Webhook, so that none of its events is queued.
        let device_user = identity();
        let device = app.post("/_emulator/Devices", &[("ServiceSid", &service), ("Identity", &device_user)]).await;
        let device = device.assert_status(201)["factor_sid"].as_str().unwrap().to_owned();
        let device_challenge = app.challenge(&service, &device_user, &device).await["sid"].as_str().unwrap().to_owned();
        let token = app
            .post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")])
            .await;
        let token = token.body["sid"].as_str().unwrap().to_owned();
        let hook = app
            .post(
                &format!("/v2/Services/{service}/Webhooks"),
                &[("FriendlyName", "h"), ("EventTypes", "*"), ("WebhookUrl", "https://example.com")],
            )
            .await;
        let hook = hook.body["sid"].as_str().unwrap().to_owned();
        let credential = crate::push::fcm_credential(app, "http://127.0.0.1:9/token").await;
        Existing { service, user, factor, challenge, token, hook, credential, device, device_challenge }
    }

    /// The value of path parameter `name` in route `path`.
    pub(crate) fn value(&self, path: &str, name: &str) -> &str {
        match name {
            "ServiceSid" => &self.service,
            "Identity" => &self.user,
            "FormType" => "form-push",
            "FactorSid" => &self.device,
            "ChallengeSid" if path.starts_with("/_emulator/Devices") => &self.device_challenge,
            "ChallengeSid" => &self.challenge,
            _ if path.starts_with("/v1/Credentials") => &self.credential,
            _ if path.contains("/Challenges/") => &self.challenge,
            _ if path.contains("/Factors/") => &self.factor,
            _ if path.contains("/AccessTokens/") => &self.token,
            _ if path.contains("/Webhooks/") => &self.hook,
            _ => &self.service,
        }
    }

    /// `path` with every `{Name}` filled in, `replaced` (a name and its raw text) excepted.
    pub(crate) fn fill(&self, path: &str, replaced: Option<(&str, &str)>) -> String {
        let mut out = String::new();
        for (i, piece) in path.split(['{', '}']).enumerate() {
            if i % 2 == 0 {
                out.push_str(piece);
            } else {
                match replaced {
                    Some((name, raw)) if name == piece => out.push_str(raw),
                    _ => out.push_str(self.value(path, piece)),
                }
            }
        }
        out
    }
}

/// Every route with its path parameters filled in with existing resources of the main account.
async fn concrete_routes(app: &TestApp) -> Vec<(Method, String)> {
    let existing = Existing::create(app).await;
    ROUTES
        .iter()
        .filter(|(_, path)| *path != "/healthz")
        .map(|(method, path)| (Method::from_bytes(method.as_bytes()).unwrap(), existing.fill(path, None)))
        .collect()
}

async fn every_route_refuses_missing_or_wrong_credentials(app: TestApp) {
    let wrong_token = Creds { user: app.account.user.clone(), password: "not-the-token".into() };
    let wrong_key = Creds { user: app.api_key.user.clone(), password: "not-the-secret".into() };
    let unknown = Creds { user: "AC".to_owned() + &"9".repeat(32), password: app.account.password.clone() };
    let crossed = Creds { user: app.other_account.user.clone(), password: app.account.password.clone() };
    let routes = concrete_routes(&app).await;
    assert!(routes.len() >= 20, "{routes:?}");
    for (method, path) in &routes {
        for creds in [None, Some(&wrong_token), Some(&wrong_key), Some(&unknown), Some(&crossed)] {
            let reply = app.send(method.clone(), path, creds, &[], &[], None).await;
            reply.assert_error(401, 20003);
            assert_eq!(reply.headers["www-authenticate"], "Basic realm=\"Twilio API\"");
        }
        for header in ["Bearer abc", "Basic !!!", "Basic", "Basic dXNlcm5hbWU="] {
            let reply = app.send(method.clone(), path, None, &[], &[("Authorization", header)], None).await;
            reply.assert_error(401, 20003);
        }
    }
    // Nothing changed: the resources are all still there.
    for (method, path) in routes.iter().filter(|(m, _)| m == Method::GET) {
        let _ = method;
        app.get(path).await.assert_status(200);
    }
}

async fn api_keys_act_for_their_account(app: TestApp) {
    let service = app.service().await;
    let fetched = app.send(Method::GET, &format!("/v2/Services/{service}"), Some(&app.api_key), &[], &[], None).await;
    assert_eq!(fetched.assert_status(200)["account_sid"], app.account.user.as_str());
    let created =
        app.send(Method::POST, "/v2/Services", Some(&app.api_key), &[("FriendlyName", "by key")], &[], None).await;
    assert_eq!(created.assert_status(201)["account_sid"], app.account.user.as_str());
}

async fn accounts_never_see_each_others_resources(app: TestApp) {
    let routes = concrete_routes(&app).await;
    for (method, path) in &routes {
        // Account-wide lists answer an empty page to another account, not 404; the clock is the
        // server's and a reset empties the caller's own account.
        if path.starts_with("/v2/Forms")
            || [
                "/v2/Services",
                "/v1/Credentials",
                "/_emulator/pushes",
                "/_emulator/webhook-deliveries",
                "/_emulator/Devices",
                "/_emulator/Clock",
                "/_emulator/Reset",
            ]
            .contains(&path.as_str())
        {
            continue;
        }
        let reply = app.send(method.clone(), path, Some(&app.other_account), &[("FriendlyName", "x")], &[], None).await;
        reply.assert_error(404, 20404);
    }
    for (list, key) in [
        ("/v2/Services", "services"),
        ("/v1/Credentials", "credentials"),
        ("/_emulator/pushes", "pushes"),
        ("/_emulator/Devices", "devices"),
    ] {
        let theirs = app.send(Method::GET, list, Some(&app.other_account), &[], &[], None).await;
        assert_eq!(theirs.assert_status(200)[key], serde_json::json!([]), "{list}");
    }
    // Everything of the main account survived the other account's attempts.
    for (method, path) in routes.iter().filter(|(m, _)| m == Method::GET) {
        let _ = method;
        app.get(path).await.assert_status(200);
    }
}

async fn a_first_start_without_accounts_generates_one_and_only_once(app: TestApp) {
    let database = fresh_database(app.backend).await;
    let mut args = ServeArgs::defaults();
    args.bind = "127.0.0.1:0".into();
    args.database.database_url = database.clone();
    args.workers = Some(1);
    let first = Application::build(args.clone(), std::sync::Arc::new(SystemClock)).await.unwrap();
    let generated = first.generated_account.as_ref().expect("an account is generated on first start");
    let creds = Creds { user: generated.account_sid.clone(), password: generated.auth_token.clone() };
    let url = format!("http://127.0.0.1:{}", first.port());
    tokio::spawn(first.run_until_stopped());
    let reply = reqwest::Client::new()
        .get(format!("{url}/v2/Services"))
        .basic_auth(&creds.user, Some(&creds.password))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let second = Application::build(args, std::sync::Arc::new(SystemClock)).await.unwrap();
    assert!(second.generated_account.is_none(), "the second start reuses the stored account");
}
