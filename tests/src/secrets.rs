//! Secrets at rest: the SQLite database and its -wal/-shm are private (0600), the generated keys
//! live in a private key file beside the database, not in it, so a copied database does not
//! reveal push credentials; a restart reuses the key file; a database that still holds its keys
//! (made before the key file existed) keeps working and gives its keys up to the key file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::Connection;
use verify_push_server::clock::SystemClock;
use verify_push_server::config::ServeArgs;
use verify_push_server::domain::sid::random_hex;
use verify_push_server::startup::Application;

use crate::helpers::{fresh_database, spawn_app_configured, spawn_app_on, spawn_app_with, Postgres, Sqlite, TestApp};

fn file_of(database_url: &str) -> PathBuf {
    PathBuf::from(database_url.trim_start_matches("sqlite://"))
}

fn key_file_of(database_url: &str) -> PathBuf {
    file_of(database_url).with_extension("keys")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The rows of `server_keys` in the SQLite database at `url`, read with a connection of its own.
async fn keys_in_database(url: &str) -> Vec<(String, String)> {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query_as("SELECT name, value FROM server_keys WHERE name <> 'health.write_probe' ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// A server with an FCM credential stored (encrypted) in a fresh SQLite database.
async fn app_with_a_credential() -> TestApp {
    let app = spawn_app_on(Sqlite, &fresh_database(Sqlite).await).await;
    crate::push::fcm_credential(&app, "http://127.0.0.1:9/token").await;
    app
}

fn args_on(database_url: &str) -> ServeArgs {
    let mut args = ServeArgs::defaults();
    args.bind = "127.0.0.1:0".into();
    args.database.database_url = database_url.to_owned();
    args.workers = Some(1);
    args
}

#[tokio::test]
async fn the_database_its_wal_and_shm_and_the_key_file_are_readable_by_the_owner_only() {
    let app = app_with_a_credential().await;
    let db = file_of(&app.database_url);
    for path in [db.clone(), sibling(&db, "-wal"), sibling(&db, "-shm"), key_file_of(&app.database_url)] {
        assert_eq!(format!("{:o}", mode(&path)), "600", "{}", path.display());
    }
    assert!(keys_in_database(&app.database_url).await.is_empty(), "generated keys stay out of the database");
}

#[tokio::test]
async fn a_copied_database_without_its_key_file_cannot_decrypt_credentials_and_the_server_says_why() {
    let app = app_with_a_credential().await;
    let copy = fresh_database(Sqlite).await;
    let mut conn = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(&format!("VACUUM INTO '{}'", file_of(&copy).display())).execute(&mut conn).await.unwrap();
    assert!(keys_in_database(&copy).await.is_empty(), "the copy holds no key");
    let refused = Application::build(args_on(&copy), Arc::new(SystemClock)).await;
    let error = format!("{:#}", refused.err().expect("a server on the copy without the key file refuses to start"));
    assert!(error.contains("credentials") && error.contains(&key_file_of(&copy).display().to_string()), "{error}");
    assert!(!key_file_of(&copy).exists(), "no key file is made up for the copy");
    // With the key file beside it, the copy is usable.
    std::fs::copy(key_file_of(&app.database_url), key_file_of(&copy)).unwrap();
    Application::build(args_on(&copy), Arc::new(SystemClock)).await.expect("the copy with its key file starts");
}

#[tokio::test]
async fn a_restart_reuses_the_key_file() {
    let app = app_with_a_credential().await;
    let keys = std::fs::read(key_file_of(&app.database_url)).unwrap();
    let again = Application::build(args_on(&app.database_url), Arc::new(SystemClock)).await;
    again.expect("a second start on the database and its key file decrypts the credentials");
    assert_eq!(std::fs::read(key_file_of(&app.database_url)).unwrap(), keys, "the key file is unchanged");
}

#[tokio::test]
async fn a_database_holding_its_keys_keeps_working_and_moves_them_to_the_key_file() {
    let app = app_with_a_credential().await;
    // As a database made before the key file existed: the keys in `server_keys`, no key file.
    let key_file = key_file_of(&app.database_url);
    let text = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
    let mut legacy = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && l.contains('=')) {
        let (name, value) = line.split_once('=').unwrap();
        sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2)")
            .bind(name.trim())
            .bind(value.trim())
            .execute(&mut conn)
            .await
            .unwrap();
        legacy.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    assert_eq!(legacy.len(), 2, "{text}");
    Application::build(args_on(&app.database_url), Arc::new(SystemClock))
        .await
        .expect("the legacy database starts and its credentials decrypt");
    assert!(keys_in_database(&app.database_url).await.is_empty(), "the keys left the database");
    let moved = std::fs::read_to_string(&key_file).unwrap();
    for (name, value) in &legacy {
        assert!(moved.contains(&format!("{name}={value}")), "{name} moved to the key file: {moved}");
    }
    assert_eq!(format!("{:o}", mode(&key_file)), "600");
}

/// PostgreSQL keeps its keys in the database unless `--keys-file` names a file: then the keys
/// stay out of the database, instances given the same file share them, and an instance without
/// it refuses to start once credentials exist.
#[tokio::test]
async fn postgresql_instances_given_a_key_file_share_it_and_keep_keys_out_of_the_database() {
    let key_file = std::env::temp_dir().join(format!("verify-push-e2e-{}.keys", random_hex::<8>()));
    let with_file = |args: &mut ServeArgs| args.keys_file = Some(key_file.clone());
    let first = spawn_app_with(Postgres, with_file).await;
    crate::push::fcm_credential(&first, "http://127.0.0.1:9/token").await;
    assert_eq!(format!("{:o}", mode(&key_file)), "600");
    let mut conn = sqlx::PgConnection::connect(&first.database_url).await.unwrap();
    let in_database: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM server_keys").fetch_one(&mut conn).await.unwrap();
    assert_eq!(in_database, 0, "no key in the database");
    let second = spawn_app_configured(Postgres, &first.database_url, with_file).await;
    let service = first.service().await;
    let token = first
        .post(&format!("/v2/Services/{service}/AccessTokens"), &[("Identity", "alice-0001"), ("FactorType", "push")])
        .await;
    let sid = token.assert_status(201)["sid"].as_str().unwrap().to_owned();
    second.get(&format!("/v2/Services/{service}/AccessTokens/{sid}")).await.assert_status(200);
    let refused = Application::build(args_on(&first.database_url), Arc::new(SystemClock)).await;
    let error = format!("{:#}", refused.err().expect("an instance without the key file refuses to start"));
    assert!(error.contains("cannot be decrypted"), "{error}");
}
