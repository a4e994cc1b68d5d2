//! Writes of several statements that commit together, in one trip to the database.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every statement — `BEGIN` and
//! `COMMIT` included — is a round trip to that thread: a channel message and a thread wake-up each
//! way. On the single SQLite writer those trips, not SQLite's work, bound write throughput
//! (BENCHMARKS.md §3). A [`Script`] goes to SQLite as one query, `BEGIN; s1; s2; …; COMMIT` (sqlx
//! binds `$N` across the statements of one query): one trip per transaction. It runs in a task of
//! its own, so a request dropped half-way cannot stop it between `BEGIN` and `COMMIT`; when a
//! statement fails, the statements after it are skipped and the transaction is rolled back.
//!
//! PostgreSQL runs the same statements one by one inside a transaction.

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
        let mut sql = Sql::new("");
        sql.push(&self.text, self.args.iter().cloned());
        sql
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
        self.statements.push(Statement { text: text.to_owned(), args: args.into_iter().collect(), guarded: true });
        self
    }

    /// The whole script as one SQLite query, its placeholders numbered across the statements.
    fn sqlite_text(&self) -> Sql {
        let mut sql = Sql::new("BEGIN; ");
        for s in &self.statements {
            sql.push(&s.text, s.args.iter().cloned());
            if s.guarded {
                sql.push(" AND changes() > 0", []);
            }
            sql.push("; ", []);
        }
        sql.push("COMMIT", []);
        sql
    }
}

impl Store {
    /// Runs `script` as one transaction and returns the first column of the rows its statements
    /// returned, in order.
    pub(crate) async fn run_script(&self, script: Script) -> Result<Vec<i64>, sqlx::Error> {
        match &self.db {
            Db::Sqlite { write, .. } => {
                let pool = write.clone();
                let sql = script.sqlite_text();
                tokio::spawn(async move {
                    let mut conn = pool.acquire().await?;
                    let result =
                        bind_args!(sqlx::query_scalar::<_, i64>(&sql.text), &sql.args).fetch_all(&mut *conn).await;
                    if result.is_err() {
                        // The query stopped at the failing statement, inside its transaction.
                        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    }
                    result
                })
                .await
                .map_err(|_| sqlx::Error::WorkerCrashed)?
            }
            Db::Postgres(pool) => {
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
        assert!(failed.is_err_and(|e| super::super::is_unique_violation(&e)));
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
}
