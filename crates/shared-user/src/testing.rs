//! Fresh databases for tests: a SQLite file in a temp dir, or a PostgreSQL database per test
//! created on the server named by `GATEHOUSE_TEST_POSTGRES_URL` (dropped afterwards).
//!
//! Without that variable a PostgreSQL test prints `skipped: ...` and passes, except under CI
//! (`CI=true`), where it fails: a suite that cannot reach its database must not look green.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

pub mod logs;
pub mod net;
pub mod openapi;

use crate::db::{Db, Migrations};

/// Environment variable naming the PostgreSQL server used by tests.
pub const PG_ENV: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// Whether the tests run under CI (`CI` set to anything but empty, `0` or `false`).
pub fn under_ci() -> bool {
    ci_means_on(std::env::var("CI").ok().as_deref())
}

fn ci_means_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// The PostgreSQL server URL for `test`, or `None` after printing a "skipped" line.
///
/// # Panics
/// Under CI ([`under_ci`]) when [`PG_ENV`] is unset: the test fails instead of skipping.
pub fn pg_admin_url(test: &str) -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if under_ci() => panic!("{test} on PostgreSQL: {PG_ENV} is not set, and CI=true forbids skipping"),
        _ => {
            eprintln!("skipped: {test} on PostgreSQL ({PG_ENV} is not set)");
            None
        }
    }
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in a temp dir (always available).
    Sqlite,
    /// A fresh database on `GATEHOUSE_TEST_POSTGRES_URL`.
    Postgres,
}

/// A fresh, migrated database that is removed when dropped.
pub struct TestDb {
    /// URL to hand to a service (`DATABASE_URL`).
    pub url: String,
    /// Connected pool.
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("url", &self.url).finish()
    }
}

impl TestDb {
    /// A fresh database on `backend` migrated with `set`, or `None` (with a "skipped" line on
    /// stderr) when the PostgreSQL server is not configured; see [`pg_admin_url`] for CI.
    pub async fn new(backend: Backend, test: &str, set: Migrations) -> Option<TestDb> {
        let db = Self::empty(backend, test).await?;
        db.db.migrate(set).await.expect("migrate");
        Some(db)
    }

    /// A fresh database on `backend` with no table at all, or `None` as for [`TestDb::new`].
    pub async fn empty(backend: Backend, test: &str) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                let db = Db::connect(&url, 4).await.expect("sqlite connect");
                Some(TestDb { url, db, _dir: Some(dir), pg_drop: None })
            }
            Backend::Postgres => {
                let admin = pg_admin_url(test)?;
                let name = format!("gh_{}", uuid::Uuid::new_v4().simple());
                let mut conn = AsyncPgConnection::establish(&admin).await.expect("postgres admin connect");
                conn.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
                let url = crate::db::with_database_name(&admin, &name);
                let db = Db::connect(&url, 4).await.expect("postgres connect");
                Some(TestDb { url, db, _dir: None, pg_drop: Some((admin, name)) })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take() {
            // Best effort, off the test's runtime: the pool may still hold connections.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async move {
                    if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                        let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    }
                });
            })
            .join();
        }
    }
}

/// Generates one `#[tokio::test]` per backend for an `async fn(Backend)` test body:
/// `both_backends!(my_test_fn);` makes `my_test_fn_sqlite` and `my_test_fn_postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $crate::testing::paste_free_both!($($name),+);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! paste_free_both {
    ($($name:ident),+) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::testing::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::testing::Backend::Postgres).await;
                }
            }
        )+
    };
}

pub use crate::paste_free_both;

#[cfg(test)]
mod tests {
    #[test]
    fn ci_is_on_unless_unset_empty_zero_or_false() {
        for on in ["true", "1", "yes", "TRUE"] {
            assert!(super::ci_means_on(Some(on)), "{on}");
        }
        for off in [None, Some(""), Some("0"), Some("false"), Some("False")] {
            assert!(!super::ci_means_on(off), "{off:?}");
        }
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(crate::db::with_database_name("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            crate::db::with_database_name("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(crate::db::with_database_name("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
