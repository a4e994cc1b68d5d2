//! The query plans the hot paths depend on, checked with SQLite's `EXPLAIN QUERY PLAN` on a
//! migrated, never-analysed database — the state of one grown through the API, where SQLite has
//! no statistics to correct a poor choice. BENCHMARKS.md shows what each wrong plan costs.

#![allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]

use super::challenges::{list_sql, ChallengeFilter};
use super::deliveries::claim_sql;
use super::{bind_args, Arg, Backend, Cursor, Db, Sql, Store, Window};
use crate::domain::status::ChallengeStatus;

/// The plan's detail lines, one per step.
async fn plan(store: &Store, sql: &str, args: &[Arg]) -> String {
    let Db::Sqlite { read, .. } = &store.db else { unreachable!("a SQLite store") };
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let rows: Vec<(i64, i64, i64, String)> =
        bind_args!(sqlx::query_as(&explain), args).fetch_all(&mut *read.acquire().await.unwrap()).await.unwrap();
    rows.into_iter().map(|(_, _, _, detail)| detail).collect::<Vec<_>>().join("\n")
}

async fn store() -> Store {
    Store::connect("sqlite::memory:", 1).await.unwrap()
}

#[tokio::test]
async fn device_poll_walks_its_factor_newest_first() {
    let filter =
        ChallengeFilter { factor_sid: Some(format!("YF{}", "0".repeat(32))), status: Some(ChallengeStatus::Pending) };
    let mut sql: Sql = list_sql(1, &filter, 1_700_000_000);
    sql.window(&Window { cursor: Cursor::Start, descending: true, limit: 1 });
    let plan = plan(&store().await, &sql.text, &sql.args).await;
    // Not `challenges_pending_expiry`: that is every pending Challenge of the database, sorted.
    assert!(plan.contains("SEARCH challenges USING INDEX challenges_factor_status"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

#[tokio::test]
async fn the_webhook_claim_streams_due_deliveries_and_seeks_only_open_ones() {
    let args = [Arg::Int(1_700_000_000), Arg::Int(1_700_000_030), Arg::Int(32)];
    let plan = plan(&store().await, &claim_sql(Backend::Sqlite), &args).await;
    // "Is an earlier delivery of this webhook and factor still open?" is one seek into the
    // partial index, not a walk through the factor's delivery history.
    assert!(
        plan.contains("SEARCH e USING INDEX webhook_deliveries_open (webhook_sid=? AND factor_sid=? AND id<?)"),
        "{plan}"
    );
    // Candidates stream from the due index and the scan stops at the limit: nothing sorts the
    // backlog, so a claim costs the same whatever its size.
    assert!(plan.contains("SEARCH d USING INDEX webhook_deliveries_due"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

#[tokio::test]
async fn the_push_claim_streams_due_pushes() {
    let args = [Arg::Int(1_700_000_000), Arg::Int(1_700_000_030), Arg::Int(32)];
    let plan = plan(&store().await, &super::pushes::claim_sql(Backend::Sqlite), &args).await;
    // Covering: the candidates' ids come from the index alone.
    assert!(plan.contains("SEARCH pushes USING COVERING INDEX pushes_due (status=? AND next_attempt_at<?)"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}
