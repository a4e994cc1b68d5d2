//! All SQL lives here, one file per aggregate; handlers never hold SQL.
//!
//! Two backends behind one [`Store`], chosen by the database URL's scheme: SQLite (the embedded
//! default) and PostgreSQL. The SQL is portable (`$N` placeholders, `RETURNING`, `ON CONFLICT`),
//! so each query is written once; [`on_pool!`] expands a query body once per backend.
//!
//! SQLite (WAL) runs without sqlx's pool: [`sqlite::Connections`] lends one writer connection,
//! a set of read-only readers and a checkpointer connection (an in-memory database has a single
//! connection for everything). Writes never fight over SQLite's lock and reads never wait for
//! them. Multi-statement writes go to the writer as `Script`s (`script.rs`) through one queue
//! that commits whatever waits together (group commit). PostgreSQL uses one sqlx pool for reads
//! and writes.
//!
//! Every listable table has an integer `id` that grows with insertion; lists page by keyset on
//! it ([`Window`]), so page 500 costs what page 1 costs.

pub mod accounts;
pub mod challenges;
pub mod credentials;
pub mod deliveries;
pub mod devices;
pub mod emulator;
pub mod entities;
pub mod factors;
pub mod health;
pub mod live;
pub mod notifications;
pub mod outbox;
#[cfg(test)]
mod plans;
pub mod pushes;
mod script;
pub mod seed;
pub mod services;
pub mod sqlite;
pub mod tokens;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use self::script::ScriptQueue;
use self::sqlite::Connections;

/// The database connections of one server process.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite {
        read: Arc<Connections>,
        write: Arc<Connections>,
        scripts: ScriptQueue,
        /// The WAL checkpointer's connection (none in memory).
        checkpoints: Option<Arc<Connections>>,
    },
    Postgres(PgPool),
}

/// The storage layer. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
    /// The outcome of recent writes, for `/healthz`.
    writes: Arc<health::WriteOutcome>,
    /// Where committed writes' live events are published ([`live`]).
    pub live: live::Hub,
}

/// Runs `$body` with `$pool` bound to the backend's pool: `read` or `write` (SQLite keeps them
/// apart; PostgreSQL uses one pool for both). A write's outcome is recorded for `/healthz`
/// ([`health`]).
///
/// `$pool` is a `&PgPool` or, on SQLite, a `&mut SqliteConnection` leased for the body (so the
/// body uses it once, or opens a transaction on it).
macro_rules! on_pool {
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { read, .. } => {
                let mut lease = read.acquire().await?;
                let $pool = &mut *lease;
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { write, .. } => {
                let mut lease = write.acquire().await?;
                let $pool = &mut *lease;
                $store.recorded_write(async { $body }).await
            }
            $crate::store::Db::Postgres($pool) => $store.recorded_write(async { $body }).await,
        }
    };
}
pub(crate) use on_pool;

/// Binds a list of [`Arg`]s in order onto a query.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::store::Arg::Int(v) => query.bind(*v),
                $crate::store::Arg::Bool(v) => query.bind(*v),
                $crate::store::Arg::Text(v) => query.bind(v.as_str()),
                $crate::store::Arg::NullInt => query.bind(None::<i64>),
                $crate::store::Arg::NullText => query.bind(None::<&str>),
            };
        }
        query
    }};
}
pub(crate) use bind_args;

/// A dynamically bound argument, for queries whose filters vary.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    Bool(bool),
    Text(String),
    /// NULL, typed as each column is (PostgreSQL checks parameter types).
    NullInt,
    NullText,
}

impl Arg {
    pub fn text(value: &str) -> Arg {
        Arg::Text(value.to_owned())
    }
    pub fn opt_text(value: Option<&str>) -> Arg {
        value.map_or(Arg::NullText, Arg::text)
    }
    pub fn opt_int(value: Option<i64>) -> Arg {
        value.map_or(Arg::NullInt, Arg::Int)
    }
}

/// SQL text with its arguments, numbered `$1…` as they are pushed.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql { text: text.to_owned(), args: Vec::new() }
    }
    /// One statement written with `?` placeholders, numbered `$1…` in the order of `args`.
    pub fn statement(text: &str, args: impl IntoIterator<Item = Arg>) -> Sql {
        let mut sql = Sql::new("");
        sql.push(text, args);
        sql
    }
    /// Appends `fragment`, replacing each `?` with the next `$N` placeholder bound to `args`.
    pub fn push(&mut self, fragment: &str, args: impl IntoIterator<Item = Arg>) -> &mut Sql {
        let mut args = args.into_iter();
        for piece in fragment.split_inclusive('?') {
            if let Some(stripped) = piece.strip_suffix('?') {
                self.text.push_str(stripped);
                if let Some(arg) = args.next() {
                    self.args.push(arg);
                    self.text.push('$');
                    self.text.push_str(&self.args.len().to_string());
                }
            } else {
                self.text.push_str(piece);
            }
        }
        self
    }
    /// Appends ` AND column = ?` for each filter that has a value.
    pub fn push_filters(&mut self, filters: &[(&str, &Option<String>)]) -> &mut Sql {
        for (column, value) in filters {
            if let Some(value) = value {
                self.push(&format!(" AND {column} = ?"), [Arg::Text(value.clone())]);
            }
        }
        self
    }

    /// Appends the keyset condition and ordering of `window` on column `id`.
    pub fn window(&mut self, window: &Window) -> &mut Sql {
        let ascending = window.scan_ascending();
        match window.cursor {
            Cursor::Start => {}
            Cursor::After(id) | Cursor::Before(id) => {
                let op = if ascending { " AND id > ?" } else { " AND id < ?" };
                self.push(op, [Arg::Int(id)]);
            }
        }
        let order = if ascending { " ORDER BY id ASC LIMIT ?" } else { " ORDER BY id DESC LIMIT ?" };
        self.push(order, [Arg::Int(window.limit + 1)]);
        self
    }
}

/// Where a page starts, relative to the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The first page.
    Start,
    /// The page after the row with this id (a next-page token).
    After(i64),
    /// The page before the row with this id (a previous-page token).
    Before(i64),
}

/// One page of a keyset-paged list.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub cursor: Cursor,
    /// Newest first.
    pub descending: bool,
    pub limit: i64,
}

impl Window {
    fn scan_ascending(&self) -> bool {
        matches!(self.cursor, Cursor::Before(_)) == self.descending
    }

    /// Turns `limit + 1` scanned rows into the page in list order, and whether rows remain
    /// beyond it in the scan direction.
    pub fn finish<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        if matches!(self.cursor, Cursor::Before(_)) {
            rows.reverse();
            Page { rows, has_next: true, has_previous: more }
        } else {
            Page { rows, has_next: more, has_previous: !matches!(self.cursor, Cursor::Start) }
        }
    }
}

/// Rows of one page, in list order.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
}

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres:…`), creating a SQLite file and its folder if
    /// missing, and applies the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        let store = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .context("cannot connect to PostgreSQL")?;
            let mut hub = live::Hub::default();
            hub.channel = live::listen(&pool, hub.clone()).await.context("cannot listen on PostgreSQL")?.into();
            Store { db: Db::Postgres(pool), writes: Arc::default(), live: hub }
        } else if url.starts_with("sqlite:") {
            let hub = live::Hub::default();
            Store { db: connect_sqlite(url, max_connections, &hub).await?, writes: Arc::default(), live: hub }
        } else {
            anyhow::bail!("unsupported database URL (expected sqlite:… or postgres://…)");
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations of this backend (idempotent; PostgreSQL takes an
    /// advisory lock, so several instances may start at once).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite { write, .. } => sqlx::migrate!("../migrations/sqlite").run(&mut *write.acquire().await?).await,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await,
        }
        .context("applying database migrations")
    }

    /// Runs a list query (its `SELECT … WHERE <scope>` part) with the keyset condition and
    /// ordering of `window` appended, on the read pool, and returns the page.
    pub async fn fetch_page<T>(&self, mut sql: Sql, window: &Window) -> Result<Page<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        sql.window(window);
        let rows: Vec<T> = on_pool!(self, read, |pool| {
            bind_args!(sqlx::query_as::<_, T>(&sql.text), &sql.args).fetch_all(pool).await
        })?;
        Ok(window.finish(rows))
    }

    /// A trivial round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, read, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write, checkpoints, .. } => {
                read.close().await;
                write.close().await;
                if let Some(checkpoints) = checkpoints {
                    checkpoints.close().await;
                }
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// The file of a SQLite database URL; `None` for PostgreSQL and in-memory SQLite.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") || in_memory(url) {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_owned())
}

/// Whether a SQLite URL names an in-memory database (no file, one connection).
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Creates the database file 0600 if missing and makes it and its -wal/-shm 0600 if they exist
/// (SQLite gives the -wal and -shm it creates the database file's mode). They hold auth tokens
/// and encrypted credentials (SECURITY.md).
#[cfg(unix)]
fn make_private(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(file)?;
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// How often the WAL is checkpointed (see [`sqlite::checkpoint_every`]).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

async fn connect_sqlite(url: &str, max_connections: u32, hub: &live::Hub) -> anyhow::Result<Db> {
    let in_memory = in_memory(url);
    let options = SqliteConnectOptions::from_str(url)
        .context("invalid SQLite URL")?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if in_memory {
        // One connection for reads and writes: an in-memory database is private to its connection.
        let conn = Connections::open(&options, 1).await.context("cannot open the in-memory SQLite database")?;
        return Ok(Db::Sqlite {
            read: conn.clone(),
            scripts: ScriptQueue::start(conn.clone(), hub.clone()),
            write: conn,
            checkpoints: None,
        });
    }
    let file = Path::new(options.get_filename());
    if let Some(parent) = file.parent() {
        if !parent.as_os_str().is_empty() {
            let mut folder = std::fs::DirBuilder::new();
            folder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
            folder.create(parent).with_context(|| format!("cannot create the folder {}", parent.display()))?;
        }
    }
    #[cfg(unix)]
    make_private(file).with_context(|| format!("cannot make {} private", file.display()))?;
    // One writer, so that writes never wait on SQLite's lock; readers never wait for it (WAL).
    let options = options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
    let opened = || format!("cannot open the SQLite database {url}");
    let write = Connections::open(&options.clone().pragma("wal_autocheckpoint", "0"), 1).await.with_context(opened)?;
    let checkpoints = Connections::open(&options, 1).await.with_context(opened)?;
    sqlite::checkpoint_every(checkpoints.clone(), CHECKPOINT_EVERY);
    let readers = usize::try_from(max_connections.max(1)).unwrap_or(1);
    let read = Connections::open(&options.read_only(true), readers).await.with_context(opened)?;
    Ok(Db::Sqlite {
        read,
        scripts: ScriptQueue::start(write.clone(), hub.clone()),
        write,
        checkpoints: Some(checkpoints),
    })
}

/// The constraint a failed write broke, for the store's outcome enums (`EntityCreated`, …): the
/// API sees outcomes, never sqlx errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Violation {
    /// A unique constraint: a concurrent duplicate insert.
    Unique,
    /// A foreign key: the parent row was deleted meanwhile.
    ForeignKey,
    /// A CHECK (the only one is `entity_creations`'s rate limit).
    Check,
}

/// Which constraint `err` broke, if it is a constraint violation.
fn violation(err: &sqlx::Error) -> Option<Violation> {
    let sqlx::Error::Database(db) = err else { return None };
    if db.is_unique_violation() {
        Some(Violation::Unique)
    } else if db.is_foreign_key_violation() {
        Some(Violation::ForeignKey)
    } else if db.is_check_violation() {
        Some(Violation::Check)
    } else {
        None
    }
}

/// `INSERT INTO table (columns) VALUES (?, …)`, one `?` per named column (numbered `$N` by
/// [`Sql::statement`] or a [`script::Script`]).
fn insert_sql(table: &str, columns: &str) -> String {
    format!("INSERT INTO {table} ({columns}) VALUES ({})", placeholders(columns))
}

/// `?, ?, …`: one placeholder per column of `columns` (comma-separated names).
fn placeholders(columns: &str) -> String {
    vec!["?"; columns.split(',').count()].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
    async fn the_wal_is_checkpointed_in_the_background() {
        let dir = std::env::temp_dir().join(format!("vp-checkpoint-{}", crate::domain::sid::random_hex::<8>()));
        let file = dir.join("t.db");
        let store = Store::connect(&format!("sqlite://{}", file.display()), 2).await.unwrap();
        let before = std::fs::metadata(&file).unwrap().len();
        for i in 0..50 {
            let script = script::Script::new().then(
                "INSERT INTO server_keys (name, value) VALUES (?, ?)",
                [Arg::Text(format!("k{i}")), Arg::Text("x".repeat(40_000))],
            );
            store.run_script(script).await.unwrap();
        }
        // The writer never checkpoints (wal_autocheckpoint=0): only the background task moves
        // those 2 MB from the WAL into the database file.
        tokio::time::sleep(CHECKPOINT_EVERY * 6).await;
        let after = std::fs::metadata(&file).unwrap().len();
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(after >= before + 1_500_000, "database file {before} → {after} bytes");
    }

    #[test]
    fn sql_numbers_placeholders_in_push_order() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = 1");
        sql.push(" AND b = ? AND c = ?", [Arg::Int(2), Arg::Text("x".into())]);
        sql.window(&Window { cursor: Cursor::After(7), descending: false, limit: 10 });
        assert_eq!(sql.text, "SELECT * FROM t WHERE a = 1 AND b = $1 AND c = $2 AND id > $3 ORDER BY id ASC LIMIT $4");
        assert_eq!(sql.args.len(), 4);
    }

    #[test]
    fn windows_scan_in_the_right_direction() {
        let mut sql = Sql::new("");
        sql.window(&Window { cursor: Cursor::After(7), descending: true, limit: 2 });
        assert!(sql.text.contains("id < $1 ORDER BY id DESC"), "{}", sql.text);
        let mut sql = Sql::new("");
        sql.window(&Window { cursor: Cursor::Before(7), descending: false, limit: 2 });
        assert!(sql.text.contains("id < $1 ORDER BY id DESC"), "{}", sql.text);
        let mut sql = Sql::new("");
        sql.window(&Window { cursor: Cursor::Before(7), descending: true, limit: 2 });
        assert!(sql.text.contains("id > $1 ORDER BY id ASC"), "{}", sql.text);
    }

    #[test]
    fn finishing_a_previous_page_restores_list_order() {
        let w = Window { cursor: Cursor::Before(10), descending: false, limit: 2 };
        let page = w.finish(vec![9, 8, 7]);
        assert_eq!(page.rows, vec![8, 9]);
        assert!(page.has_next && page.has_previous);
        let w = Window { cursor: Cursor::Start, descending: false, limit: 2 };
        let page = w.finish(vec![1, 2]);
        assert!(!page.has_next && !page.has_previous);
    }
}
