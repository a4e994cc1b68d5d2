//! Faults: input PostgreSQL cannot store, a database that refuses connections or writes,
//! credentials changed by another instance, secrets at rest.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use verify_push_server::api::ROUTES;

use crate::accounts::Existing;
use crate::contract::served_contract;
use crate::helpers::{
    fresh_database, on_both_backends, spawn_app, spawn_app_configured, spawn_app_on, Creds, Postgres, Sqlite, TestApp,
};

on_both_backends!(
    a_nul_character_in_any_text_parameter_is_refused_naming_it,
    a_rotated_token_and_a_removed_api_key_reach_every_instance_within_5_seconds,
);

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

/// A TCP proxy in front of PostgreSQL that can start refusing, as a server that is starting up,
/// full or closed to connections does: it cuts every open connection and answers each new
/// one's startup with a FATAL ErrorResponse carrying a SQLSTATE.
struct RefusingProxy {
    port: u16,
    refusal: Arc<Mutex<Option<(&'static str, &'static str)>>>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl RefusingProxy {
    async fn start(upstream: String) -> RefusingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refusal: Arc<Mutex<Option<(&'static str, &'static str)>>> = Arc::default();
        let (cut, _) = tokio::sync::watch::channel(0);
        let (shared, cuts) = (refusal.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let refused = *shared.lock().unwrap();
                let mut cut = cuts.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Some((code, message)) = refused {
                        let _ = refuse_startup(&mut client, code, message).await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        RefusingProxy { port, refusal, cut }
    }

    /// From now on, refuses every connection with `code`, and cuts the open ones.
    fn refuse(&self, code: &'static str, message: &'static str) {
        *self.refusal.lock().unwrap() = Some((code, message));
        self.cut.send_modify(|generation| *generation += 1);
    }

    fn accept(&self) {
        *self.refusal.lock().unwrap() = None;
    }
}

/// Reads an SSLRequest (answered `N`) and the StartupMessage, then answers ErrorResponse.
async fn refuse_startup(client: &mut TcpStream, code: &str, message: &str) -> std::io::Result<()> {
    loop {
        let length = client.read_u32().await?;
        let mut rest = vec![0; usize::try_from(length).unwrap().saturating_sub(4)];
        client.read_exact(&mut rest).await?;
        if rest[..] == 80_877_103u32.to_be_bytes() {
            client.write_all(b"N").await?;
            continue;
        }
        break;
    }
    let mut fields = Vec::new();
    for (kind, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', message)] {
        fields.push(kind);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut response = vec![b'E'];
    response.extend_from_slice(&u32::try_from(fields.len() + 4).unwrap().to_be_bytes());
    response.extend_from_slice(&fields);
    client.write_all(&response).await?;
    client.shutdown().await
}

/// A PostgreSQL that refuses connections — closed to them (55000), starting up (57P03), out of
/// slots (53300), rejecting the connection (08004) — makes requests answer 503/20503 (not 500)
/// and `/healthz` 503 with the refusal as its reason; both recover once it accepts again.
#[tokio::test]
async fn a_postgresql_that_refuses_connections_answers_503_and_health_says_why() {
    let database = fresh_database(Postgres).await;
    let mut url = reqwest::Url::parse(&database).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = RefusingProxy::start(upstream).await;
    url.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_on(Postgres, url.as_str()).await;
    app.expect_leftovers(
        "its database is reached through the proxy on the test's runtime, which the drop check cannot use",
    );
    let service = app.service().await;
    let path = format!("/v2/Services/{service}");
    for (code, message) in [
        ("55000", "database \"test\" is not currently accepting connections"),
        ("57P03", "the database system is starting up"),
        ("53300", "sorry, too many clients already"),
        ("08004", "the server rejected the connection"),
    ] {
        proxy.refuse(code, message);
        app.get(&path).await.assert_error(503, 20503);
        let health = app.send(Method::GET, "/healthz", None, &[], &[], None).await;
        let body = health.assert_status(503);
        assert_eq!(body["database"]["status"], "unavailable", "{code}: {body}");
        let reason = body["database"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(code) && reason.contains(message), "{code}: {body}");
        proxy.accept();
        let deadline = Instant::now() + Duration::from_secs(15);
        while app.get(&path).await.status != 200 {
            assert!(Instant::now() < deadline, "{code}: requests never recovered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app.send(Method::GET, "/healthz", None, &[], &[], None).await.assert_status(200);
    }
}

/// SQLite on a full disk (`max_page_count` reached on the writer): the failing write answers
/// 503/20503, `/healthz` says `degraded` with the reason for as long as writes fail, and recovers
/// by itself (its write probe succeeds) once there is room again. A healthy `/healthz` makes no
/// write, so it notices the full disk only once a write has failed.
#[tokio::test]
async fn a_full_disk_answers_503_and_health_is_degraded_until_writes_succeed() {
    let app = spawn_app(Sqlite).await;
    let health = || app.send(Method::GET, "/healthz", None, &[], &[], None);
    health().await.assert_status(200);
    app.store.simulate_full_disk(true).await.unwrap();
    // Health writes nothing while the last write succeeded: the full disk is not seen yet.
    health().await.assert_status(200);
    let mut failed = None;
    for i in 0..2000 {
        let reply = app.post("/v2/Services", &[("FriendlyName", &format!("Service number {i:05}"))]).await;
        if reply.status != 201 {
            failed = Some(reply);
            break;
        }
    }
    let failed = failed.expect("a write fails once the database cannot grow");
    failed.assert_error(503, 20503);
    for _ in 0..3 {
        let reply = health().await;
        let body = reply.assert_status(503);
        assert_eq!(body["database"]["status"], "degraded", "{body}");
        assert!(body["database"]["reason"].as_str().unwrap_or_default().contains("full"), "{body}");
    }
    app.store.simulate_full_disk(false).await.unwrap();
    health().await.assert_status(200);
    app.post("/v2/Services", &[("FriendlyName", "after the disk was freed")]).await.assert_status(201);
}

/// Another instance starting with a new auth token and without the API key rewrites the
/// database; the running instance, which has both credentials cached, must follow within 5 s:
/// the old token and the removed key refused, the new token accepted.
async fn a_rotated_token_and_a_removed_api_key_reach_every_instance_within_5_seconds(first: TestApp) {
    let path = format!("/v2/Services/{}", first.service().await);
    async fn status(app: &TestApp, path: &str, creds: &Creds) -> u16 {
        app.send(Method::GET, path, Some(creds), &[], &[], None).await.status.as_u16()
    }
    let call = |app, creds| status(app, &path, creds);
    assert_eq!(call(&first, &first.account).await, 200);
    assert_eq!(call(&first, &first.api_key).await, 200);
    let rotated = Creds { user: first.account.user.clone(), password: "rotated-auth-token-0001".into() };
    let new_token = rotated.password.clone();
    let second = spawn_app_configured(first.backend, &first.database_url, |args| {
        args.auth_token = Some(new_token);
        args.api_key_sid = None;
        args.api_key_secret = None;
    })
    .await;
    let rotated_at = Instant::now();
    let expected = [(&first.account, 401), (&first.api_key, 401), (&rotated, 200)];
    for app in [&first, &second] {
        loop {
            let mut seen = Vec::new();
            for (creds, _) in &expected {
                seen.push(call(app, creds).await);
            }
            if expected.iter().map(|(_, status)| *status).eq(seen.iter().copied()) {
                break;
            }
            assert!(
                rotated_at.elapsed() < Duration::from_secs(5),
                "{}: old token, removed key, new token answer {seen:?} after 5 s",
                app.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
