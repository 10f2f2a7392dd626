//! Database handle for both services: PostgreSQL or SQLite chosen by `DATABASE_URL`, pooled,
//! migrated with a [`Migrations`] set that each side owns (the auth-service's own tables, or a
//! client's `gatehouse_` mirror tables inside its host's database).
//!
//! Queries are written once and compiled for each backend by [`with_conn!`](crate::with_conn).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use diesel::ConnectionError;
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection};
pub use diesel_migrations::EmbeddedMigrations;
use diesel_migrations::MigrationHarness;

/// A pool that waits at most 10 s for a connection (a macro: the manager's bounds differ
/// per connection type).
macro_rules! pool {
    ($manager:expr, $max_size:expr) => {
        Pool::builder($manager)
            .max_size($max_size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Config(e.to_string()))
    };
}

/// A PostgreSQL connection handed out again within this time of its last checkout is not
/// checked with a query first (HikariCP's rule): a busy pool makes no extra round trip per
/// checkout, while a connection that sat idle (through a server restart, say) is still checked.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The PostgreSQL pool's manager: diesel-async's, with `SELECT 1` on checkout only for
/// connections idle longer than a second; a connection known to be broken is never handed out.
pub struct PgManager {
    inner: AsyncDieselConnectionManager<PgConn>,
}

impl deadpool::managed::Manager for PgManager {
    type Type = PgConn;
    type Error = diesel_async::pooled_connection::PoolError;

    async fn create(&self) -> Result<PgConn, Self::Error> {
        self.inner.create().await
    }

    async fn recycle(
        &self,
        conn: &mut PgConn,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        use diesel_async::pooled_connection::PoolableConnection;
        if metrics.last_used() < CHECK_IDLE_AFTER {
            if std::thread::panicking() || conn.is_broken() {
                return Err(deadpool::managed::RecycleError::Message("Broken connection".into()));
            }
            return Ok(());
        }
        self.inner.recycle(conn, metrics).await
    }
}

/// Pool of PostgreSQL connections.
pub type PgPool = deadpool::managed::Pool<PgManager>;
/// A PostgreSQL connection checked out of a [`PgPool`].
pub type PgPooled = deadpool::managed::Object<PgManager>;

/// Async SQLite connection (diesel's sync connection on the blocking pool).
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;
/// Async PostgreSQL connection (tokio-postgres, no libpq).
pub type PgConn = AsyncPgConnection;

/// One side's embedded migration set, per backend (same directory names in both).
///
/// Diesel records applied versions (the directory name up to the first `_`) in one
/// `__diesel_schema_migrations` table per database and runs only versions it has not recorded,
/// so several sets (a host service's own and a client's) share a database as long as their
/// versions differ.
///
/// Each side declares its set as a `const` (built with `diesel_migrations::embed_migrations!`) and passes it by
/// value: `db.migrate(MIGRATIONS)`.
pub struct Migrations {
    /// The set for PostgreSQL.
    pub postgres: EmbeddedMigrations,
    /// The set for SQLite.
    pub sqlite: EmbeddedMigrations,
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` is not usable.
    #[error("{0}")]
    Config(String),
    /// The database cannot be used right now: no connection from the pool (timeout, server
    /// down), the connection was lost mid-query, or the server is shutting down or starting
    /// up. Worth a retry; the services answer 503.
    #[error("database unavailable: {0}")]
    Pool(String),
    /// A unique constraint was violated (duplicate email, ...).
    #[error("unique constraint violated")]
    Unique,
    /// Any other query error.
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl std::fmt::Debug for Migrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Migrations")
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => DbError::Unique,
            other if is_unavailable(&other) => DbError::Pool(other.to_string()),
            other => DbError::Query(other),
        }
    }
}

/// Server messages of the conditions that end or refuse a connection (SQLSTATE class 57P
/// "operator intervention" and class 08 "connection exception"; diesel keeps the message but
/// not the code) and SQLite's lock wait running out.
const UNAVAILABLE_MESSAGES: [&str; 8] = [
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "connection closed",
    "database is locked",
];

/// Whether `e` says the database is unreachable for now rather than that the query is wrong.
fn is_unavailable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        // diesel-async reports a connection without SQLSTATE (I/O error, closed socket) so.
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            UNAVAILABLE_MESSAGES.iter().any(|m| message.contains(m))
        }
        // The connection broke inside a transaction and could not be rolled back.
        Error::BrokenTransactionManager => true,
        _ => false,
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for DbError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        DbError::Pool(e.to_string())
    }
}

/// A pooled database, PostgreSQL or SQLite.
#[derive(Clone)]
pub enum Db {
    /// PostgreSQL pool.
    Postgres(PgPool),
    /// SQLite pool (WAL, busy timeout, foreign keys on) and its writers' turn.
    Sqlite(SqlitePool),
}

/// An SQLite pool whose writers take turns in the process before they ask SQLite for its one
/// write lock ([`with_write_conn!`](crate::with_write_conn)).
///
/// SQLite lets one connection write at a time; another one that wants to write meanwhile waits
/// in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms
/// between tries and lets later writers pass it: with eight concurrent refreshes, the unlucky
/// one waited some 50-80 ms for a lock held a fraction of a millisecond at a time. Taking the
/// turn first (a fair, first-come queue) leaves SQLite's lock free whenever a writer of this
/// process asks for it; the busy handler is left for writers in other processes (a
/// `purge-tokens` run, a second replica on the same file). Readers never wait for the turn
/// (WAL).
#[derive(Clone)]
pub struct SqlitePool {
    pool: Pool<SqliteConn>,
    writers: Arc<tokio::sync::Mutex<()>>,
}

impl SqlitePool {
    /// Waits for this process's turn to write; the turn lasts as long as the guard.
    pub async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writers.lock().await
    }
}

impl Deref for SqlitePool {
    type Target = Pool<SqliteConn>;

    fn deref(&self) -> &Pool<SqliteConn> {
        &self.pool
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Postgres(_) => "Db::Postgres",
            Db::Sqlite(_) => "Db::Sqlite",
        })
    }
}

/// Which backend a URL selects, and the URL the driver wants.
fn classify(url: &str) -> Result<(bool, String), DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((true, url.to_owned()))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok((false, path.to_owned()))
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        Ok((false, path.to_owned()))
    } else {
        Err(DbError::Config(format!(
            "DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got {:?})",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

impl Db {
    /// Opens a pool for `url` (`postgres://...` or `sqlite://path`) and checks one connection.
    pub async fn connect(url: &str, max_size: usize) -> Result<Self, DbError> {
        let (is_pg, target) = classify(url)?;
        let db = if is_pg {
            let manager = PgManager { inner: AsyncDieselConnectionManager::<PgConn>::new(target) };
            Db::Postgres(
                deadpool::managed::Pool::builder(manager)
                    .max_size(max_size)
                    .wait_timeout(Some(Duration::from_secs(10)))
                    .create_timeout(Some(Duration::from_secs(10)))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| DbError::Config(e.to_string()))?,
            )
        } else {
            if target.is_empty() {
                return Err(DbError::Config("DATABASE_URL names no SQLite file".into()));
            }
            let mut config = ManagerConfig::<SqliteConn>::default();
            // A local file cannot drop the connection: skip the `SELECT 1` round trip through
            // the blocking pool that the default check makes on every checkout.
            config.recycling_method = RecyclingMethod::Fast;
            config.custom_setup = Box::new(|path| {
                let path = path.to_owned();
                Box::pin(async move {
                    let mut conn = SqliteConn::establish(&path).await?;
                    // The lock wait first: `journal_mode` may need a lock, and without the wait
                    // a connection opened while another one commits fails at once ("database
                    // is locked").
                    conn.batch_execute(
                        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    )
                    .await
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                })
            });
            Db::Sqlite(SqlitePool {
                pool: pool!(AsyncDieselConnectionManager::<SqliteConn>::new_with_config(target, config), max_size)?,
                writers: Arc::new(tokio::sync::Mutex::new(())),
            })
        };
        db.ping().await?;
        Ok(db)
    }

    /// Checks that a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        crate::with_conn!(self, |conn| {
            conn.batch_execute("SELECT 1").await?;
            Ok(())
        })
    }

    /// Applies the pending migrations of `set`; returns how many ran. Needs a multi-thread
    /// tokio runtime.
    ///
    /// Several processes may migrate one database at the same moment (replicas of a first
    /// deployment all start on an empty database): the runs are serialized in the database, so
    /// one applies the pending migrations and the others then find none. On PostgreSQL a
    /// session-level advisory lock ([`MIGRATION_LOCK`]) is held around the run, taken by
    /// polling `pg_try_advisory_lock` rather than waiting in `pg_advisory_lock`: a waiting
    /// statement holds a snapshot, which a `CREATE INDEX CONCURRENTLY` of the run holding the
    /// lock would wait for (a deadlock PostgreSQL ends by failing one of them); on SQLite the
    /// whole run is one `BEGIN IMMEDIATE` transaction (each migration in a savepoint), which
    /// takes the database's write lock first and waits for it (`busy_timeout`).
    pub async fn migrate(&self, set: Migrations) -> Result<usize, DbError> {
        let err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
        match self {
            Db::Postgres(pool) => {
                let mut conn = deadpool::managed::Object::take(pool.get().await?);
                loop {
                    let locked: bool = diesel_async::RunQueryDsl::get_result(
                        diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                            "pg_try_advisory_lock({MIGRATION_LOCK})"
                        ))),
                        &mut conn,
                    )
                    .await?;
                    if locked {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let mut harness = AsyncMigrationHarness::new(conn);
                let applied = harness.run_pending_migrations(set.postgres).map_err(err).map(|done| done.len());
                // Dropping the connection would release the lock too; unlock so that a failure
                // to do so is visible.
                harness.into_inner().batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).await?;
                applied
            }
            Db::Sqlite(pool) => {
                let mut conn = pool.get().await?;
                let set = set.sqlite;
                conn.spawn_blocking(move |conn| {
                    Ok(conn.immediate_transaction(|conn| {
                        conn.run_pending_migrations(set).map(|done| done.len()).map_err(err)
                    }))
                })
                .await?
            }
        }
    }
}

/// Key of the PostgreSQL advisory lock held while migrating (any fixed number; this one spells
/// "gatehous" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x6761_7465_686f_7573;

/// Runs `$body` with `$conn` bound to a `&mut` pooled connection of whichever backend `$db` is.
/// The body is compiled once per backend, so both dialects type-check. It must evaluate to a
/// `Result<_, E>` where `E: From<DbError>`.
#[macro_export]
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        $crate::with_conn!(@turn false, $db, |$conn| $body)
    };
    // `$write`: on SQLite, take this process's turn to write first (`with_write_conn!`).
    (@turn $write:literal, $db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                let $conn: &mut $crate::db::PgConn = &mut *pooled;
                $body
            }
            $crate::db::Db::Sqlite(pool) => {
                let _turn = if $write { Some(pool.write_turn().await) } else { None };
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                let $conn: &mut $crate::db::SqliteConn = &mut *pooled;
                $body
            }
        }
    };
}

/// [`with_conn!`](crate::with_conn) for a body that writes: on SQLite the connection is taken
/// after this process's turn to write ([`SqlitePool::write_turn`]), held until the body ends,
/// so the process's writers reach SQLite's write lock one after the other, in the order they
/// came, instead of sleeping in its busy handler. The body must not take another connection of
/// the same pool for writing (the turn is not reentrant). PostgreSQL locks rows, not the
/// database: there it is `with_conn!`.
#[macro_export]
macro_rules! with_write_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        $crate::with_conn!(@turn true, $db, |$conn| $body)
    };
}

/// `url` (a PostgreSQL URL) pointing at database `name` instead, query string kept.
pub fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Loads a user's access groups ordered by name from the access-group table `$table` (a path
/// to a diesel `table!` module with `user_id`, `name` and `level` columns: the auth-service's
/// `access_groups` or a client's `gatehouse_access_groups`), as
/// `Result<Vec<AccessGroup>, diesel::result::Error>`.
/// Needs diesel's `ExpressionMethods`, `QueryDsl` and diesel-async's `RunQueryDsl` in scope.
#[macro_export]
macro_rules! load_access_groups {
    ($conn:expr, $($table:ident)::+, $user_id:expr) => {
        $($table)::+::table
            .filter($($table)::+::user_id.eq($user_id))
            .order($($table)::+::name.asc())
            .select(($($table)::+::name, $($table)::+::level))
            .load::<(String, Option<String>)>($conn)
            .await
            .map(|rows| rows.into_iter().map(|(name, level)| $crate::user::AccessGroup { name, level }).collect::<Vec<_>>())
    };
}

/// Replaces a user's access groups in the access-group table `$table` (see
/// [`load_access_groups!`]): delete, then insert each. Evaluates to
/// `Result<(), diesel::result::Error>` and returns early (`?`) on a query error. Run it inside
/// a transaction.
#[macro_export]
macro_rules! replace_access_groups {
    ($conn:expr, $($table:ident)::+, $user_id:expr, $groups:expr) => {{
        diesel::delete($($table)::+::table.filter($($table)::+::user_id.eq($user_id)))
            .execute($conn)
            .await?;
        for g in $groups {
            diesel::insert_into($($table)::+::table)
                .values((
                    $($table)::+::user_id.eq($user_id),
                    $($table)::+::name.eq(&g.name),
                    $($table)::+::level.eq(&g.level),
                ))
                .execute($conn)
                .await?;
        }
        Ok::<(), diesel::result::Error>(())
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel_migrations::embed_migrations;

    #[test]
    fn lost_connections_and_server_shutdowns_are_unavailability() {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        let db = |kind, message: &str| DbError::from(Error::DatabaseError(kind, Box::new(message.to_owned())));
        for (kind, message) in [
            (Kind::ClosedConnection, "closed"),
            (Kind::UnableToSendCommand, "connection closed"),
            (Kind::Unknown, "terminating connection due to administrator command"),
            (Kind::Unknown, "FATAL: the database system is shutting down"),
            (Kind::Unknown, "the database system is starting up"),
            (Kind::Unknown, "database is locked"),
        ] {
            assert!(matches!(db(kind, message), DbError::Pool(_)), "{message}");
        }
        assert!(matches!(DbError::from(Error::BrokenTransactionManager), DbError::Pool(_)));
        assert!(matches!(db(Kind::Unknown, "syntax error at or near \"x\""), DbError::Query(_)));
        assert!(matches!(db(Kind::UniqueViolation, "duplicate key"), DbError::Unique));
        assert!(matches!(DbError::from(Error::NotFound), DbError::Query(_)));
    }

    #[test]
    fn unknown_scheme_is_a_config_error() {
        assert!(matches!(classify("mysql://x"), Err(DbError::Config(_))));
        assert!(classify("sqlite://a.db").is_ok());
        assert!(classify("postgres://localhost/x").unwrap().0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sqlite_file_connects_and_migrates_once() {
        const SET: Migrations = Migrations {
            postgres: embed_migrations!("src/testdata/migrations"),
            sqlite: embed_migrations!("src/testdata/migrations"),
        };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        assert_eq!(db.migrate(SET).await.unwrap(), 1);
        assert_eq!(db.migrate(SET).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sqlite_writers_of_one_process_take_turns() -> Result<(), DbError> {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()), 4).await.unwrap();
        crate::with_conn!(&db, |conn| {
            conn.batch_execute("CREATE TABLE t (n INTEGER NOT NULL)").await?;
            Ok::<_, DbError>(())
        })?;
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let (db, inside, most) = (db.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    crate::with_write_conn!(&db, |conn| {
                        most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
                        conn.transaction(async move |conn| {
                            conn.batch_execute(&format!("INSERT INTO t (n) VALUES ({i})")).await?;
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            Ok::<_, DbError>(())
                        })
                        .await?;
                        inside.fetch_sub(1, SeqCst);
                        Ok::<_, DbError>(())
                    })
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        assert_eq!(most.load(SeqCst), 1, "two writers of the process held a connection for writing at once");
        let rows: i64 = crate::with_conn!(&db, |conn| {
            diesel_async::RunQueryDsl::get_result(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT count(*) FROM t)")),
                conn,
            )
            .await
            .map_err(DbError::from)
        })?;
        assert_eq!(rows, 16);
        Ok(())
    }
}
