//! Housekeeping deletes in batches: expired refresh records and sessions, old watermarks and
//! audit events can be millions of rows, and one `DELETE` of them all would hold SQLite's
//! write lock (every login and refresh waits) or one long PostgreSQL transaction for seconds
//! to minutes. Each batch is its own short statement of at most [`PG_BATCH`] or [`SQLITE_BATCH`] rows, and
//! the purge then rests for as long as the batch took (at least [`MIN_PAUSE`]), so writers
//! waiting for the lock get at least half of the time.
//!
//! Progress shows in the log (a line every [`PROGRESS_EVERY`] while a purge runs, one with the
//! totals at its end) and in metrics: `gatehouse_purge_rows_total{table}` (rows deleted) and
//! `gatehouse_purge_running{table}` (1 while a purge of that table runs).

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::expression::SqlLiteral;
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Timestamp};
use diesel::sqlite::Sqlite;
use shared_user::ops::metrics::{PURGE_ROWS, PURGE_RUNNING};
use shared_user::{Db, DbError};

/// Rows per batch on PostgreSQL.
pub const PG_BATCH: i64 = 5000;
/// Rows per batch on SQLite, where a batch holds the one write lock: about 10 ms of deletes
/// with their index entries on this hardware.
pub const SQLITE_BATCH: i64 = 1000;
/// The shortest rest between two batches.
pub const MIN_PAUSE: Duration = Duration::from_millis(10);
/// How often a running purge logs its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The batch size for `db`.
pub fn batch_rows(db: &Db) -> i64 {
    match db {
        Db::Postgres(_) => PG_BATCH,
        Db::Sqlite(_) => SQLITE_BATCH,
    }
}

/// `key IN (SELECT key FROM table WHERE time < before LIMIT rows)`: one batch of the rows of
/// `table` older than `before`, by its key column (diesel's query builder cannot delete from a
/// table by a subselect of the same table; the names are this crate's constants, never input).
pub fn batch_filter(
    key: &'static str,
    table: &'static str,
    time: &'static str,
    before: NaiveDateTime,
    rows: i64,
) -> SqlLiteral<Bool, impl QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send> {
    sql::<Bool>(&format!("{key} IN (SELECT {key} FROM {table} WHERE {time} < "))
        .bind::<Timestamp, _>(before)
        .sql(" LIMIT ")
        .bind::<BigInt, _>(rows)
        .sql(")")
}

/// Marks a purge of one table as running in `gatehouse_purge_running` while it lives.
struct Running(&'static str);

impl Running {
    fn start(table: &'static str) -> Self {
        metrics::gauge!(PURGE_RUNNING, "table" => table).increment(1.0);
        Running(table)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        metrics::gauge!(PURGE_RUNNING, "table" => self.0).decrement(1.0);
    }
}

/// Runs `batch` (one delete of at most `rows` rows, returning how many it deleted) until a
/// batch deletes fewer than `rows`; returns the total. `table` names the purge in logs and
/// metrics.
pub async fn in_batches<F, Fut>(table: &'static str, rows: i64, mut batch: F) -> Result<usize, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, DbError>>,
{
    let _running = Running::start(table);
    let started = Instant::now();
    let mut logged = started;
    let (mut total, mut batches) = (0usize, 0u64);
    loop {
        let took = Instant::now();
        let deleted = batch().await?;
        let took = took.elapsed();
        total += deleted;
        batches += 1;
        metrics::counter!(PURGE_ROWS, "table" => table).increment(deleted as u64);
        if (deleted as i64) < rows {
            break;
        }
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            tracing::info!(table, rows = total, batches, seconds = started.elapsed().as_secs(), "purge running");
        }
        tokio::time::sleep(took.max(MIN_PAUSE)).await;
    }
    if total > 0 {
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(table, rows = total, batches, seconds, "purge done");
    }
    Ok(total)
}
