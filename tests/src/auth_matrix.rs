//! The auth matrix: every route of the route table (`verify_push_server::api::ROUTES`) × every
//! wrong credential, against real resources of the main account, with a request that would
//! change them if it got through. Each cell has one exact answer:
//!
//! - 401 / 20003 for credentials that authenticate no one, and for device tokens outside their
//!   Factor, identity and Service (docs/ARCHITECTURE.md, "Device authentication";
//!   docs/protocol/rest-api.md#authentication);
//! - 404 / 20404 for another account's valid credentials on the main account's resources: they
//!   name nothing that account can see (docs/protocol/rest-api.md#errors, `ApiError::NotFound`);
//! - 400 / 60200 where another account's own request names the main account's push credential;
//! - the explicit exceptions in [`expected`], each with its reason.
//!
//! Afterwards the database holds exactly what it held before (every table's rows as text, the
//! other account's own rows aside), and a positive control sends every request once more with
//! the main account's credentials and gets its 2xx, so each refusal is the credential's doing and
//! not a wrong path or body. A route added to the table without a resource or body here fails
//! the test with a message saying what to add.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Method;
use serde_json::Value;
use sqlx::Connection;
use verify_push_client::{jwt, Style};
use verify_push_server::api::challenges::SIGNATURE_FIELDS;
use verify_push_server::api::ROUTES;
use verify_push_server::clock::Clock;
use verify_push_server::store::Backend;

use crate::helpers::{for_each_backend, identity, spawn_app_with, spki_base64, Creds, Reply, TestApp};

for_each_backend!(every_route_refuses_every_wrong_credential_and_nothing_changes);

/// (method, path) as in the route table.
type Route = (&'static str, &'static str);

const P8: &str = include_str!("../fixtures/apns-token-key.p8");

/// The wrong credentials, one column of the matrix each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    NoAuth,
    WrongAuthToken,
    WrongApiKeySecret,
    OtherAccount,
    OtherAccountApiKey,
    OtherFactorJwt,
    OtherIdentityJwt,
    OtherServiceJwt,
    AccessToken,
    AlgNone,
    Hs256,
    Expired,
}

const CASES: [Case; 12] = [
    Case::NoAuth,
    Case::WrongAuthToken,
    Case::WrongApiKeySecret,
    Case::OtherAccount,
    Case::OtherAccountApiKey,
    Case::OtherFactorJwt,
    Case::OtherIdentityJwt,
    Case::OtherServiceJwt,
    Case::AccessToken,
    Case::AlgNone,
    Case::Hs256,
    Case::Expired,
];

/// What one cell must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 401 / 20003.
    Refused,
    /// 404 / 20404.
    Hidden,
    /// 400 / 60200: the body names a resource of the main account that the caller cannot use.
    Invalid,
    /// This exact 2xx: the request is the caller's own business (and changes none of the main
    /// account's rows, which the snapshot checks); a listing shows none of the main account's SIDs.
    Own(u16),
    /// Not sent, for the reason given.
    Skip(&'static str),
}

/// The main account's resources, and the devices and tokens of the matrix.
struct World {
    service: String,
    user: String,
    factor: String,
    challenge: String,
    /// A second pending Challenge, for the test control that expires one (the answer of the
    /// positive control needs `challenge` pending).
    spare_challenge: String,
    access_token_sid: String,
    webhook: String,
    credential: String,
    /// A virtual device of the main account (its Factor SID) and a pending Challenge of it.
    device: String,
    device_challenge: String,
    /// Every SID of the main account, none of which another account may see.
    sids: Vec<String>,
    /// A valid answer to the challenge, signed by its Factor's key.
    answer: String,
    new_public_key: String,
    creds: BTreeMap<&'static str, Creds>,
}

impl World {
    /// The real path of `template`, with the main account's resources.
    fn path(&self, template: &str) -> String {
        let mut previous = "";
        let mut out = Vec::new();
        for segment in template.split('/') {
            let value = match segment {
                "{ServiceSid}" => self.service.clone(),
                "{Identity}" => self.user.clone(),
                "{ChallengeSid}" if template.starts_with("/_emulator/Devices") => self.device_challenge.clone(),
                "{ChallengeSid}" if template.starts_with("/_emulator/") => self.spare_challenge.clone(),
                "{ChallengeSid}" => self.challenge.clone(),
                "{FactorSid}" => self.device.clone(),
                "{FormType}" => "form-push".to_owned(),
                "{Sid}" => match previous {
                    "Services" => self.service.clone(),
                    "Factors" => self.factor.clone(),
                    "Challenges" => self.challenge.clone(),
                    "AccessTokens" => self.access_token_sid.clone(),
                    "Webhooks" => self.webhook.clone(),
                    "Credentials" => self.credential.clone(),
                    other => panic!("{template}: give the matrix a real resource for {{Sid}} under {other}"),
                },
                s if s.starts_with('{') => panic!("{template}: give the matrix a real value for {s}"),
                s => s.to_owned(),
            };
            out.push(value);
            previous = segment;
        }
        let path = out.join("/");
        // The SDKs list a Factor's challenges with `FactorSid`; it names the main Factor.
        if template.ends_with("/Challenges") {
            format!("{path}?FactorSid={}", self.factor)
        } else {
            path
        }
    }

    /// A body that would change the resource if the request got through.
    fn body(&self, method: &str, template: &str) -> Vec<(&'static str, String)> {
        if method != "POST" {
            return Vec::new();
        }
        let last = template.rsplit('/').next().unwrap_or_default();
        let item = last.starts_with('{');
        let owner = template.trim_end_matches(last).trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        let owner = if item { owner } else { last };
        let changed = || vec![("FriendlyName", "Changed by the matrix".to_owned())];
        if template.starts_with("/_emulator/Devices") {
            return match item {
                false => vec![("ServiceSid", self.service.clone()), ("Identity", identity())],
                true => vec![("Status", "approved".to_owned())],
            };
        }
        match (owner, item) {
            ("Clock", false) => vec![("Advance", "60".to_owned())],
            ("Reset", false) => Vec::new(),
            ("Challenges", true) if template.starts_with("/_emulator/") => vec![("Status", "expired".to_owned())],
            // It names the main account's push credential: no other account may attach it.
            ("Services", false) => {
                vec![("FriendlyName", "Matrix".to_owned()), ("Push.FcmCredentialSid", self.credential.clone())]
            }
            ("Entities", false) => vec![("Identity", identity())],
            ("Factors", false) => vec![
                ("FriendlyName", "Matrix".to_owned()),
                ("FactorType", "push".to_owned()),
                ("Binding.Alg", "ES256".to_owned()),
                ("Binding.PublicKey", self.new_public_key.clone()),
                ("Config.SdkVersion", "0.9.0".to_owned()),
                ("Config.AppId", "com.example.app".to_owned()),
                ("Config.NotificationPlatform", "none".to_owned()),
            ],
            ("Challenges", false) => {
                vec![("FactorSid", self.factor.clone()), ("Details.Message", "Matrix".to_owned())]
            }
            ("Challenges", true) => vec![("AuthPayload", self.answer.clone())],
            ("Notifications", false) => vec![("Ttl", "60".to_owned())],
            ("AccessTokens", false) => vec![("Identity", self.user.clone()), ("FactorType", "push".to_owned())],
            ("Webhooks", false) => vec![
                ("FriendlyName", "Matrix".to_owned()),
                ("EventTypes", "*".to_owned()),
                ("WebhookUrl", "http://127.0.0.1:9/matrix".to_owned()),
            ],
            ("Credentials", false) => vec![
                ("Type", "apn".to_owned()),
                ("PrivateKey", P8.to_owned()),
                ("KeyId", "ABC123DEFG".to_owned()),
                ("TeamId", "TEAM123456".to_owned()),
            ],
            ("Services" | "Factors" | "Webhooks" | "Credentials", true) => changed(),
            _ => panic!("POST {template}: give the matrix a body that would change something"),
        }
    }
}

/// The answer every cell must give; the exceptions carry their reason.
fn expected(case: Case, method: &str, template: &str) -> Expect {
    if template == "/healthz" {
        // Public by design: liveness for load balancers and the container healthcheck; it
        // names no account's data.
        return Expect::Own(200);
    }
    // Routes that name none of the main account's resources: the caller's own collection.
    let own_collection = !template.contains("{Sid}")
        && !template.contains("{ServiceSid}")
        && !template.contains("{FactorSid}")
        && !template.contains("{ChallengeSid}");
    match case {
        Case::OtherAccount | Case::OtherAccountApiKey if method == "POST" && template == "/_emulator/Clock" => {
            Expect::Skip("the emulated clock is the server's, not an account's: any account moves it (README)")
        }
        Case::OtherAccount | Case::OtherAccountApiKey if method == "POST" && template == "/v2/Services" => {
            Expect::Invalid
        }
        // The body names the main account's Service, which another account cannot see.
        Case::OtherAccount | Case::OtherAccountApiKey if method == "POST" && template == "/_emulator/Devices" => {
            Expect::Hidden
        }
        Case::OtherAccount | Case::OtherAccountApiKey if own_collection => {
            Expect::Own(success_status(method, template))
        }
        Case::OtherAccount | Case::OtherAccountApiKey => Expect::Hidden,
        // A device reads its own Service (its Factors are in the main account's Service).
        Case::OtherFactorJwt | Case::OtherIdentityJwt if method == "GET" && template == "/v2/Services/{Sid}" => {
            Expect::Own(200)
        }
        Case::AccessToken if method == "POST" && template.ends_with("/Entities/{Identity}/Factors") => {
            Expect::Skip("enrolment is what an access token is for (device.rs tests it and its misuse)")
        }
        _ => Expect::Refused,
    }
}

fn success_status(method: &str, template: &str) -> u16 {
    match method {
        "GET" => 200,
        "DELETE" => 204,
        _ if template == "/_emulator/Reset" => 204,
        _ if template == "/_emulator/Clock" => 200,
        _ if template.ends_with('}') => 200,
        _ => 201,
    }
}

async fn every_route_refuses_every_wrong_credential_and_nothing_changes(backend: Backend) {
    let app = spawn_app_with(backend, add_other_account_api_key).await;
    let world = build_world(&app).await;
    // Any write during the matrix would stamp a later time than the setup's.
    app.clock.advance(5);

    let before = snapshot(&app).await;
    let mut wrong = Vec::new();
    let mut cells = 0;
    for (method, template) in ROUTES {
        let path = world.path(template);
        let body = world.body(method, template);
        let form: Vec<(&str, &str)> = body.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for case in CASES {
            let expect = expected(case, method, template);
            if let Expect::Skip(_) = expect {
                continue;
            }
            let creds = world.creds.get(case_key(case));
            let reply = app.send(Method::from_bytes(method.as_bytes()).unwrap(), &path, creds, &form, &[], None).await;
            cells += 1;
            if let Some(problem) = check(&reply, expect, &world, &path) {
                wrong.push(format!("{method} {template} with {case:?}: {problem}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} cells answered wrongly:\n{}", wrong.len(), wrong.join("\n"));
    let after = snapshot(&app).await;
    for (table, rows) in &before {
        assert_eq!(after.get(table), Some(rows), "table {table} changed during the matrix");
    }
    assert_eq!(before.len(), after.len(), "tables appeared during the matrix");
    assert!(before.get("challenges").is_some_and(|rows| rows.contains(&world.challenge)), "the snapshot sees rows");

    positive_control(&app, &world).await;
}

/// Each request once more with the main account's credentials: every path and body is real.
async fn positive_control(app: &TestApp, world: &World) {
    let mut order: Vec<&Route> = ROUTES.iter().filter(|(m, _)| *m == "GET").collect();
    // The answer goes last among the writes: a Notification needs the Challenge still pending.
    let (answer, writes): (Vec<&Route>, Vec<&Route>) =
        ROUTES.iter().filter(|(m, _)| *m == "POST").partition(|(_, t)| t.ends_with("/Challenges/{Sid}"));
    order.extend(writes);
    order.extend(answer);
    // Children before their parents; the reset of everything last.
    let (reset, writes): (Vec<&Route>, Vec<&Route>) = order.into_iter().partition(|(_, t)| *t == "/_emulator/Reset");
    order = writes;
    order.extend(ROUTES.iter().rev().filter(|(m, _)| *m == "DELETE"));
    order.extend(reset);
    assert_eq!(order.len(), ROUTES.len(), "every route is GET, POST or DELETE");
    for (method, template) in order {
        let body = world.body(method, template);
        let form: Vec<(&str, &str)> = body.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let creds = (*template != "/healthz").then_some(&app.account);
        let method_value = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = app.send(method_value, &world.path(template), creds, &form, &[], None).await;
        assert_eq!(
            reply.status.as_u16(),
            success_status(method, template),
            "positive control {method} {template}: {}",
            reply.body
        );
    }
}

/// What is wrong with `reply` for `expect`, if anything.
fn check(reply: &Reply, expect: Expect, world: &World, path: &str) -> Option<String> {
    let envelope = |status: u16, code: u64| {
        let body = &reply.body;
        let ok = reply.status.as_u16() == status
            && body["code"].as_u64() == Some(code)
            && body["status"].as_u64() == Some(u64::from(status))
            && body.as_object().is_some_and(|o| o.len() == 4);
        (!ok).then(|| format!("expected {status}/{code}, got {} {}", reply.status.as_u16(), body))
    };
    match expect {
        Expect::Refused => envelope(401, 20003).or_else(|| {
            (!reply.headers.contains_key("www-authenticate")).then(|| "401 without WWW-Authenticate".to_owned())
        }),
        Expect::Hidden => envelope(404, 20404),
        Expect::Invalid => envelope(400, 60200),
        Expect::Own(status) => {
            if reply.status.as_u16() != status {
                return Some(format!("expected {status}, got {} {}", reply.status.as_u16(), reply.body));
            }
            let text = reply.body.to_string();
            // Nothing of the main account beyond what the path names (a device reading its own
            // Service sees that Service).
            let leaked: Vec<&String> =
                world.sids.iter().filter(|sid| text.contains(sid.as_str()) && !path.contains(sid.as_str())).collect();
            (!leaked.is_empty()).then(|| format!("shows the main account's {leaked:?}"))
        }
        Expect::Skip(_) => None,
    }
}

fn case_key(case: Case) -> &'static str {
    match case {
        Case::NoAuth => "none",
        Case::WrongAuthToken => "wrong auth token",
        Case::WrongApiKeySecret => "wrong API key secret",
        Case::OtherAccount => "other account",
        Case::OtherAccountApiKey => "other account's API key",
        Case::OtherFactorJwt => "other factor",
        Case::OtherIdentityJwt => "other identity",
        Case::OtherServiceJwt => "other service",
        Case::AccessToken => "access token",
        Case::AlgNone => "alg none",
        Case::Hs256 => "HS256",
        Case::Expired => "expired",
    }
}

/// The other account gets an API key of its own (the accounts file spawn_app writes has none).
fn add_other_account_api_key(args: &mut verify_push_server::config::ServeArgs) {
    let path = args.accounts_file.clone().expect("spawn_app writes an accounts file");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file["accounts"][0]["api_keys"] =
        serde_json::json!([{"sid": other_api_key().user, "secret": other_api_key().password}]);
    std::fs::write(&path, file.to_string()).unwrap();
}

fn other_api_key() -> Creds {
    Creds { user: format!("SK{}", "4".repeat(32)), password: "other-api-key-secret-4".into() }
}

async fn build_world(app: &TestApp) -> World {
    let service = app.service().await;
    let other_service = app.service().await;
    let user = identity();
    let (factor, key) = app.verified_factor(&service, &user).await;
    let (other_factor, other_factor_key) = app.verified_factor(&service, &user).await;
    let other_user = identity();
    let (other_identity_factor, other_identity_key) = app.verified_factor(&service, &other_user).await;
    let (other_service_factor, other_service_key) = app.verified_factor(&other_service, &user).await;
    let challenge = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let spare_challenge = app.challenge(&service, &user, &factor).await["sid"].as_str().unwrap().to_owned();
    let token =
        app.post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")]).await;
    let token = token.assert_status(201).clone();
    // Created last, so no event of the setup is queued for it.
    app.expect_leftovers("the matrix's positive controls make events for a webhook at a closed port; never sent");
    let webhook = app
        .post(
            &format!("/v2/Services/{service}/Webhooks"),
            &[("FriendlyName", "w"), ("EventTypes", "*"), ("WebhookUrl", "http://127.0.0.1:9/hook")],
        )
        .await;
    let webhook = webhook.assert_status(201)["sid"].as_str().unwrap().to_owned();
    let credential = crate::push::fcm_credential(app, "http://127.0.0.1:9/token").await;
    let device_user = identity();
    let device = app.post("/_emulator/Devices", &[("ServiceSid", &service), ("Identity", &device_user)]).await;
    let virtual_device = device.assert_status(201)["factor_sid"].as_str().unwrap().to_owned();
    let device_challenge =
        app.challenge(&service, &device_user, &virtual_device).await["sid"].as_str().unwrap().to_owned();

    let account = app.account.user.clone();
    let now = app.clock.now();
    let device = |key: &p256::ecdsa::SigningKey, credential: &str, at: i64| Creds {
        user: "token".into(),
        password: jwt::factor_jwt(key, Style::Android, credential, &account, at),
    };
    let main_credential = credential_sid(app, &service, &user, &factor).await;
    let good = jwt::factor_jwt(&key, Style::Android, &main_credential, &account, now);
    let payload = good.split('.').nth(1).unwrap().to_owned();
    let header = |alg: &str| {
        URL_SAFE_NO_PAD
            .encode(format!(r#"{{"cty":"twilio-pba;v=1","kid":"{main_credential}","typ":"JWT","alg":"{alg}"}}"#))
    };
    let none = format!("{}.{payload}.", header("none"));
    // The classic confusion: HMAC keyed with the public key the server holds.
    let hs_input = format!("{}.{payload}", header("HS256"));
    let hs_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, spki_base64(&key).as_bytes());
    let hs256 = format!("{hs_input}.{}", URL_SAFE_NO_PAD.encode(ring::hmac::sign(&hs_key, hs_input.as_bytes())));

    let fetched = app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{challenge}")).await;
    let fetched = fetched.assert_status(200).as_object().unwrap().clone();
    let fields: Vec<String> = SIGNATURE_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    let answer = jwt::challenge_answer(&key, Style::Android, &fields, &fetched, "approved").unwrap();

    let wrong = |c: &Creds| Creds { user: c.user.clone(), password: format!("{}-wrong", c.password) };
    let token_creds = |password: String| Creds { user: "token".into(), password };
    let creds = BTreeMap::from([
        ("wrong auth token", wrong(&app.account)),
        ("wrong API key secret", wrong(&app.api_key)),
        ("other account", app.other_account.clone()),
        ("other account's API key", other_api_key()),
        ("other factor", device(&other_factor_key, &credential_sid(app, &service, &user, &other_factor).await, now)),
        (
            "other identity",
            device(&other_identity_key, &credential_sid(app, &service, &other_user, &other_identity_factor).await, now),
        ),
        ("other service", {
            let credential = credential_sid(app, &other_service, &user, &other_service_factor).await;
            device(&other_service_key, &credential, now)
        }),
        ("access token", token_creds(token["token"].as_str().unwrap().to_owned())),
        ("alg none", token_creds(none)),
        ("HS256", token_creds(hs256)),
        ("expired", device(&key, &main_credential, now - 2000)),
    ]);
    let entity = app.get(&format!("/v2/Services/{service}/Entities/{user}")).await;
    let sids = vec![
        service.clone(),
        entity.assert_status(200)["sid"].as_str().unwrap().to_owned(),
        factor.clone(),
        other_factor,
        other_identity_factor,
        other_service_factor,
        other_service.clone(),
        challenge.clone(),
        spare_challenge.clone(),
        token["sid"].as_str().unwrap().to_owned(),
        webhook.clone(),
        credential.clone(),
        virtual_device.clone(),
        device_challenge.clone(),
    ];
    let new_key = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    World {
        access_token_sid: token["sid"].as_str().unwrap().to_owned(),
        service,
        user,
        factor,
        challenge,
        spare_challenge,
        webhook,
        credential,
        device: virtual_device,
        device_challenge,
        sids,
        answer,
        new_public_key: spki_base64(&new_key),
        creds,
    }
}

/// The `kid` of a Factor's JWTs: its `config.credential_sid`.
async fn credential_sid(app: &TestApp, service: &str, user: &str, factor: &str) -> String {
    let reply = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await;
    reply.assert_status(200)["config"]["credential_sid"].as_str().unwrap().to_owned()
}

/// Every table's rows as text, ordered, leaving out the other account's own rows (it may
/// create and clear its own resources in the matrix).
async fn snapshot(app: &TestApp) -> BTreeMap<String, String> {
    let other = app.other_account.user.clone();
    let mut out = BTreeMap::new();
    match app.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for table in tables {
                let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                    .bind(&table)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                let row = columns.iter().map(|c| format!("quote(\"{c}\")")).collect::<Vec<_>>().join(" || '|' || ");
                let filter =
                    if columns.iter().any(|c| c == "account_sid") { "account_sid <> $1" } else { "$1 IS NOT NULL" };
                let sql = format!(
                    "SELECT COALESCE(group_concat(r, char(10)), '') FROM \
                     (SELECT {row} AS r FROM \"{table}\" WHERE {filter} ORDER BY r)"
                );
                let text: String = sqlx::query_scalar(&sql).bind(&other).fetch_one(&mut conn).await.unwrap();
                out.insert(table, text);
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for table in tables {
                let scoped: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
                     AND table_name = $1 AND column_name = 'account_sid')",
                )
                .bind(&table)
                .fetch_one(&mut conn)
                .await
                .unwrap();
                let filter = if scoped { "t.account_sid <> $1" } else { "$1::text IS NOT NULL" };
                let sql = format!(
                    "SELECT COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM \"{table}\" t WHERE {filter}"
                );
                let text: String = sqlx::query_scalar(&sql).bind(&other).fetch_one(&mut conn).await.unwrap();
                out.insert(table, text);
            }
        }
    }
    out
}
