//! `--prefill N`: N challenges already stored before the timed phase, written straight into the
//! server's database (through HTTP a million would take minutes), spread over many entities.
//!
//! Rows look like the server's own: random SIDs, one verified push factor per entity (a valid
//! P-256 SPKI key, a unique credential SID), details/hidden details as the server stores them,
//! dates over the last 30 days; about 80 % approved, 9 % denied, 10 % expired (already swept, as
//! the sweeper leaves them) and 1 % pending for another hour. The bench's own enrolled users get
//! their share too, so their lists have history. SQLite gets batched multi-row INSERTs in large
//! transactions (the server keeps running: WAL lets this second writer in while the server's
//! writer is idle) and a WAL checkpoint; PostgreSQL gets COPY and an ANALYZE of the tables written
//! (what autovacuum would do shortly after such a load). SQLite is deliberately not ANALYZEd: a server that grew through
//! its API has no statistics either.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::pkcs8::EncodePublicKey;
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

use crate::ids::FastRng;
use crate::setup::{now_unix, PUSH_TOKEN};

/// What was written.
#[derive(Debug, Clone)]
pub struct PrefillReport {
    pub challenges: u64,
    pub entities: u64,
    pub took: Duration,
}

enum Db {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Db {
    async fn connect(url: &str) -> anyhow::Result<Db> {
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .busy_timeout(Duration::from_secs(60))
                .foreign_keys(true);
            Ok(Db::Sqlite(SqliteConnection::connect_with(&options).await.context("opening the SQLite database")?))
        } else {
            let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
            Ok(Db::Postgres(PgConnection::connect_with(&options).await.context("connecting to PostgreSQL")?))
        }
    }

    async fn exec(&mut self, sql: &str) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            Db::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .with_context(|| format!("prefill SQL failed: {}…", sql.chars().take(300).collect::<String>()))
    }

    /// (id, account_sid) of the Service.
    async fn service(&mut self, sid: &str) -> anyhow::Result<(i64, String)> {
        let sql = "SELECT id, account_sid FROM services WHERE sid = $1";
        let row = match self {
            Db::Sqlite(c) => {
                let r = sqlx::query(sql).bind(sid).fetch_optional(c).await?;
                r.map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
            }
            Db::Postgres(c) => {
                let r = sqlx::query(sql).bind(sid).fetch_optional(c).await?;
                r.map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
            }
        };
        row.with_context(|| format!("service {sid} is not in the database"))
    }

    /// Every (entity, factor) of the Service.
    async fn targets(&mut self, service_id: i64) -> anyhow::Result<Vec<Target>> {
        let sql = "SELECT e.id, e.sid, e.identity, f.id, f.sid FROM entities e \
                   JOIN factors f ON f.entity_id = e.id WHERE e.service_id = $1 ORDER BY e.id, f.id";
        macro_rules! rows {
            ($c:expr) => {
                sqlx::query(sql)
                    .bind(service_id)
                    .fetch_all($c)
                    .await?
                    .into_iter()
                    .map(|r| Target {
                        entity_id: r.get(0),
                        entity_sid: r.get(1),
                        identity: r.get(2),
                        factor_id: r.get(3),
                        factor_sid: r.get(4),
                    })
                    .collect()
            };
        }
        Ok(match self {
            Db::Sqlite(c) => rows!(c),
            Db::Postgres(c) => rows!(c),
        })
    }

    async fn close(self) {
        match self {
            Db::Sqlite(c) => {
                c.close().await.ok();
            }
            Db::Postgres(c) => {
                c.close().await.ok();
            }
        }
    }
}

struct Target {
    entity_id: i64,
    entity_sid: String,
    identity: String,
    factor_id: i64,
    factor_sid: String,
}

/// The columns each table's rows are written with (in the order of the values); a test checks
/// them against the migrations (every column they require is here, every one here exists).
const ENTITY_COLUMNS: &str = "sid, service_id, account_sid, service_sid, identity, date_created, date_updated";
const FACTOR_COLUMNS: &str = "sid, entity_id, account_sid, service_sid, entity_sid, identity, friendly_name, \
    factor_type, status, binding_alg, binding_public_key, credential_sid, config, metadata, date_created, date_updated";
const CHALLENGE_COLUMNS: &str = "sid, entity_id, factor_id, account_sid, service_sid, entity_sid, identity, \
    factor_sid, factor_type, status, responded_reason, details, hidden_details, metadata, expiration_date, \
    date_responded, date_created, date_updated";

/// One challenge row's values, in [`CHALLENGE_COLUMNS`] order (`None` is NULL).
fn challenge_values(
    rng: &mut FastRng,
    i: u64,
    n: u64,
    now: i64,
    t: &Target,
    account_sid: &str,
    service_sid: &str,
) -> [Option<String>; 18] {
    const SPAN: i64 = 30 * 86_400;
    let ip = format!("198.51.100.{}", i % 250 + 1);
    let details = format!(
        r#"{{"fields":[{{"label":"IP","value":"{ip}"}},{{"label":"Location","value":"Porto, PT"}}],"message":"Login request to Owl Bank"}}"#
    );
    let hidden = format!(r#"{{"ip":"{ip}","session":"p-{i}"}}"#);
    let roll = rng.below(1000);
    let mut created = now - SPAN + (i as i64).saturating_mul(SPAN) / (n.max(1) as i64);
    let (status, expiration, responded) = if roll < 10 {
        created = now - rng.below(600) as i64;
        ("pending", now + 3600, None)
    } else if roll < 810 {
        ("approved", created + 300, Some(created + 5 + rng.below(60) as i64))
    } else if roll < 900 {
        ("denied", created + 300, Some(created + 5 + rng.below(60) as i64))
    } else {
        ("expired", created + 300, None)
    };
    let updated = responded.unwrap_or(if status == "expired" { created + 310 } else { created });
    [
        Some(rng.sid("YC")),
        Some(t.entity_id.to_string()),
        Some(t.factor_id.to_string()),
        Some(account_sid.to_owned()),
        Some(service_sid.to_owned()),
        Some(t.entity_sid.clone()),
        Some(t.identity.clone()),
        Some(t.factor_sid.clone()),
        Some("push".to_owned()),
        Some(status.to_owned()),
        Some("none".to_owned()),
        Some(details),
        Some(hidden),
        None,
        Some(expiration.to_string()),
        responded.map(|r| r.to_string()),
        Some(created.to_string()),
        Some(updated.to_string()),
    ]
}

/// SQL literal (values never hold a quote, but escape anyway).
fn literal(value: &Option<String>, numeric: bool) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(v) if numeric => v.clone(),
        Some(v) => format!("'{}'", v.replace('\'', "''")),
    }
}

const NUMERIC: [bool; 18] = [
    false, true, true, false, false, false, false, false, false, false, false, false, false, false, true, true, true,
    true,
];

/// Writes `count` challenges over `entities` new entities (plus the Service's existing ones).
pub async fn run(
    database_url: &str,
    service_sid: &str,
    count: u64,
    entities: u64,
    progress: bool,
) -> anyhow::Result<PrefillReport> {
    let started = Instant::now();
    let mut db = Db::connect(database_url).await?;
    let (service_id, account_sid) = db.service(service_sid).await?;
    let now = now_unix();
    let mut rng = FastRng::new();

    // One P-256 key for every prefilled factor: keys only need to be unique within an entity.
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let spki = STANDARD.encode(key.verifying_key().to_public_key_der().map_err(|e| anyhow::anyhow!("{e}"))?.as_bytes());

    // Entities and their factors, in batches.
    let batch = 250u64;
    let mut first = 0u64;
    while first < entities {
        let last = (first + batch).min(entities);
        let mut e_sql = format!("INSERT INTO entities ({ENTITY_COLUMNS}) VALUES ");
        for i in first..last {
            let created = now - 40 * 86_400 + (i as i64 % 86_400);
            if i > first {
                e_sql.push(',');
            }
            let _ = write!(
                e_sql,
                "('{}', {service_id}, '{account_sid}', '{service_sid}', 'prefill-user-{i:07}', {created}, {created})",
                rng.sid("YE")
            );
        }
        db.exec(&e_sql).await?;
        let mut f_sql = format!(
            "INSERT INTO factors ({FACTOR_COLUMNS}) SELECT v.column1, e.id, e.account_sid, e.service_sid, e.sid, \
             e.identity, v.column3, 'push', 'verified', 'ES256', v.column4, v.column5, v.column6, NULL, \
             e.date_created, e.date_created FROM (VALUES "
        );
        for i in first..last {
            let credential = rng.sid("CR");
            let config = format!(
                r#"{{"app_id":"com.verifypushemulator.device","credential_sid":"{credential}","notification_platform":"fcm","notification_token":"{PUSH_TOKEN}","sdk_version":"0.9.0"}}"#
            );
            if i > first {
                f_sql.push(',');
            }
            let _ = write!(
                f_sql,
                "('{}', 'prefill-user-{i:07}', 'Pixel {i}', '{spki}', '{credential}', '{config}')",
                rng.sid("YF")
            );
        }
        let _ = write!(f_sql, ") v JOIN entities e ON e.service_id = {service_id} AND e.identity = v.column2");
        db.exec(&f_sql).await?;
        first = last;
    }

    let targets = db.targets(service_id).await?;
    if targets.is_empty() {
        bail!("no entity with a factor to prefill");
    }
    let n = count;
    let mut written = 0u64;
    let mut last_report = Instant::now();
    match &mut db {
        Db::Sqlite(conn) => {
            const ROWS_PER_STATEMENT: u64 = 400;
            const ROWS_PER_TRANSACTION: u64 = 100_000;
            while written < n {
                let tx_end = (written + ROWS_PER_TRANSACTION).min(n);
                let mut tx = conn.begin().await?;
                while written < tx_end {
                    let end = (written + ROWS_PER_STATEMENT).min(tx_end);
                    let mut sql = format!("INSERT INTO challenges ({CHALLENGE_COLUMNS}) VALUES ");
                    for i in written..end {
                        let t = &targets[(i % targets.len() as u64) as usize];
                        let values = challenge_values(&mut rng, i, n, now, t, &account_sid, service_sid);
                        if i > written {
                            sql.push(',');
                        }
                        sql.push('(');
                        for (k, v) in values.iter().enumerate() {
                            if k > 0 {
                                sql.push(',');
                            }
                            sql.push_str(&literal(v, NUMERIC[k]));
                        }
                        sql.push(')');
                    }
                    sqlx::raw_sql(&sql).execute(&mut *tx).await.context("inserting prefill challenges")?;
                    written = end;
                }
                tx.commit().await?;
                if progress && last_report.elapsed() > Duration::from_secs(5) {
                    eprintln!("  prefill: {written}/{n} challenges ({:.0} s)", started.elapsed().as_secs_f64());
                    last_report = Instant::now();
                }
            }
            sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
        }
        Db::Postgres(conn) => {
            let mut copy = conn
                .copy_in_raw(&format!("COPY challenges ({CHALLENGE_COLUMNS}) FROM STDIN"))
                .await
                .context("COPY challenges")?;
            let mut chunk = String::with_capacity(2 << 20);
            while written < n {
                let t = &targets[(written % targets.len() as u64) as usize];
                let values = challenge_values(&mut rng, written, n, now, t, &account_sid, service_sid);
                for (k, v) in values.iter().enumerate() {
                    if k > 0 {
                        chunk.push('\t');
                    }
                    match v {
                        Some(v) => chunk.push_str(v),
                        None => chunk.push_str("\\N"),
                    }
                }
                chunk.push('\n');
                written += 1;
                if chunk.len() >= (1 << 20) {
                    copy.send(chunk.as_bytes()).await?;
                    chunk.clear();
                    if progress && last_report.elapsed() > Duration::from_secs(5) {
                        eprintln!("  prefill: {written}/{n} challenges ({:.0} s)", started.elapsed().as_secs_f64());
                        last_report = Instant::now();
                    }
                }
            }
            if !chunk.is_empty() {
                copy.send(chunk.as_bytes()).await?;
            }
            copy.finish().await.context("COPY challenges")?;
            // Only the tables written here, as autovacuum would after such a load: statistics
            // taken now of the (still nearly empty) queue tables would mislead the planner later.
            sqlx::raw_sql("ANALYZE challenges, entities, factors").execute(&mut *conn).await?;
        }
    }
    db.close().await;
    Ok(PrefillReport { challenges: n, entities, took: started.elapsed() })
}

#[cfg(test)]
mod tests;
