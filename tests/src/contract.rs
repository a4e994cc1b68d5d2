//! The served contract: `openapi.yaml` lists exactly the routes the server serves, its shared
//! schemas are Twilio's, every response body validates against Twilio's schema with every
//! property present, and both migration folders carry the same versions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use verify_push_server::api::ROUTES;

use crate::helpers::{identity, on_both_backends, TestApp};
use crate::schema::OpenApi;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

pub(crate) fn served_contract() -> Value {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn twilio() -> OpenApi {
    OpenApi::from_json_file(&root().join("reference/twilio-oai/twilio_verify_v2.json")).unwrap()
}

#[test]
fn openapi_yaml_lists_exactly_the_served_routes() {
    let doc = served_contract();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "served but undocumented: {missing:?}; documented but not served: {extra:?}"
    );
}

#[test]
fn openapi_yaml_shares_twilios_schemas_unchanged() {
    let doc = served_contract();
    let verify = twilio();
    let notify = OpenApi::from_json_file(&root().join("reference/twilio-oai/twilio_notify_v1.json")).unwrap();
    let ours = doc["components"]["schemas"].as_object().unwrap();
    let mut compared = 0;
    for (name, schema) in ours {
        if name.starts_with("emulator.") {
            continue;
        }
        let theirs = verify.schema(name).or_else(|| notify.schema(name));
        assert_eq!(Some(schema), theirs, "schema {name} differs from Twilio's");
        compared += 1;
    }
    assert!(compared >= 10, "the resource schemas are there");
    assert!(ours.contains_key("notify.v1.credential"));
}

#[test]
fn vendored_twilio_spec_is_the_recorded_version() {
    // docs/protocol/rest-api.md#sources records the sha256 of the copied spec: 976da0a4…f2da.
    let bytes = std::fs::read(root().join("reference/twilio-oai/twilio_verify_v2.json")).unwrap();
    let digest = verify_push_server::crypto::sha256(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert!(hex.starts_with("976da0a4") && hex.ends_with("f2da"), "{hex}");
}

#[test]
fn both_migration_folders_have_the_same_versions() {
    let versions = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root().join("migrations").join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = versions("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, versions("postgres"));
}

on_both_backends!(every_response_validates_against_twilios_schema, healthz_reports_the_database);

#[tokio::test]
async fn the_healthcheck_subcommand_tells_a_live_server_from_a_dead_port() {
    let app = crate::helpers::spawn_app(crate::helpers::Sqlite).await;
    let bind = app.url.trim_start_matches("http://").to_owned();
    verify_push_server::startup::healthcheck(&bind).await.unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert!(verify_push_server::startup::healthcheck(&free.to_string()).await.is_err());
}

#[track_caller]
fn check(api: &OpenApi, schema: &str, body: &Value) {
    let problems = api.validate_complete(schema, body);
    assert!(problems.is_empty(), "{schema}: {problems:#?}\n{body:#}");
}

async fn every_response_validates_against_twilios_schema(app: TestApp) {
    let api = twilio();
    let service = app.service().await;
    let s = app.get(&format!("/v2/Services/{service}")).await;
    check(&api, "verify.v2.service", &s.body);
    let s = app.post(&format!("/v2/Services/{service}"), &[("Push.IncludeDate", "true"), ("Totp.Skew", "2")]).await;
    check(&api, "verify.v2.service", &s.body);
    check(&api, "verify.v2.service", &app.get("/v2/Services").await.body["services"][0]);

    let user = identity();
    let e = app.post(&format!("/v2/Services/{service}/Entities"), &[("Identity", &user)]).await;
    check(&api, "verify.v2.service.entity", &e.body);
    check(&api, "verify.v2.service.entity", &app.get(&format!("/v2/Services/{service}/Entities/{user}")).await.body);
    check(
        &api,
        "verify.v2.service.entity",
        &app.get(&format!("/v2/Services/{service}/Entities")).await.body["entities"][0],
    );

    let (factor, key) = app.unverified_factor(&service, &user).await;
    let created = app
        .post(
            &format!("/v2/Services/{service}/Entities/{}/Factors", identity()),
            &[
                ("FriendlyName", "f"),
                ("FactorType", "push"),
                ("Binding.Alg", "ES256"),
                ("Binding.PublicKey", &crate::helpers::spki_base64(&key)),
                ("Config.SdkVersion", "1"),
                ("Config.AppId", "a"),
                ("Config.NotificationPlatform", "none"),
                ("Metadata", r#"{"os":"iOS"}"#),
            ],
        )
        .await;
    check(&api, "verify.v2.service.entity.new_factor", created.assert_status(201));
    let f = app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors/{factor}")).await;
    check(&api, "verify.v2.service.entity.factor", &f.body);
    check(
        &api,
        "verify.v2.service.entity.factor",
        &app.get(&format!("/v2/Services/{service}/Entities/{user}/Factors")).await.body["factors"][0],
    );

    let (verified, _) = app.verified_factor(&service, &user).await;
    let c = app
        .post(
            &format!("/v2/Services/{service}/Entities/{user}/Challenges"),
            &[
                ("FactorSid", &verified),
                ("Details.Message", "m"),
                ("Details.Fields", r#"{"label":"a","value":"b"}"#),
                ("HiddenDetails", r#"{"ip":"10.0.0.1"}"#),
            ],
        )
        .await;
    check(&api, "verify.v2.service.entity.challenge", c.assert_status(201));
    let sid = c.body["sid"].as_str().unwrap();
    check(
        &api,
        "verify.v2.service.entity.challenge",
        &app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges/{sid}")).await.body,
    );
    check(
        &api,
        "verify.v2.service.entity.challenge",
        &app.get(&format!("/v2/Services/{service}/Entities/{user}/Challenges")).await.body["challenges"][0],
    );

    let t =
        app.post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", &user), ("FactorType", "push")]).await;
    check(&api, "verify.v2.service.access_token", t.assert_status(201));
    let tsid = t.body["sid"].as_str().unwrap();
    check(
        &api,
        "verify.v2.service.access_token",
        &app.get(&format!("/v2/Services/{service}/AccessTokens/{tsid}")).await.body,
    );

    let w = app
        .post(
            &format!("/v2/Services/{service}/Webhooks"),
            &[("FriendlyName", "w"), ("EventTypes", "*"), ("WebhookUrl", "https://example.com")],
        )
        .await;
    check(&api, "verify.v2.service.webhook", w.assert_status(201));
    let wsid = w.body["sid"].as_str().unwrap();
    check(
        &api,
        "verify.v2.service.webhook",
        &app.post(&format!("/v2/Services/{service}/Webhooks/{wsid}"), &[("Status", "disabled")]).await.body,
    );
    check(
        &api,
        "verify.v2.service.webhook",
        &app.get(&format!("/v2/Services/{service}/Webhooks")).await.body["webhooks"][0],
    );

    check(&api, "verify.v2.form", &app.get("/v2/Forms/form-push").await.body);
}

async fn healthz_reports_the_database(app: TestApp) {
    let reply = app.send(reqwest::Method::GET, "/healthz", None, &[], &[], None).await;
    let body = reply.assert_status(200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["database"]["backend"], app.backend.name());
    assert!(reply.headers.contains_key("date"), "every response carries Date");
}
