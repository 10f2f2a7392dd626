//! SQL for the per-user revocation watermarks and their feed.
//!
//! A watermark is a row "tokens of `user_id` issued before `not_before` (epoch seconds) are
//! dead"; a user's watermark is the largest of their rows. The row id is the feed cursor, so it
//! must become visible in id order: on PostgreSQL every writer takes a table lock that only
//! writers of this table wait for (plain readers never do) right before inserting, so a row
//! with a smaller id can never commit after a larger one has been read. SQLite has one writer
//! at a time anyway.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use shared_user::db::{PgConn, SqliteConn};
use shared_user::{DbError, with_conn};

use super::Store;

diesel::table! {
    /// Revocation watermarks, one row per event; the id is the feed cursor.
    revocation_events (id) {
        id -> BigInt,
        user_id -> BigInt,
        not_before -> BigInt,
        created_at -> Timestamp,
    }
}

/// Serialises writers of `revocation_events` (see the module doc).
pub(crate) trait FeedLock {
    /// Takes the writers' lock until the end of the transaction (no-op on SQLite).
    async fn lock_feed(&mut self) -> Result<(), diesel::result::Error>;
}

impl FeedLock for PgConn {
    async fn lock_feed(&mut self) -> Result<(), diesel::result::Error> {
        self.batch_execute("LOCK TABLE revocation_events IN SHARE ROW EXCLUSIVE MODE").await
    }
}

impl FeedLock for SqliteConn {
    async fn lock_feed(&mut self) -> Result<(), diesel::result::Error> {
        Ok(())
    }
}

/// Inserts a watermark for `$user_id` on `$conn`, inside the caller's transaction (do it last:
/// the lock is held until commit); evaluates to `Result<usize, diesel::result::Error>`.
macro_rules! insert_revocation {
    ($conn:expr, $user_id:expr, $not_before:expr, $now:expr) => {{
        use $crate::store::revocations::FeedLock as _;
        use $crate::store::revocations::revocation_events as t;
        $conn.lock_feed().await?;
        diesel::insert_into(t::table)
            .values((t::user_id.eq($user_id), t::not_before.eq($not_before), t::created_at.eq($now)))
            .execute($conn)
            .await
    }};
}
pub(crate) use insert_revocation;

/// One entry of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct RevocationRow {
    /// Cursor of this entry.
    pub id: i64,
    /// The user whose tokens are refused.
    pub user_id: i64,
    /// Tokens with `iat` before this (epoch seconds) are refused.
    pub not_before: i64,
}

/// How long a watermark read from the database is used before it is read again. A revocation
/// made by this process is seen at once (its entry is dropped); one made by another replica or
/// the CLI within this time.
pub const WATERMARK_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Users whose watermark is kept in memory.
pub const WATERMARK_CACHE_SIZE: usize = 100_000;

/// User id -> (watermark, when it was read).
pub type WatermarkCache = quick_cache::sync::Cache<i64, (Option<i64>, std::time::Instant)>;

impl Store {
    /// The user's watermark: tokens with `iat` before it are dead (`None`: no revocation kept).
    /// Read from the database at most once per [`WATERMARK_TTL`] per user.
    pub async fn not_before(&self, user_id: i64) -> Result<Option<i64>, DbError> {
        if let Some((not_before, at)) = self.watermarks.get(&user_id)
            && at.elapsed() < WATERMARK_TTL
        {
            return Ok(not_before);
        }
        let read_at = std::time::Instant::now();
        let not_before = with_conn!(self.db(), |conn| {
            Ok::<_, DbError>(
                revocation_events::table
                    .filter(revocation_events::user_id.eq(user_id))
                    .select(diesel::dsl::max(revocation_events::not_before))
                    .first::<Option<i64>>(conn)
                    .await?,
            )
        })?;
        self.watermarks.insert(user_id, (not_before, read_at));
        Ok(not_before)
    }

    /// Forgets the cached watermark of `user_id` (after this process revoked the user).
    pub(crate) fn forget_watermark(&self, user_id: i64) {
        self.watermarks.remove(&user_id);
    }

    /// Feed entries after cursor `after`, oldest first, at most `limit`.
    pub async fn revocations_after(&self, after: i64, limit: i64) -> Result<Vec<RevocationRow>, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(revocation_events::table
                .filter(revocation_events::id.gt(after))
                .order(revocation_events::id.asc())
                .limit(limit)
                .select((revocation_events::id, revocation_events::user_id, revocation_events::not_before))
                .load::<RevocationRow>(conn)
                .await?)
        })
    }

    /// The newest feed cursor (0 when the feed is empty).
    pub async fn last_revocation_id(&self) -> Result<i64, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(revocation_events::table
                .select(diesel::dsl::max(revocation_events::id))
                .first::<Option<i64>>(conn)
                .await?
                .unwrap_or(0))
        })
    }

    /// Deletes watermarks recorded before `before` (every token they refuse has expired);
    /// returns how many.
    pub async fn purge_revocations(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(diesel::delete(revocation_events::table.filter(revocation_events::created_at.lt(before)))
                .execute(conn)
                .await?)
        })
    }
}
