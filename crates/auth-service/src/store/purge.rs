//! Housekeeping deletes in batches: expired refresh records and sessions, old watermarks and
//! audit events can be millions of rows, and one `DELETE` of them all would hold SQLite's
//! write lock (every login and refresh waits) or one long PostgreSQL transaction for seconds
//! to minutes. Each batch is its own short statement, and the purge then rests for as long as
//! the batch took (at least [`MIN_PAUSE`]), so writers waiting for the lock get at least half
//! of the time. On PostgreSQL a batch is [`PG_BATCH`] rows (row locks: nobody waits for the
//! batch as a whole). On SQLite a batch holds the one write lock, and what a number of rows
//! costs depends on the machine, its load and the table's indexes: the batch is sized from the
//! one before to take about [`SQLITE_BATCH_TIME`], between [`SQLITE_BATCH_MIN`] and
//! [`SQLITE_BATCH_MAX`] rows. A writer in another process (`purge-tokens` beside `serve`) waits
//! in SQLite's busy handler, which tries again after 1, 2, 5 and 10 ms: a short batch is
//! what keeps that wait short.
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
/// How long a batch on SQLite should hold the write lock.
pub const SQLITE_BATCH_TIME: Duration = Duration::from_millis(5);
/// Rows of the first batch on SQLite.
pub const SQLITE_BATCH_FIRST: i64 = 250;
/// The fewest rows of a batch on SQLite (however slow the machine).
pub const SQLITE_BATCH_MIN: i64 = 50;
/// The most rows of a batch on SQLite (however fast the machine).
pub const SQLITE_BATCH_MAX: i64 = 5000;
/// The shortest rest between two batches.
pub const MIN_PAUSE: Duration = Duration::from_millis(10);
/// How often a running purge logs its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How many rows each batch deletes: a fixed number, or sized to take about a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batches {
    rows: i64,
    timed: Option<(Duration, i64, i64)>,
}

impl Batches {
    /// The batches for `db` (see the module doc).
    pub fn of(db: &Db) -> Self {
        match db {
            Db::Postgres(_) => Batches { rows: PG_BATCH, timed: None },
            Db::Sqlite(_) => Batches {
                rows: SQLITE_BATCH_FIRST,
                timed: Some((SQLITE_BATCH_TIME, SQLITE_BATCH_MIN, SQLITE_BATCH_MAX)),
            },
        }
    }

    /// The rows of the next batch, after one of `rows` rows took `took`: scaled towards the
    /// target time, by at most half or double in one step (one slow batch, say a checkpoint,
    /// does not shrink the next to nothing), within the bounds.
    fn next(self, took: Duration) -> Self {
        let Some((target, min, max)) = self.timed else { return self };
        let took = took.as_secs_f64().max(1e-6);
        let scaled = (self.rows as f64 * target.as_secs_f64() / took).round() as i64;
        let rows = scaled.clamp(self.rows / 2, self.rows.saturating_mul(2)).clamp(min, max);
        Batches { rows, ..self }
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

/// Runs `batch` (one delete of at most the rows it is given, returning how many it deleted)
/// with the sizes of `sizes` until a batch deletes fewer than it was given; returns the total.
/// `table` names the purge in logs and metrics.
pub async fn in_batches<F, Fut>(table: &'static str, sizes: Batches, mut batch: F) -> Result<usize, DbError>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<usize, DbError>>,
{
    let _running = Running::start(table);
    let started = Instant::now();
    let mut logged = started;
    let (mut total, mut batches) = (0usize, 0u64);
    let mut sizes = sizes;
    loop {
        let rows = sizes.rows;
        let took = Instant::now();
        let deleted = batch(rows).await?;
        let took = took.elapsed();
        sizes = sizes.next(took);
        total += deleted;
        batches += 1;
        metrics::counter!(PURGE_ROWS, "table" => table).increment(deleted as u64);
        if (deleted as i64) < rows {
            break;
        }
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            tracing::info!(
                table,
                rows = total,
                batches,
                batch_rows = sizes.rows,
                seconds = started.elapsed().as_secs(),
                "purge running"
            );
        }
        tokio::time::sleep(took.max(MIN_PAUSE)).await;
    }
    if total > 0 {
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(table, rows = total, batches, seconds, "purge done");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(rows: i64) -> Batches {
        Batches { rows, timed: Some((SQLITE_BATCH_TIME, SQLITE_BATCH_MIN, SQLITE_BATCH_MAX)) }
    }

    #[test]
    fn sqlite_batches_follow_the_time_they_take() {
        let ms = Duration::from_millis;
        assert_eq!(sqlite(1000).next(ms(5)).rows, 1000, "on target: unchanged");
        assert_eq!(sqlite(1000).next(ms(4)).rows, 1250, "a little fast: a little more");
        assert_eq!(sqlite(1000).next(ms(1)).rows, 2000, "much faster: at most double");
        assert_eq!(sqlite(1000).next(ms(200)).rows, 500, "much slower: at most half");
        assert_eq!(sqlite(4000).next(Duration::ZERO).rows, SQLITE_BATCH_MAX, "never above the most");
        assert_eq!(sqlite(60).next(ms(50)).rows, SQLITE_BATCH_MIN, "never below the fewest");
        let pg = Batches { rows: PG_BATCH, timed: None };
        assert_eq!(pg.next(ms(900)), pg, "PostgreSQL: fixed");
    }
}
