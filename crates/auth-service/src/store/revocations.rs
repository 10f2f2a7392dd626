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
use shared_user::{DbError, with_conn, with_write_conn};

use super::Store;

diesel::table! {
    /// Revocation watermarks, one row per event; the id is the feed cursor.
    revocation_events (id) {
        id -> BigInt,
        user_id -> BigInt,
        not_before -> BigInt,
        created_at -> Timestamp,
        kid -> Nullable<Text>,
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

/// Inserts a feed entry on `$conn`, inside the caller's transaction (do it last: the lock is
/// held until commit): a watermark for `$user_id`, or with a fifth argument `Some(kid)` a revoked
/// signing key (`$user_id` and `$not_before` then 0); evaluates to
/// `Result<usize, diesel::result::Error>`.
macro_rules! insert_revocation {
    ($conn:expr, $user_id:expr, $not_before:expr, $now:expr) => {
        $crate::store::revocations::insert_revocation!($conn, $user_id, $not_before, $now, None::<&str>)
    };
    ($conn:expr, $user_id:expr, $not_before:expr, $now:expr, $kid:expr) => {{
        use $crate::store::revocations::FeedLock as _;
        use $crate::store::revocations::revocation_events as t;
        $conn.lock_feed().await?;
        diesel::insert_into(t::table)
            .values((t::user_id.eq($user_id), t::not_before.eq($not_before), t::created_at.eq($now), t::kid.eq($kid)))
            .execute($conn)
            .await
    }};
}
pub(crate) use insert_revocation;

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct RevocationRow {
    /// Cursor of this entry.
    pub id: i64,
    /// The user whose tokens are refused (0 for a key).
    pub user_id: i64,
    /// Tokens with `iat` before this (epoch seconds) are refused (0 for a key).
    pub not_before: i64,
    /// A revoked signing key: every token it signed is refused.
    pub kid: Option<String>,
}

/// How long the in-memory watermarks are used before the feed table is read again for what
/// is new. A revocation made by this process is seen at once (it makes the next check read);
/// one made by another replica or the CLI within this time.
pub const WATERMARK_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Entries read per query when catching up with the feed.
const PAGE: i64 = 10_000;
/// How often the whole map is rebuilt, so watermarks purged from the table leave memory too.
const REBUILD_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Every user's watermark in memory, kept in step with the feed table: read whole at first
/// use (and every hour), then only the entries after the last one seen, at most
/// once per [`WATERMARK_TTL`] and by one request at a time. A token check reads no database,
/// whatever the number of distinct users (a per-user cache would read once per user and
/// second). The feed's ids become visible in id order (see the module doc), so following the
/// cursor misses nothing.
#[derive(Debug)]
pub struct WatermarkIndex {
    /// User id -> largest `not_before`.
    map: std::sync::RwLock<std::collections::HashMap<i64, i64>>,
    /// Held by the request that reads the feed; the others wait for it.
    reader: tokio::sync::Mutex<Cursor>,
    /// The map is current until `base + valid_until_ns` (0: read before use).
    valid_until_ns: std::sync::atomic::AtomicU64,
    base: std::time::Instant,
}

/// Where the last read stopped.
#[derive(Debug, Default)]
struct Cursor {
    after: i64,
    rebuilt: Option<std::time::Instant>,
}

impl Default for WatermarkIndex {
    fn default() -> Self {
        Self {
            map: std::sync::RwLock::default(),
            reader: tokio::sync::Mutex::default(),
            valid_until_ns: std::sync::atomic::AtomicU64::new(0),
            base: std::time::Instant::now(),
        }
    }
}

impl WatermarkIndex {
    fn is_current(&self) -> bool {
        let until = std::sync::atomic::AtomicU64::load(&self.valid_until_ns, std::sync::atomic::Ordering::Acquire);
        until != 0 && (self.base.elapsed().as_nanos() as u64) < until
    }

    /// Makes the next check read the feed first (after this process wrote to it).
    pub(crate) fn invalidate(&self) {
        self.valid_until_ns.store(0, std::sync::atomic::Ordering::Release);
    }

    fn get(&self, user_id: i64) -> Option<i64> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(&user_id).copied()
    }
}

/// How often a replica with waiting long polls reads the feed's newest cursor, to learn of
/// revocations other replicas (or the CLI) made; its own wake its waiters at once.
pub const FEED_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Wakes the feed's long polls (`GET /auth/revocations/?after=N&wait=25s`) without any of them
/// holding a database connection while it waits: they wait on the newest cursor this replica
/// knows, which one watcher task reads from the database every [`FEED_WATCH_INTERVAL`], and at
/// once after this process wrote to the feed. The watcher runs only while someone waits (it
/// stops with the last waiter), so an idle replica reads nothing and a dropped state leaves no
/// task behind.
#[derive(Debug)]
pub struct FeedWatch {
    /// The newest cursor read.
    newest: tokio::sync::watch::Sender<i64>,
    /// Read now: this process wrote to the feed, or the first waiter arrived.
    poke: tokio::sync::Notify,
    /// Waiters, and whether the watcher task runs.
    waiting: std::sync::Mutex<(usize, bool)>,
}

impl Default for FeedWatch {
    fn default() -> Self {
        Self {
            newest: tokio::sync::watch::Sender::new(0),
            poke: tokio::sync::Notify::new(),
            waiting: std::sync::Mutex::new((0, false)),
        }
    }
}

/// One waiter of [`FeedWatch`]; leaving drops the count.
struct Waiting<'a>(&'a FeedWatch);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.lock().unwrap_or_else(|p| p.into_inner()).0 -= 1;
    }
}

impl FeedWatch {
    /// Says the feed changed here: waiters learn of it without waiting for the next read.
    pub(crate) fn poke(&self) {
        self.poke.notify_one();
    }

    /// Counts a waiter in, starting the watcher over `store` when none runs.
    fn enter(&self, store: &Store) -> Waiting<'_> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.0 += 1;
        if !waiting.1 {
            waiting.1 = true;
            let store = store.clone();
            tokio::spawn(async move { store.feed_watch.watch(&store).await });
        }
        self.poke.notify_one();
        Waiting(self)
    }

    /// The watcher: reads the newest cursor until nobody waits any more.
    async fn watch(&self, store: &Store) {
        loop {
            match store.last_revocation_id().await {
                Ok(id) => {
                    self.newest.send_if_modified(|known| {
                        let newer = id != *known;
                        *known = id;
                        newer
                    });
                }
                Err(e) => tracing::debug!(error = %e, "revocation feed watch: the newest cursor could not be read"),
            }
            tokio::select! {
                () = self.poke.notified() => {}
                () = tokio::time::sleep(FEED_WATCH_INTERVAL) => {}
            }
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if waiting.0 == 0 {
                waiting.1 = false;
                return;
            }
        }
    }
}

impl Store {
    /// Waits, holding no database connection, until the feed holds an entry after `after` (as
    /// far as this replica knows: within [`FEED_WATCH_INTERVAL`] for another replica's
    /// revocation, at once for this one's), `deadline` passes or `cut_short` resolves (the
    /// server shuts down); `true` when there is one.
    pub async fn wait_for_revocation_after(
        &self,
        after: i64,
        deadline: tokio::time::Instant,
        cut_short: impl std::future::Future<Output = ()>,
    ) -> bool {
        let watch = &self.feed_watch;
        let _waiting = watch.enter(self);
        let mut newest = watch.newest.subscribe();
        let fresh = async {
            // What the watcher read before this waiter arrived counts too (an entry committed
            // between the caller's page read and now).
            while *newest.borrow_and_update() <= after {
                if newest.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::select! {
            fresh = tokio::time::timeout_at(deadline, fresh) => fresh.unwrap_or(false),
            () = cut_short => false,
        }
    }

    /// The user's watermark: tokens with `iat` before it are dead (`None`: no revocation kept).
    /// From memory; the feed table is read at most once per [`WATERMARK_TTL`] for all users.
    pub async fn not_before(&self, user_id: i64) -> Result<Option<i64>, DbError> {
        let index = &self.watermarks;
        if !index.is_current() {
            let mut cursor = index.reader.lock().await;
            if !index.is_current() {
                self.catch_up(&mut cursor).await?;
            }
        }
        Ok(index.get(user_id))
    }

    /// Reads the feed entries after the cursor into the map (all of them, into a new map,
    /// when it is time to rebuild), then marks the map current for [`WATERMARK_TTL`] from
    /// the moment the read started.
    async fn catch_up(&self, cursor: &mut Cursor) -> Result<(), DbError> {
        let index = &self.watermarks;
        let started = index.base.elapsed();
        let rebuild = cursor.rebuilt.is_none_or(|at| at.elapsed() >= REBUILD_EVERY);
        let mut after = if rebuild { 0 } else { cursor.after };
        let mut fresh = std::collections::HashMap::new();
        loop {
            let rows = self.revocations_after(after, PAGE).await?;
            for r in rows.iter().filter(|r| r.kid.is_none()) {
                let mark = fresh.entry(r.user_id).or_insert(r.not_before);
                *mark = (*mark).max(r.not_before);
            }
            after = rows.iter().map(|r| r.id).fold(after, i64::max);
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        {
            let mut map = index.map.write().unwrap_or_else(|p| p.into_inner());
            if rebuild {
                *map = fresh;
            } else {
                for (user, not_before) in fresh {
                    let mark = map.entry(user).or_insert(not_before);
                    *mark = (*mark).max(not_before);
                }
            }
        }
        cursor.after = after;
        if rebuild {
            cursor.rebuilt = Some(std::time::Instant::now());
        }
        let until = (started + WATERMARK_TTL).as_nanos() as u64;
        index.valid_until_ns.store(until.max(1), std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Makes the next token check read the feed (after this process revoked `_user_id`), so
    /// its own revocation applies at once.
    pub(crate) fn forget_watermark(&self, _user_id: i64) {
        self.watermarks.invalidate();
        self.feed_watch.poke();
    }

    /// Feed entries after cursor `after`, oldest first, at most `limit`.
    pub async fn revocations_after(&self, after: i64, limit: i64) -> Result<Vec<RevocationRow>, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(revocation_events::table
                .filter(revocation_events::id.gt(after))
                .order(revocation_events::id.asc())
                .limit(limit)
                .select((
                    revocation_events::id,
                    revocation_events::user_id,
                    revocation_events::not_before,
                    revocation_events::kid,
                ))
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

    /// Deletes watermarks recorded before `before` (every token they refuse has expired), in
    /// batches (see [`super::purge`]); returns how many.
    pub async fn purge_revocations(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        let sizes = super::purge::Batches::of(self.db());
        super::purge::in_batches("revocation_events", sizes, |rows| async move {
            with_write_conn!(self.db(), |conn| {
                let batch = super::purge::batch_filter("id", "revocation_events", "created_at", before, rows);
                Ok(diesel::delete(revocation_events::table.filter(batch)).execute(conn).await?)
            })
        })
        .await
    }
}
