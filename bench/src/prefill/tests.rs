//! The prefill against freshly migrated databases, SQLite and PostgreSQL: its column lists name
//! every column the migrations require (NOT NULL without a default) and only columns that exist,
//! and the rows it writes read back through the server's API as the server's own do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use verify_push_server::clock::SystemClock;
use verify_push_server::config::ServeArgs;
use verify_push_server::startup::Application;

use super::*;
use crate::setup::{self, Backend};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "prefill-test-auth-token";
const CHALLENGES: u64 = 300;
const ENTITIES: u64 = 20;
const USERS: usize = 2;

/// Each table the prefill writes, with the columns it names.
const WRITTEN: [(&str, &str); 3] =
    [("entities", ENTITY_COLUMNS), ("factors", FACTOR_COLUMNS), ("challenges", CHALLENGE_COLUMNS)];

/// (every column, the required ones) of `table`, from the database's own catalogue.
async fn columns(db: &mut Db, table: &str) -> anyhow::Result<(BTreeSet<String>, BTreeSet<String>)> {
    let rows: Vec<(String, bool)> = match db {
        Db::Sqlite(c) => {
            sqlx::query_as(r#"SELECT name, "notnull" = 1 AND dflt_value IS NULL AND pk = 0 FROM pragma_table_info($1)"#)
                .bind(table)
                .fetch_all(c)
                .await?
        }
        Db::Postgres(c) => {
            sqlx::query_as(
                "SELECT column_name::text, is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO' \
                 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_all(c)
            .await?
        }
    };
    let all = rows.iter().map(|(name, _)| name.clone()).collect();
    let required = rows.into_iter().filter(|(_, required)| *required).map(|(name, _)| name).collect();
    Ok((all, required))
}

fn names(list: &str) -> BTreeSet<String> {
    list.split(',').map(|c| c.trim().to_owned()).collect()
}

/// What a fresh database leaves to remove.
enum Fresh {
    Folder(std::path::PathBuf),
    /// (the server's URL, the schema)
    Schema(String, String),
}

impl Fresh {
    async fn remove(self) -> anyhow::Result<()> {
        match self {
            Fresh::Folder(dir) => std::fs::remove_dir_all(dir)?,
            Fresh::Schema(base, schema) => {
                let mut conn = PgConnection::connect(&base).await?;
                sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }
}

/// A fresh database URL: a SQLite file in its own folder, or a PostgreSQL schema.
async fn fresh(postgres: bool) -> anyhow::Result<(String, Fresh)> {
    if !postgres {
        let dir = std::env::temp_dir().join(format!("verify-push-bench-prefill-{}", crate::ids::hex(6)));
        std::fs::create_dir_all(&dir)?;
        return Ok((format!("sqlite://{}", dir.join("prefill.db").display()), Fresh::Folder(dir)));
    }
    let base = std::env::var("VERIFY_PUSH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("bench_prefill_{}", crate::ids::hex(6));
    let mut conn = PgConnection::connect(&base).await.context("PostgreSQL is needed for the postgres half")?;
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await?;
    conn.close().await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((format!("{base}{sep}options=-c%20search_path%3D{schema}"), Fresh::Schema(base, schema)))
}

/// GET `path` as the account; the JSON object of a 200.
async fn get(http: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<Value> {
    let response = http.get(format!("{base}{path}")).basic_auth(ACCOUNT, Some(TOKEN)).send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
    Ok(body)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

async fn prefill_fits_the_migrations_and_reads_back(postgres: bool) -> anyhow::Result<()> {
    let (url, database) = fresh(postgres).await?;
    let mut args = ServeArgs::defaults();
    args.bind = "127.0.0.1:0".into();
    args.database.database_url = url.clone();
    args.database.database_max_connections = 4;
    args.account_sid = Some(ACCOUNT.to_owned());
    args.auth_token = Some(TOKEN.to_owned());
    args.workers = Some(1);
    let app = Application::build(args, Arc::new(SystemClock)).await?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], app.port()));
    let base = format!("http://{addr}");
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());

    // The migrated schema against the prefill's column lists.
    let mut db = Db::connect(&url).await?;
    let mut problems = Vec::new();
    for (table, list) in WRITTEN {
        let (all, required) = columns(&mut db, table).await?;
        anyhow::ensure!(!all.is_empty(), "no table {table}");
        let written = names(list);
        for missing in required.difference(&written) {
            problems
                .push(format!("{table}.{missing} is NOT NULL without a default, and the prefill does not write it"));
        }
        for unknown in written.difference(&all) {
            problems.push(format!("the prefill writes {table}.{unknown}, which the migrations do not have"));
        }
    }
    db.close().await;
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));

    // A Service and enrolled devices as the bench makes them, then the prefill.
    let backend = Backend::new(&base, addr, ACCOUNT, TOKEN)?;
    let service = backend.create_service("prefill test").await?;
    let users = setup::enroll_users(&backend, &service, USERS, "t").await?;
    let report = run(&url, &service, CHALLENGES, ENTITIES, false).await?;
    assert_eq!((report.challenges, report.entities), (CHALLENGES, ENTITIES));

    // Everything reads back through the API, each challenge under its own entity and factor.
    let http = reqwest::Client::new();
    let entities = get(&http, &base, &format!("/v2/Services/{service}/Entities?PageSize=100")).await?;
    let entities = entities["entities"].as_array().cloned().unwrap_or_default();
    assert_eq!(entities.len(), ENTITIES as usize + users.len());
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut one_challenge = None;
    for entity in &entities {
        let identity = text(entity, "identity");
        let scope = format!("/v2/Services/{service}/Entities/{identity}");
        let factors = get(&http, &base, &format!("{scope}/Factors")).await?;
        let factors = factors["factors"].as_array().cloned().unwrap_or_default();
        assert_eq!(factors.len(), 1, "{identity}: {factors:?}");
        let factor = &factors[0];
        assert_eq!((text(factor, "status"), text(factor, "factor_type")), ("verified", "push"), "{factor}");
        assert_eq!(factor["config"]["notification_platform"], "fcm", "{factor}");
        let challenges = get(&http, &base, &format!("{scope}/Challenges?PageSize=100")).await?;
        let challenges = challenges["challenges"].as_array().cloned().unwrap_or_default();
        assert!(!challenges.is_empty(), "{identity} got no challenge");
        for c in &challenges {
            assert_eq!(
                (text(c, "factor_sid"), text(c, "entity_sid"), text(c, "identity")),
                (text(factor, "sid"), text(entity, "sid"), identity),
                "{c}"
            );
            assert_eq!(c["details"]["message"], "Login request to Owl Bank", "{c}");
            let created = text(c, "date_created");
            assert!(created.len() == 20 && created.ends_with('Z'), "{c}");
            *statuses.entry(text(c, "status").to_owned()).or_default() += 1;
            one_challenge.get_or_insert_with(|| format!("{scope}/Challenges/{}", text(c, "sid")));
        }
    }
    assert_eq!(statuses.values().sum::<u64>(), CHALLENGES, "{statuses:?}");
    let known = ["approved", "denied", "expired", "pending"];
    assert!(statuses.keys().all(|s| known.contains(&s.as_str())), "{statuses:?}");
    assert!(statuses.get("approved").is_some_and(|n| *n > CHALLENGES / 2), "{statuses:?}");
    let path = one_challenge.unwrap_or_default();
    let fetched = get(&http, &base, &path).await?;
    assert!(path.ends_with(text(&fetched, "sid")) && fetched["hidden_details"].is_object(), "{fetched}");

    handle.stop(false).await;
    database.remove().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefill_fits_the_migrations_and_reads_back_on_sqlite() -> anyhow::Result<()> {
    prefill_fits_the_migrations_and_reads_back(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefill_fits_the_migrations_and_reads_back_on_postgres() -> anyhow::Result<()> {
    prefill_fits_the_migrations_and_reads_back(true).await
}
