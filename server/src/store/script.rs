//! Writes of several statements that commit together, in one trip to the database.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every statement — `BEGIN` and
//! `COMMIT` included — is a round trip to that thread: a channel message and a thread wake-up each
//! way. On the single SQLite writer those trips, not SQLite's work, bound write throughput
//! (BENCHMARKS.md, "What changed" 3). A [`Script`] goes to SQLite as one query, `BEGIN; s1; s2; …;
//! COMMIT` (sqlx binds `$N` across the statements of one query): one trip per transaction.
//!
//! Group commit: scripts queue for one task that owns the writer's turn. It takes every script
//! waiting at that moment and runs them as one transaction, in one query — one trip, one commit
//! and one write of each changed page for the lot — then answers each caller with its own rows.
//! If any statement fails, that transaction is rolled back and each script is run again alone, so
//! the failure is its script's only. Callers are answered after the commit; a caller that stops
//! waiting does not stop its script half-way.
//!
//! PostgreSQL runs the statements one by one inside a transaction of the caller's (a script of
//! one statement without one).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::sqlite::Connections;
use super::{bind_args, Arg, Db, Sql, Store};

/// Statements that commit together, or not at all.
#[derive(Debug, Default)]
pub(crate) struct Script {
    statements: Vec<Statement>,
}

#[derive(Debug)]
struct Statement {
    /// SQL with `?` placeholders.
    text: String,
    args: Vec<Arg>,
    /// Runs only if the statement before it returned a row.
    guarded: bool,
}

impl Statement {
    /// The statement alone, its placeholders numbered `$1…`.
    fn sql(&self) -> Sql {
        Sql::statement(&self.text, self.args.iter().cloned())
    }
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Adds a statement; its `?` placeholders take `args` in order. Rows it returns
    /// (`RETURNING id`) are the script's result.
    pub fn then(mut self, text: &str, args: impl IntoIterator<Item = Arg>) -> Script {
        self.statements.push(Statement { text: text.to_owned(), args: args.into_iter().collect(), guarded: false });
        self
    }

    /// Adds a statement that runs only if the one before it returned a row (that one ends in
    /// `RETURNING`; this one ends in a `WHERE` clause, which SQLite extends with `changes() > 0`).
    pub fn then_if_returned(mut self, text: &str, args: impl IntoIterator<Item = Arg>) -> Script {
        debug_assert!(!self.statements.is_empty(), "a guarded statement follows another");
        self.statements.push(Statement { text: text.to_owned(), args: args.into_iter().collect(), guarded: true });
        self
    }

    /// The whole script as one SQLite query, its placeholders numbered across the statements.
    fn sqlite_text(&self) -> Sql {
        let mut sql = Sql::new("BEGIN; ");
        self.push_statements(&mut sql);
        sql.push("COMMIT", []);
        sql
    }

    fn push_statements(&self, sql: &mut Sql) {
        for s in &self.statements {
            sql.push(&s.text, s.args.iter().cloned());
            if s.guarded {
                sql.push(" AND changes() > 0", []);
            }
            sql.push("; ", []);
        }
    }

    fn arg_count(&self) -> usize {
        self.statements.iter().map(|s| s.args.len()).sum()
    }
}

/// Scripts run together at most (SQLite binds at most 32,766 arguments per query).
const GROUP_MAX_SCRIPTS: usize = 64;
const GROUP_MAX_ARGS: usize = 30_000;

/// A script waiting for the writer, and where its result goes.
struct Job {
    script: Script,
    reply: oneshot::Sender<Result<Vec<i64>, sqlx::Error>>,
}

/// The queue of scripts waiting for the SQLite writer (see the module's documentation).
#[derive(Clone)]
pub struct ScriptQueue(mpsc::UnboundedSender<Job>);

impl std::fmt::Debug for ScriptQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptQueue")
    }
}

impl ScriptQueue {
    /// Starts the task that runs queued scripts on `write`; it ends when every sender is gone.
    pub fn start(write: Arc<Connections>) -> ScriptQueue {
        let (sender, queue) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(write, queue));
        ScriptQueue(sender)
    }

    async fn run(&self, script: Script) -> Result<Vec<i64>, sqlx::Error> {
        let (reply, result) = oneshot::channel();
        self.0.send(Job { script, reply }).map_err(|_| sqlx::Error::WorkerCrashed)?;
        result.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn group_commit(write: Arc<Connections>, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut args = first.script.arg_count();
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX_SCRIPTS && args < GROUP_MAX_ARGS {
            match queue.try_recv() {
                Ok(job) => {
                    args += job.script.arg_count();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut results = run_group(&write, &jobs).await.into_iter();
        for job in jobs {
            let result = results.next().unwrap_or(Err(sqlx::Error::WorkerCrashed));
            let _ = job.reply.send(result);
        }
    }
}

/// Runs `jobs` as one transaction (alone, each, if that fails): one result per job, in order.
async fn run_group(write: &Arc<Connections>, jobs: &[Job]) -> Vec<Result<Vec<i64>, sqlx::Error>> {
    let mut lease = match write.acquire().await {
        Ok(lease) => lease,
        // Every waiting script gets the writer's own error (a timeout or a closed store is
        // unavailability, 503), not a made-up one.
        Err(e) => {
            return jobs
                .iter()
                .map(|_| {
                    Err(match e {
                        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
                        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
                        ref other => sqlx::Error::Protocol(other.to_string()),
                    })
                })
                .collect();
        }
    };
    if let [job] = jobs {
        return vec![run_alone(&mut lease, &job.script).await];
    }
    // One query; a `SELECT NULL` after each script marks where its rows end (ids are never NULL).
    let mut sql = Sql::new("BEGIN; ");
    for job in jobs {
        job.script.push_statements(&mut sql);
        sql.push("SELECT NULL; ", []);
    }
    sql.push("COMMIT", []);
    // Not kept prepared: the text varies with the group.
    let rows = bind_args!(sqlx::query_scalar::<_, Option<i64>>(&sql.text), &sql.args)
        .persistent(false)
        .fetch_all(&mut *lease)
        .await;
    match rows {
        Ok(rows) => {
            let mut results = Vec::with_capacity(jobs.len());
            let mut current = Vec::new();
            for row in rows {
                match row {
                    Some(id) => current.push(id),
                    None => results.push(Ok(std::mem::take(&mut current))),
                }
            }
            results
        }
        Err(_) => {
            rollback(&mut lease).await;
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs {
                results.push(run_alone(&mut lease, &job.script).await);
            }
            results
        }
    }
}

async fn run_alone(conn: &mut sqlx::SqliteConnection, script: &Script) -> Result<Vec<i64>, sqlx::Error> {
    let sql = script.sqlite_text();
    let result = bind_args!(sqlx::query_scalar::<_, i64>(&sql.text), &sql.args).fetch_all(&mut *conn).await;
    if result.is_err() {
        rollback(conn).await;
    }
    result
}

/// Ends the transaction a failed query left open at its failing statement.
async fn rollback(conn: &mut sqlx::SqliteConnection) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(conn).await {
        tracing::debug!(error = %e, "rollback after a failed script");
    }
}

impl Store {
    /// Runs `script`, which creates a row and returns its id first (`RETURNING id`), and returns
    /// that id.
    pub(crate) async fn run_insert(&self, script: Script) -> Result<i64, sqlx::Error> {
        self.run_script(script).await?.first().copied().ok_or(sqlx::Error::RowNotFound)
    }

    /// Runs `script` as one transaction and returns the first column of the rows its statements
    /// returned, in order.
    pub(crate) async fn run_script(&self, script: Script) -> Result<Vec<i64>, sqlx::Error> {
        match &self.db {
            Db::Sqlite { scripts, .. } => self.recorded_write(scripts.run(script)).await,
            // One statement is atomic alone: no BEGIN and COMMIT trips.
            Db::Postgres(pool) if script.statements.len() == 1 => {
                let sql = script.statements[0].sql();
                self.recorded_write(bind_args!(sqlx::query_scalar::<_, i64>(&sql.text), &sql.args).fetch_all(pool))
                    .await
            }
            Db::Postgres(pool) => {
                self.recorded_write(async {
                    let mut tx = pool.begin().await?;
                    let mut returned = Vec::new();
                    let mut previous_returned = true;
                    for s in &script.statements {
                        if s.guarded && !previous_returned {
                            continue;
                        }
                        let sql = s.sql();
                        let rows =
                            bind_args!(sqlx::query_scalar::<_, i64>(&sql.text), &sql.args).fetch_all(&mut *tx).await?;
                        previous_returned = !rows.is_empty();
                        returned.extend(rows);
                    }
                    tx.commit().await?;
                    Ok(returned)
                })
                .await
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_script_is_one_transaction_with_shared_numbering() {
        let script = Script::new()
            .then("UPDATE t SET a = ? WHERE id = ? RETURNING id", [Arg::Int(1), Arg::Int(2)])
            .then_if_returned("INSERT INTO u (x) SELECT ? WHERE 1", [Arg::Text("x".into())]);
        let sql = script.sqlite_text();
        assert_eq!(
            sql.text,
            "BEGIN; UPDATE t SET a = $1 WHERE id = $2 RETURNING id; INSERT INTO u (x) SELECT $3 WHERE 1 AND changes() > 0; COMMIT"
        );
        assert_eq!(sql.args.len(), 3);
        assert_eq!(script.statements[1].sql().text, "INSERT INTO u (x) SELECT $1 WHERE 1");
    }

    async fn store() -> Store {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        let Db::Sqlite { write, .. } = &store.db else { unreachable!() };
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
            .execute(&mut *write.acquire().await.unwrap())
            .await
            .unwrap();
        store
    }

    async fn values(store: &Store) -> Vec<String> {
        let Db::Sqlite { read, .. } = &store.db else { unreachable!() };
        sqlx::query_scalar("SELECT v FROM t ORDER BY id").fetch_all(&mut *read.acquire().await.unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn a_script_commits_every_statement_and_returns_their_rows() {
        let store = store().await;
        let ids = store
            .run_script(
                Script::new()
                    .then("INSERT INTO t (v) VALUES (?) RETURNING id", [Arg::text("a")])
                    .then("INSERT INTO t (v) VALUES (?)", [Arg::text("b")])
                    .then("INSERT INTO t (v) VALUES (?) RETURNING id", [Arg::text("c")]),
            )
            .await
            .unwrap();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(values(&store).await, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_failing_statement_rolls_back_the_whole_script() {
        let store = store().await;
        store.run_script(Script::new().then("INSERT INTO t (v) VALUES (?)", [Arg::text("a")])).await.unwrap();
        let failed = store
            .run_script(
                Script::new()
                    .then("INSERT INTO t (v) VALUES (?)", [Arg::text("b")])
                    .then("INSERT INTO t (v) VALUES (?)", [Arg::text("a")]),
            )
            .await;
        assert!(failed.is_err_and(|e| super::super::violation(&e) == Some(super::super::Violation::Unique)));
        // Nothing of the failed script remains, and the writer is usable (not inside a transaction).
        store.run_script(Script::new().then("INSERT INTO t (v) VALUES (?)", [Arg::text("c")])).await.unwrap();
        assert_eq!(values(&store).await, ["a", "c"]);
    }

    #[tokio::test]
    async fn a_guarded_statement_runs_only_after_a_returned_row() {
        let store = store().await;
        let guarded = |v: &str| {
            Script::new()
                .then("UPDATE t SET v = v WHERE v = ? RETURNING id", [Arg::text(v)])
                .then_if_returned("INSERT INTO t (v) SELECT ? || '+' WHERE TRUE", [Arg::text(v)])
        };
        store.run_script(Script::new().then("INSERT INTO t (v) VALUES (?)", [Arg::text("a")])).await.unwrap();
        assert_eq!(store.run_script(guarded("a")).await.unwrap(), vec![1]);
        assert!(store.run_script(guarded("zzz")).await.unwrap().is_empty());
        assert_eq!(values(&store).await, ["a", "a+"]);
    }

    /// Queues one script per value while the writer is held, so that they run as groups.
    async fn queued_together(store: &Store, wanted: &[String]) -> Vec<Result<Vec<i64>, sqlx::Error>> {
        let Db::Sqlite { write, .. } = &store.db else { unreachable!() };
        let held = write.acquire().await.unwrap();
        let runs = wanted.iter().map(|v| {
            store.run_script(
                Script::new()
                    .then("INSERT INTO t (v) VALUES (?) RETURNING id", [Arg::text(v)])
                    .then("UPDATE t SET v = v WHERE v = ? RETURNING -id", [Arg::text(v)]),
            )
        });
        let release = async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            drop(held);
        };
        tokio::join!(futures_util::future::join_all(runs), release).0
    }

    async fn id_of(store: &Store, v: &str) -> i64 {
        let Db::Sqlite { read, .. } = &store.db else { unreachable!() };
        sqlx::query_scalar("SELECT id FROM t WHERE v = $1")
            .bind(v)
            .fetch_one(&mut *read.acquire().await.unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn scripts_waiting_together_commit_together_each_with_its_own_rows() {
        let store = store().await;
        let wanted: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
        for (v, result) in wanted.iter().zip(queued_together(&store, &wanted).await) {
            let id = id_of(&store, v).await;
            assert_eq!(result.unwrap(), vec![id, -id], "{v} gets its own rows");
        }
        assert_eq!(values(&store).await, wanted);
    }

    #[tokio::test]
    async fn a_failing_script_in_a_group_fails_alone() {
        let store = store().await;
        store.run_script(Script::new().then("INSERT INTO t (v) VALUES (?)", [Arg::text("taken")])).await.unwrap();
        let wanted: Vec<String> = (0..10).map(|i| if i == 7 { "taken".to_owned() } else { format!("v{i}") }).collect();
        for (v, result) in wanted.iter().zip(queued_together(&store, &wanted).await) {
            if v == "taken" {
                assert!(
                    result.is_err_and(|e| super::super::violation(&e) == Some(super::super::Violation::Unique)),
                    "the duplicate fails"
                );
            } else {
                let id = id_of(&store, v).await;
                assert_eq!(result.unwrap(), vec![id, -id], "{v} commits all the same");
            }
        }
        assert_eq!(values(&store).await.len(), 10);
    }

    #[tokio::test]
    async fn a_writer_that_cannot_be_had_is_unavailability_not_a_bug() {
        let store = store().await;
        let Db::Sqlite { write, .. } = &store.db else { unreachable!() };
        write.close().await;
        let err = store.run_script(Script::new().then("INSERT INTO t (v) VALUES (?)", [Arg::text("x")])).await;
        let Err(err) = err else { panic!("a closed writer cannot write") };
        assert!(super::super::health::unavailable_reason(&err).is_some(), "503, not 500: {err:?}");
    }
}
