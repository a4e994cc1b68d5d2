//! The seed file (`--seed`, README "Seed file") with the real binary, on both backends: the
//! example file serves its fixed SIDs and credentials; a restart with the same file writes
//! nothing; a changed file updates what it names and leaves the rest; a bad file stops the start
//! with the field and line at fault and leaves the database as it was. Seeded devices are
//! verified Factors with their fixed SIDs that answer Challenges, across restarts.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod support;

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;
use support::{free_port, on_both_backends, Backend, Database, Server, ACCOUNT, TOKEN};

const EXAMPLE_ACCOUNT: &str = "AC00000000000000000000000000005eed";
const EXAMPLE_TOKEN: &str = "local-dev-auth-token";
const EXAMPLE_KEY: &str = "SK00000000000000000000000000005eed";
const EXAMPLE_KEY_SECRET: &str = "local-dev-api-key-secret";
const EXAMPLE_SERVICE: &str = "VA00000000000000000000000000005eed";
const EXAMPLE_CREDENTIAL: &str = "CR00000000000000000000000000005eed";
const EXAMPLE_FACTOR: &str = "YF00000000000000000000000000005eed";
const EXAMPLE_IDENTITY: &str = "user-0001";

const AC: &str = "ACc0ffee00000000000000000000000001";
const SK: &str = "SKc0ffee00000000000000000000000001";
const CR: &str = "CRc0ffee00000000000000000000000001";
const VA: &str = "VAc0ffee00000000000000000000000001";
const VA_NEW: &str = "VAc0ffee00000000000000000000000002";
const YW: &str = "YWc0ffee00000000000000000000000001";
const YF: &str = "YFc0ffee00000000000000000000000001";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed.yaml")
}

/// A folder of its own holding a service-account JSON (`sa.json`, the example's fake one) and
/// the seed files a test writes; removed on drop.
struct SeedFolder(PathBuf);

impl SeedFolder {
    fn new(name: &str) -> SeedFolder {
        let dir = std::env::temp_dir().join(format!("vps-seed-{name}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let sa = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed/fcm-service-account.json");
        std::fs::copy(sa, dir.join("sa.json")).unwrap();
        SeedFolder(dir)
    }

    /// Writes `text` as the seed file and returns its path.
    fn write(&self, text: &str) -> String {
        let path = self.0.join("seed.yaml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for SeedFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The seed file of the update and refusal tests: `token`, the Service's name, and what follows
/// the first Service (more Services, with the indentation of the list).
fn seed_text(token: &str, service_name: &str, tail: &str) -> String {
    format!(
        "accounts:
  - account_sid: {AC}
    auth_token: {token}
    api_keys: [{{sid: {SK}, secret: key-secret-1}}]
    credentials:
      - {{sid: {CR}, type: fcm, friendly_name: First, secret_file: sa.json}}
    services:
      - sid: {VA}
        friendly_name: {service_name}
        push: {{include_date: false, fcm_credential_sid: {CR}}}
        webhooks:
          - {{friendly_name: app, webhook_url: 'http://127.0.0.1:9/one', event_types: ['*']}}
          - {{sid: {YW}, friendly_name: fixed, webhook_url: 'http://127.0.0.1:9/fixed', event_types: [factor.created]}}
{tail}"
    )
}

async fn get(url: &str, user: &str, secret: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new().get(url).basic_auth(user, Some(secret)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(url: &str, user: &str, secret: &str, form: &[(&str, &str)]) -> Value {
    let response = reqwest::Client::new().post(url).basic_auth(user, Some(secret)).form(form).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

/// Every row of the tables a seed writes, as text. Credential secrets are included: sealed
/// again, a secret would differ even with the same material.
async fn snapshot(db: &Database) -> Vec<String> {
    let tables: [(&str, &[&str], &str); 7] = [
        ("accounts", &["sid", "auth_token", "friendly_name", "date_created"], "sid"),
        ("api_keys", &["sid", "account_sid", "date_created"], "sid"),
        (
            "credentials",
            &["id", "sid", "account_sid", "friendly_name", "type", "sandbox", "secret", "date_created", "date_updated"],
            "id",
        ),
        (
            "services",
            &[
                "id",
                "sid",
                "account_sid",
                "friendly_name",
                "push_include_date",
                "push_apn_credential_sid",
                "push_fcm_credential_sid",
                "totp_issuer",
                "totp_time_step",
                "totp_code_length",
                "totp_skew",
                "settings",
                "date_created",
                "date_updated",
            ],
            "id",
        ),
        (
            "webhooks",
            &[
                "id",
                "sid",
                "service_sid",
                "friendly_name",
                "event_types",
                "webhook_url",
                "status",
                "version",
                "date_created",
                "date_updated",
            ],
            "id",
        ),
        (
            "factors",
            &[
                "id",
                "sid",
                "service_sid",
                "identity",
                "friendly_name",
                "status",
                "binding_public_key",
                "config",
                "date_created",
                "date_updated",
            ],
            "id",
        ),
        (
            "virtual_devices",
            &["id", "factor_sid", "service_sid", "identity", "style", "sealed_key", "date_created"],
            "id",
        ),
    ];
    let mut rows = Vec::new();
    for (table, columns, order) in tables {
        let text: Vec<String> = columns.iter().map(|c| format!("COALESCE(CAST({c} AS TEXT), '-')")).collect();
        let sql = format!("SELECT '{table}|' || {} FROM {table} ORDER BY {order}", text.join(" || '|' || "));
        let found: Vec<String> = if db.postgres.is_some() {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(&sql).fetch_all(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(&sql).fetch_all(&mut conn).await.unwrap()
        };
        rows.extend(found);
    }
    rows
}

on_both_backends!(
    the_example_seed_file_serves_its_fixed_sids_and_a_restart_writes_nothing,
    a_changed_seed_file_updates_what_it_names_and_leaves_the_rest,
    a_bad_seed_file_stops_the_start_and_leaves_the_database_as_it_was,
    a_reset_puts_back_what_the_seed_file_gives_the_account,
);

async fn the_example_seed_file_serves_its_fixed_sids_and_a_restart_writes_nothing(backend: Backend) {
    let database = Database::fresh(backend, "seed_example").await;
    let seed = example();
    let env = [("VERIFY_PUSH_SEED", seed.to_str().unwrap())];
    let mut server = Server::start(&database.url, free_port(), &env).await;
    let service_url = format!("{}/v2/Services/{EXAMPLE_SERVICE}", server.url);

    let (status, service) = get(&service_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{service}");
    assert_eq!(service["account_sid"], EXAMPLE_ACCOUNT);
    assert_eq!(service["friendly_name"], "Owl Bank");
    assert_eq!(
        service["push"],
        json!({"include_date": false, "apn_credential_sid": null, "fcm_credential_sid": EXAMPLE_CREDENTIAL})
    );
    assert_eq!(service["totp"], json!({"issuer": "Owl Bank", "time_step": 30, "code_length": 6, "skew": 1}));

    // The seeded API key is the seeded account's; wrong secrets and other accounts get nothing.
    assert_eq!(get(&service_url, EXAMPLE_KEY, EXAMPLE_KEY_SECRET).await.0, StatusCode::OK);
    assert_eq!(get(&service_url, EXAMPLE_KEY, "wrong-secret-123").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&service_url, EXAMPLE_ACCOUNT, "wrong-token-123").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&service_url, ACCOUNT, TOKEN).await.0, StatusCode::NOT_FOUND);

    let credential_url = format!("{}/v1/Credentials/{EXAMPLE_CREDENTIAL}", server.url);
    let (status, credential) = get(&credential_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (credential["type"].as_str(), credential["friendly_name"].as_str()),
        (Some("fcm"), Some("Owl Bank Android"))
    );
    let (_, hooks) = get(&format!("{service_url}/Webhooks"), EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    let hooks = hooks["webhooks"].as_array().unwrap().clone();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["webhook_url"], "http://127.0.0.1:9000/verify-events");
    assert_eq!(hooks[0]["event_types"], json!(["*"]));
    assert_eq!((hooks[0]["version"].as_str(), hooks[0]["status"].as_str()), (Some("v2"), Some("enabled")));

    // The seeded device: a verified push Factor with its fixed SID, that answers Challenges.
    let entity_url = format!("{service_url}/Entities/{EXAMPLE_IDENTITY}");
    let (status, factor) = get(&format!("{entity_url}/Factors/{EXAMPLE_FACTOR}"), EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{factor}");
    assert_eq!(
        (factor["status"].as_str(), factor["identity"].as_str(), factor["friendly_name"].as_str()),
        (Some("verified"), Some(EXAMPLE_IDENTITY), Some("Test phone"))
    );
    assert_eq!(factor["config"]["notification_platform"], "none", "no push_token: no platform");
    let device_url = format!("{}/_emulator/Devices/{EXAMPLE_FACTOR}", server.url);
    let (status, device) = get(&device_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!((device["style"].as_str(), device["service_sid"].as_str()), (Some("android"), Some(EXAMPLE_SERVICE)));
    approve_with_device(&server.url, &entity_url).await;
    server.kill();

    let before = snapshot(&database).await;
    assert!(before.iter().any(|row| row.contains(EXAMPLE_SERVICE) && row.contains(EXAMPLE_CREDENTIAL)), "{before:?}");
    let server = Server::start(&database.url, free_port(), &env).await;
    assert_eq!(snapshot(&database).await, before, "a start with the same file writes nothing, enrols nothing");
    let service_url = format!("{}/v2/Services/{EXAMPLE_SERVICE}", server.url);
    assert_eq!(get(&service_url, EXAMPLE_KEY, EXAMPLE_KEY_SECRET).await.0, StatusCode::OK);
    // The device kept its key: it still answers.
    approve_with_device(&server.url, &format!("{service_url}/Entities/{EXAMPLE_IDENTITY}")).await;
}

/// Creates a Challenge for the example's device and approves it as the device does
/// (`/_emulator/Devices/{FactorSid}/Challenges/latest`); the backend then reads it approved.
async fn approve_with_device(base: &str, entity_url: &str) {
    let challenge = post(
        &format!("{entity_url}/Challenges"),
        EXAMPLE_ACCOUNT,
        EXAMPLE_TOKEN,
        &[("FactorSid", EXAMPLE_FACTOR), ("Details.Message", "Log in?")],
    )
    .await;
    assert_eq!(challenge["status"], "pending");
    let answer_url = format!("{base}/_emulator/Devices/{EXAMPLE_FACTOR}/Challenges/latest");
    let answered = post(&answer_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN, &[("Status", "approved")]).await;
    assert_eq!(answered["sid"], challenge["sid"]);
    let challenge_url = format!("{entity_url}/Challenges/{}", challenge["sid"].as_str().unwrap());
    let (status, fetched) = get(&challenge_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    assert_eq!((status, fetched["status"].as_str()), (StatusCode::OK, Some("approved")), "{fetched}");
}

async fn a_changed_seed_file_updates_what_it_names_and_leaves_the_rest(backend: Backend) {
    let database = Database::fresh(backend, "seed_change").await;
    let folder = SeedFolder::new("change");
    let path = folder.write(&seed_text("first-token-1", "First name", ""));
    let mut server = Server::start(&database.url, free_port(), &[("VERIFY_PUSH_SEED", &path)]).await;
    let service_url = format!("{}/v2/Services/{VA}", server.url);
    let (_, first) = get(&service_url, AC, "first-token-1").await;
    let (_, hooks) = get(&format!("{service_url}/Webhooks"), AC, "first-token-1").await;
    let app_sid = hooks["webhooks"][0]["sid"].as_str().unwrap().to_owned();
    assert_ne!(app_sid, YW);
    // Made at runtime: not the file's business.
    let runtime =
        post(&format!("{}/v2/Services", server.url), AC, "first-token-1", &[("FriendlyName", "Runtime")]).await;
    server.kill();

    // New token and key secret, Service settings and webhooks changed; the credential is no
    // longer in the file but still named (it is stored), and a new Service is added.
    let changed =
        seed_text("second-token-2", "Second name", &format!("      - {{sid: {VA_NEW}, friendly_name: Added}}\n"))
            .replace("secret: key-secret-1", "secret: key-secret-2")
            .replace(&format!("      - {{sid: {CR}, type: fcm, friendly_name: First, secret_file: sa.json}}\n"), "")
            .replace("    credentials:\n", "")
            .replace(
                &format!("push: {{include_date: false, fcm_credential_sid: {CR}}}"),
                &format!(
                    "push: {{include_date: true, fcm_credential_sid: {CR}}}\n        totp: {{issuer: Owl, skew: 2}}"
                ),
            )
            .replace("http://127.0.0.1:9/one", "http://127.0.0.1:9/two")
            .replace("event_types: [factor.created]}", "event_types: [factor.created], status: disabled}");
    let path = folder.write(&changed);
    let server = Server::start(&database.url, free_port(), &[("VERIFY_PUSH_SEED", &path)]).await;
    let service_url = format!("{}/v2/Services/{VA}", server.url);

    assert_eq!(get(&service_url, AC, "first-token-1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&service_url, SK, "key-secret-1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&service_url, SK, "key-secret-2").await.0, StatusCode::OK);
    let (status, service) = get(&service_url, AC, "second-token-2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(service["friendly_name"], "Second name");
    assert_eq!(service["push"]["include_date"], true);
    assert_eq!(service["push"]["fcm_credential_sid"], CR);
    assert_eq!(service["totp"], json!({"issuer": "Owl", "time_step": null, "code_length": null, "skew": 2}));
    assert_eq!(service["date_created"], first["date_created"], "updated in place");

    let (_, hooks) = get(&format!("{service_url}/Webhooks"), AC, "second-token-2").await;
    let hooks = hooks["webhooks"].as_array().unwrap().clone();
    assert_eq!(hooks.len(), 2, "updated, not added: {hooks:?}");
    assert_eq!(
        (hooks[0]["sid"].as_str(), hooks[0]["webhook_url"].as_str()),
        (Some(&*app_sid), Some("http://127.0.0.1:9/two"))
    );
    assert_eq!((hooks[1]["sid"].as_str(), hooks[1]["status"].as_str()), (Some(YW), Some("disabled")));

    let credential_url = format!("{}/v1/Credentials/{CR}", server.url);
    assert_eq!(get(&credential_url, AC, "second-token-2").await.0, StatusCode::OK, "not deleted when left out");
    let (_, services) = get(&format!("{}/v2/Services", server.url), AC, "second-token-2").await;
    let sids: Vec<&str> = services["services"].as_array().unwrap().iter().map(|s| s["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, [VA, runtime["sid"].as_str().unwrap(), VA_NEW]);
}

async fn a_bad_seed_file_stops_the_start_and_leaves_the_database_as_it_was(backend: Backend) {
    let database = Database::fresh(backend, "seed_bad").await;
    let folder = SeedFolder::new("bad");
    let good = seed_text(
        "first-token-1",
        "First name",
        &format!("        devices: [{{identity: user-0001, factor_sid: {YF}}}]\n"),
    );
    let path = folder.write(&good);
    let mut server = Server::start(&database.url, free_port(), &[("VERIFY_PUSH_SEED", &path)]).await;
    server.kill();
    let before = snapshot(&database).await;
    assert!(before.iter().any(|row| row.starts_with("webhooks|") && row.contains(YW)), "{before:?}");
    assert!(before.iter().any(|row| row.starts_with("virtual_devices|") && row.contains(YF)), "{before:?}");

    let unknown = "CRdead0000000000000000000000000000";
    // Valid up to its last line: a new token, a renamed Service, a new one, then a Service that
    // names a credential that exists nowhere.
    let late = seed_text(
        "second-token-2",
        "Renamed",
        &format!(
            "      - {{sid: {VA_NEW}, friendly_name: Added}}\n      - {{sid: VAdead0000000000000000000000000000, friendly_name: Late, push: {{fcm_credential_sid: {unknown}}}}}\n"
        ),
    );
    let cases = [
        (
            good.replace(&format!("sid: {VA}"), "sid: VA-not-hex"),
            "accounts[0].services[0].sid: must be VA followed by 32 hexadecimal digits at line 8 column 14".to_owned(),
        ),
        (
            good.replace("secret_file: sa.json", "secret_file: missing.json"),
            "accounts[0].credentials[0].secret_file: cannot read ".to_owned(),
        ),
        (
            late,
            format!(
                "accounts[0].services[2].push.fcm_credential_sid: no credential {unknown} in this account, in the \
                 file or stored at line 15"
            ),
        ),
        (
            format!("accounts:\n  - {{account_sid: {ACCOUNT}, auth_token: also-here-1}}\n"),
            format!("account {ACCOUNT} is configured both by the seed file and by the flags or the accounts file"),
        ),
        (
            format!("accounts:\n  - account_sid: ACc0ffee00000000000000000000000009\n    auth_token: other-token\n    services:\n      - {{sid: {VA}, friendly_name: Taken}}\n"),
            "accounts[0].services[0].sid: belongs to another account at line 5".to_owned(),
        ),
        (
            // The seeded device's Factor SID, now under another Service of the file.
            seed_text(
                "first-token-1",
                "First name",
                &format!("      - {{sid: {VA_NEW}, friendly_name: Added, devices: [{{identity: user-0001, factor_sid: {YF}}}]}}\n"),
            ),
            "accounts[0].services[1].devices[0].factor_sid: is a Factor of another account, Service or identity at line 14"
                .to_owned(),
        ),
    ];
    for (text, wanted) in cases {
        let path = folder.write(&text);
        let stderr = Server::refused(&database.url, &[("VERIFY_PUSH_SEED", &path)]);
        assert!(stderr.contains(&wanted), "wanted {wanted:?} in:\n{stderr}");
        assert_eq!(snapshot(&database).await, before, "nothing of a refused file is written:\n{text}");
    }
}

/// `/_emulator/Reset` deletes everything of the account, then puts back what the seed file gives
/// it (README.md, "Reset"): a runtime Service goes, a renamed seeded Service gets its name back,
/// and the seeded device (a new key, the same Factor SID) answers again.
async fn a_reset_puts_back_what_the_seed_file_gives_the_account(backend: Backend) {
    let database = Database::fresh(backend, "seed_reset").await;
    let seed = example();
    let server = Server::start(&database.url, free_port(), &[("VERIFY_PUSH_SEED", seed.to_str().unwrap())]).await;
    let service_url = format!("{}/v2/Services/{EXAMPLE_SERVICE}", server.url);
    let runtime =
        post(&format!("{}/v2/Services", server.url), EXAMPLE_ACCOUNT, EXAMPLE_TOKEN, &[("FriendlyName", "Runtime")])
            .await;
    let runtime_url = format!("{}/v2/Services/{}", server.url, runtime["sid"].as_str().unwrap());
    let renamed = post(&service_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN, &[("FriendlyName", "Renamed")]).await;
    assert_eq!(renamed["friendly_name"], "Renamed");
    let entity_url = format!("{service_url}/Entities/{EXAMPLE_IDENTITY}");
    let pending = post(
        &format!("{entity_url}/Challenges"),
        EXAMPLE_ACCOUNT,
        EXAMPLE_TOKEN,
        &[("FactorSid", EXAMPLE_FACTOR), ("Details.Message", "Before the reset")],
    )
    .await;

    let reset = reqwest::Client::new()
        .post(format!("{}/_emulator/Reset", server.url))
        .basic_auth(EXAMPLE_ACCOUNT, Some(EXAMPLE_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);

    assert_eq!(get(&runtime_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await.0, StatusCode::NOT_FOUND);
    let (status, service) = get(&service_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    assert_eq!((status, service["friendly_name"].as_str()), (StatusCode::OK, Some("Owl Bank")), "{service}");
    let challenge_url = format!("{entity_url}/Challenges/{}", pending["sid"].as_str().unwrap());
    assert_eq!(get(&challenge_url, EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await.0, StatusCode::NOT_FOUND);
    let (status, factor) = get(&format!("{entity_url}/Factors/{EXAMPLE_FACTOR}"), EXAMPLE_ACCOUNT, EXAMPLE_TOKEN).await;
    assert_eq!((status, factor["status"].as_str()), (StatusCode::OK, Some("verified")), "{factor}");
    approve_with_device(&server.url, &entity_url).await;
    assert_eq!(get(&service_url, EXAMPLE_KEY, EXAMPLE_KEY_SECRET).await.0, StatusCode::OK, "API keys stay");
}
