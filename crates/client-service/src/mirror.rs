//! The local user mirror (`gatehouse_users`, `gatehouse_access_groups`): users and access
//! groups overwritten from the auth-service's JSON. All SQL of the client crate is here.
//!
//! Built for many users:
//! - **Writes are queued and group-committed.** [`Mirror::upsert`] hands the user to one
//!   writer task and returns: the request is answered from the user just fetched (and kept in
//!   memory) without waiting for the database. The writer puts every write waiting at that
//!   moment in one transaction, so a burst of first requests costs one commit, not one each.
//!   All writes (upserts, deactivations, stale marks) go through that one queue, so they land
//!   in the order they were made. [`Mirror::flush`] waits for everything queued so far; a
//!   failed write is logged and counted, and that user is simply fetched again later. On PostgreSQL
//!   a batch is one statement whatever its size, committed without waiting for the WAL flush
//!   (`synchronous_commit` off for that transaction only: the mirror is a copy that is fetched
//!   again when lost).
//! - **SQLite work runs in one blocking call.** diesel's SQLite connection is synchronous and
//!   each query of the async wrapper is a hop to the blocking pool; a read (user and groups) or
//!   a whole write batch is one hop instead, with diesel's prepared-statement cache.
//! - **An index of the mirrored ids** (read once at first use, then kept up to date by this
//!   process's writes) answers "not mirrored" without a database read, so a user seen for the
//!   first time goes straight to the auth-service. Rows written by another process sharing the
//!   database are not in it: such a user is fetched rather than read, which is correct, only
//!   slower; when the auth-service is down the database is read anyway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::db::PgPooled;
use shared_user::user::{GroupRow, now_utc};
use shared_user::{AccessGroup, Db, DbError, User, replace_access_groups, with_conn};
use tokio::sync::{mpsc, oneshot};

use crate::schema::{gatehouse_access_groups, gatehouse_users as users};

type Row = (i64, String, String, String, NaiveDateTime, Option<NaiveDateTime>, bool, bool, bool, NaiveDateTime);

/// Users waiting for the writer at most (a full queue makes writers wait their turn).
const QUEUE: usize = 4096;
/// Users per transaction at most.
const BATCH: usize = 512;

/// A mirrored user and when it was last fetched.
#[derive(Debug, Clone)]
pub(crate) struct Mirrored {
    /// The user as last seen on the auth-service.
    pub(crate) user: User,
    /// When it was fetched (UTC).
    pub(crate) synced_at: Option<NaiveDateTime>,
}

/// One write for the writer task, in queue order.
enum Write {
    /// Overwrite the row and groups of this user, synced now.
    Upsert(Arc<User>),
    /// The auth-service refused this user: inactive, as of the time given.
    Deactivate(i64, NaiveDateTime),
    /// A revocation: fetch this user again at their next request.
    MarkStale(i64),
    /// Answer once every earlier write is done.
    Flush(oneshot::Sender<()>),
}

/// Ids with a row in the mirror, as far as this process knows: a compressed bitmap (user ids
/// are mostly dense, so a million of them take about 130 KB instead of 16-32 MB as a hash set).
#[derive(Debug, Default)]
struct Known {
    ids: RwLock<roaring::RoaringTreemap>,
    /// The ids already in the database have been read.
    loaded: AtomicBool,
}

impl Known {
    fn add(&self, id: i64) {
        self.ids.write().unwrap_or_else(|p| p.into_inner()).insert(id.cast_unsigned());
    }

    /// `false` only when the mirror surely has no row for `id`.
    fn may_hold(&self, id: i64) -> bool {
        !AtomicBool::load(&self.loaded, Ordering::Acquire)
            || self.ids.read().unwrap_or_else(|p| p.into_inner()).contains(id.cast_unsigned())
    }
}

/// All SQL of the client-service.
#[derive(Debug)]
pub(crate) struct Mirror {
    db: Db,
    known: Arc<Known>,
    /// The writer's queue, started at the first write (a tokio runtime is there then).
    writer: OnceLock<mpsc::Sender<Write>>,
    /// The index load, started at the first read.
    indexing: std::sync::Once,
}

impl Mirror {
    /// Wraps a connected, migrated database.
    pub(crate) fn new(db: Db) -> Self {
        Self { db, known: Arc::default(), writer: OnceLock::new(), indexing: std::sync::Once::new() }
    }

    /// The underlying database.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// `false` when the mirror surely holds no row for `id` (no read needed). Starts reading
    /// the index on first use.
    pub(crate) fn may_hold(&self, id: i64) -> bool {
        self.indexing.call_once(|| {
            let (db, known) = (self.db.clone(), self.known.clone());
            tokio::spawn(async move {
                match mirrored_ids(&db).await {
                    Ok(ids) => {
                        known
                            .ids
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(ids.into_iter().map(i64::cast_unsigned));
                        known.loaded.store(true, Ordering::Release);
                    }
                    // Without the index every miss reads the database, as before.
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the mirrored ids; reading the mirror on every miss")
                    }
                }
            });
        });
        self.known.may_hold(id)
    }

    /// The mirrored user with this id.
    pub(crate) async fn find(&self, id: i64) -> Result<Option<Mirrored>, DbError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let mut conn = pool.get().await?;
                Ok(conn.spawn_blocking(move |c| sync::find(c, id)).await?)
            }
            Db::Postgres(pool) => {
                // One round trip: the user joined with its groups (one row per group).
                let mut pooled = pool.get().await?;
                let rows: Vec<(Row, Option<GroupRow>)> = users::table
                    .left_join(gatehouse_access_groups::table)
                    .filter(users::id.eq(id))
                    .order(gatehouse_access_groups::name.asc())
                    .select((COLUMNS, (gatehouse_access_groups::name, gatehouse_access_groups::level).nullable()))
                    .load(&mut *pooled)
                    .await?;
                Ok(AccessGroup::fold_joined(rows).map(|(row, groups)| mirrored(row, groups)))
            }
        }
    }

    /// Marks a mirrored user inactive (the auth-service refused them), as of now. Queued
    /// behind the writes already waiting, and done (or logged as failed) when this returns, so
    /// no later request reads the old row.
    pub(crate) async fn deactivate(&self, id: i64) {
        if self.queue(Write::Deactivate(id, now_utc())).await {
            self.flush().await;
        }
    }

    /// Marks a mirrored user stale (a revocation), so their next request fetches them from
    /// the auth-service. Queued like [`deactivate`](Self::deactivate), and done when this
    /// returns.
    pub(crate) async fn mark_stale(&self, id: i64) {
        if self.queue(Write::MarkStale(id)).await {
            self.flush().await;
        }
    }

    /// Overwrites the mirror of `user` (row and groups), synced now. Queued: returns at once
    /// unless the queue is full. The auth-service is the source of truth: a local row holding
    /// the same email under another id is removed.
    pub(crate) async fn upsert(&self, user: Arc<User>) {
        self.queue(Write::Upsert(user)).await;
    }

    /// Waits until every write queued before this call is done (committed, or failed and
    /// logged).
    pub(crate) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue(Write::Flush(done)).await {
            let _ = flushed.await;
        }
    }

    /// Queues `write` (waiting for room when the queue is full); `false` when the writer is
    /// gone (its runtime stopped), which is logged.
    async fn queue(&self, write: Write) -> bool {
        let writer = self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_batches(self.db.clone(), self.known.clone(), rx));
            tx
        });
        let queued = writer.send(write).await.is_ok();
        if !queued {
            tracing::warn!("the mirror writer has stopped; the write is dropped");
        }
        queued
    }
}

/// The columns of [`Row`].
const COLUMNS: (
    users::id,
    users::email,
    users::first_name,
    users::last_name,
    users::date_joined,
    users::last_login,
    users::is_active,
    users::is_staff,
    users::is_superuser,
    users::synced_at,
) = (
    users::id,
    users::email,
    users::first_name,
    users::last_name,
    users::date_joined,
    users::last_login,
    users::is_active,
    users::is_staff,
    users::is_superuser,
    users::synced_at,
);

fn mirrored(row: Row, access_groups: Vec<AccessGroup>) -> Mirrored {
    let (id, email, first_name, last_name, date_joined, last_login, is_active, is_staff, is_superuser, synced_at) = row;
    let user = User {
        id,
        email,
        first_name,
        last_name,
        date_joined,
        last_login,
        is_active,
        is_staff,
        is_superuser,
        access_groups,
    };
    Mirrored { user, synced_at: Some(synced_at) }
}

/// Every id in the mirror.
async fn mirrored_ids(db: &Db) -> Result<Vec<i64>, DbError> {
    with_conn!(db, |conn| Ok(users::table.select(users::id).load::<i64>(conn).await?))
}

/// How long the writer keeps its PostgreSQL connection with nothing to write.
const KEEP_CONNECTION: std::time::Duration = std::time::Duration::from_secs(1);

/// The writer: takes every write waiting and does them in queue order, consecutive upserts
/// in one transaction. When such a batch fails (a unique conflict between two of its users,
/// say), each user is written in its own transaction so one bad row loses only itself. Failed
/// writes are logged and counted. On PostgreSQL it keeps its connection while writes keep
/// coming (no checkout, and no check of the connection, per batch) and gives it back after
/// [`KEEP_CONNECTION`] without work or after an error.
async fn write_batches(db: Db, known: Arc<Known>, mut queue: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut held: Option<PgPooled> = None;
    loop {
        let received = if held.is_some() {
            match tokio::time::timeout(KEEP_CONNECTION, queue.recv_many(&mut batch, BATCH)).await {
                Ok(received) => received,
                Err(_idle) => {
                    held = None;
                    queue.recv_many(&mut batch, BATCH).await
                }
            }
        } else {
            queue.recv_many(&mut batch, BATCH).await
        };
        if received == 0 {
            break;
        }
        let mut upserts: Vec<Arc<User>> = Vec::new();
        for write in batch.drain(..) {
            match write {
                Write::Upsert(user) => upserts.push(user),
                other => {
                    upsert_all(&db, &mut held, &known, std::mem::take(&mut upserts)).await;
                    match other {
                        Write::Deactivate(id, at) => {
                            if let Err(e) = update(&db, &mut held, id, Change::Inactive(at)).await {
                                tracing::warn!(user_id = id, error = %e, "could not mark the mirrored user inactive");
                            }
                        }
                        Write::MarkStale(id) => {
                            if let Err(e) = update(&db, &mut held, id, Change::Stale).await {
                                // The watermark already refuses the old tokens; this only
                                // delays the refetch of the user until the mirror TTL.
                                tracing::warn!(user_id = id, error = %e, "could not mark the mirrored user stale");
                            }
                        }
                        Write::Flush(done) => {
                            let _ = done.send(());
                        }
                        Write::Upsert(_) => unreachable!("matched above"),
                    }
                }
            }
        }
        upsert_all(&db, &mut held, &known, upserts).await;
    }
}

/// Writes `users` (one transaction, then one each if that fails), records the outcome.
async fn upsert_all(db: &Db, held: &mut Option<PgPooled>, known: &Known, users: Vec<Arc<User>>) {
    if users.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let result = write(db, held, &users).await;
    crate::metrics::mirror_write(started, users.len());
    let results: Vec<(i64, Result<(), DbError>)> = match result {
        Ok(()) => users.iter().map(|u| (u.id, Ok(()))).collect(),
        Err(_) if users.len() > 1 => {
            let mut each = Vec::with_capacity(users.len());
            for user in &users {
                each.push((user.id, write(db, held, std::slice::from_ref(user)).await));
            }
            each
        }
        Err(e) => vec![(users[0].id, Err(e))],
    };
    for (id, result) in results {
        match result {
            Ok(()) => known.add(id),
            Err(e) => {
                crate::metrics::mirror_write_failed();
                tracing::warn!(user_id = id, error = %e, "could not write the user to the mirror; it is fetched again later");
            }
        }
    }
}

/// The writer's PostgreSQL connection, taken from the pool when it holds none.
async fn held_connection<'a>(
    pool: &shared_user::db::PgPool,
    held: &'a mut Option<PgPooled>,
) -> Result<&'a mut PgPooled, DbError> {
    if held.is_none() {
        *held = Some(pool.get().await?);
    }
    held.as_mut().ok_or_else(|| DbError::Pool("no mirror connection".into()))
}

/// A change of one mirrored row that is not an upsert.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Inactive, synced at this time.
    Inactive(NaiveDateTime),
    /// Never synced (`synced_at` is required: the epoch means "fetch again").
    Stale,
}

/// One `UPDATE` of a user's row, on the held PostgreSQL connection when there is one.
async fn update(db: &Db, held: &mut Option<PgPooled>, id: i64, change: Change) -> Result<(), DbError> {
    let never = chrono::DateTime::UNIX_EPOCH.naive_utc();
    macro_rules! run {
        ($conn:expr) => {
            match change {
                Change::Inactive(at) => {
                    diesel::update(users::table.find(id))
                        .set((users::is_active.eq(false), users::synced_at.eq(at)))
                        .execute($conn)
                        .await
                }
                Change::Stale => {
                    diesel::update(users::table.find(id)).set(users::synced_at.eq(never)).execute($conn).await
                }
            }
        };
    }
    match db {
        Db::Postgres(pool) => {
            let conn = held_connection(pool, held).await?;
            let result = run!(&mut **conn).map(drop).map_err(DbError::from);
            if result.is_err() {
                *held = None;
            }
            result
        }
        Db::Sqlite(_) => with_conn!(db, |conn| {
            run!(conn)?;
            Ok(())
        }),
    }
}

/// Writes `users` in one transaction, synced as of now. On PostgreSQL the connection in
/// `held` is used (one is taken from the pool when there is none) and dropped on an error.
async fn write(db: &Db, held: &mut Option<PgPooled>, users: &[Arc<User>]) -> Result<(), DbError> {
    let now = now_utc();
    match db {
        Db::Sqlite(pool) => {
            let users = users.to_vec();
            let mut conn = pool.get().await?;
            Ok(conn
                .spawn_blocking(move |c| c.transaction(|c| users.iter().try_for_each(|u| sync::upsert(c, u, now))))
                .await?)
        }
        Db::Postgres(pool) => {
            let conn = held_connection(pool, held).await?;
            let result = match UpsertBatch::new(users, now).execute(&mut **conn).await.map_err(DbError::from) {
                // An email that moved to another id: delete the old holder first, user by user.
                Err(DbError::Unique) => {
                    conn.transaction(async move |conn| {
                        diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(conn).await?;
                        for user in users {
                            upsert_one(conn, user, now).await?;
                        }
                        Ok::<(), DbError>(())
                    })
                    .await
                }
                done => done.map(drop),
            };
            if result.is_err() {
                *held = None;
            }
            result
        }
    }
}

/// The whole batch in one PostgreSQL statement (one round trip, atomic by itself, prepared
/// once per connection): users upserted, their groups upserted, and their groups no longer
/// listed deleted. The parts touch different rows, so running them as one statement is safe;
/// the groups' foreign key is checked at the end of the statement, when the users are there.
/// An email held by another id in the mirror fails it with a unique violation.
///
/// The mirror is a copy of the auth-service's users, so the statement also turns
/// `synchronous_commit` off for its own transaction (`set_config(.., true)`): its commit does
/// not wait for the WAL flush. A crash of the PostgreSQL server itself may forget the last few
/// hundred milliseconds of mirror writes (never part of one; those users are fetched again); a
/// crash of this process loses nothing committed. The host's own writes are not affected.
struct UpsertBatch {
    ids: Vec<i64>,
    emails: Vec<String>,
    first_names: Vec<String>,
    last_names: Vec<String>,
    joined: Vec<NaiveDateTime>,
    last_logins: Vec<Option<NaiveDateTime>>,
    active: Vec<bool>,
    staff: Vec<bool>,
    superuser: Vec<bool>,
    now: NaiveDateTime,
    group_users: Vec<i64>,
    group_names: Vec<String>,
    group_levels: Vec<Option<String>>,
}

impl UpsertBatch {
    fn new(batch: &[Arc<User>], now: NaiveDateTime) -> Self {
        let column = |f: fn(&User) -> String| batch.iter().map(|u| f(u)).collect::<Vec<String>>();
        let flag = |f: fn(&User) -> bool| batch.iter().map(|u| f(u)).collect::<Vec<bool>>();
        let groups = || batch.iter().flat_map(|u| u.access_groups.iter().map(move |g| (u.id, g)));
        Self {
            ids: batch.iter().map(|u| u.id).collect(),
            emails: column(|u| u.email.clone()),
            first_names: column(|u| u.first_name.clone()),
            last_names: column(|u| u.last_name.clone()),
            joined: batch.iter().map(|u| u.date_joined).collect(),
            last_logins: batch.iter().map(|u| u.last_login).collect(),
            active: flag(|u| u.is_active),
            staff: flag(|u| u.is_staff),
            superuser: flag(|u| u.is_superuser),
            now,
            group_users: groups().map(|(id, _)| id).collect(),
            group_names: groups().map(|(_, g)| g.name.clone()).collect(),
            group_levels: groups().map(|(_, g)| g.level.clone()).collect(),
        }
    }
}

impl diesel::query_builder::QueryId for UpsertBatch {
    type QueryId = Self;
    // The SQL text never changes, so the prepared statement is cached per connection.
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for UpsertBatch {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamp};
        out.push_sql("WITH i AS (SELECT * FROM UNNEST(");
        out.push_bind_param::<Array<BigInt>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.emails)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.first_names)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.last_names)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.joined)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.last_logins)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.active)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.staff)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.superuser)?;
        out.push_sql(
            ") AS i(id, email, first_name, last_name, date_joined, last_login, is_active, is_staff, is_superuser)), \
             n AS (SELECT * FROM UNNEST(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.group_users)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.group_names)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.group_levels)?;
        out.push_sql(
            ") AS n(user_id, name, level)), \
             c AS (SELECT set_config('synchronous_commit', 'off', true)), \
             u AS (INSERT INTO gatehouse_users (id, email, first_name, last_name, date_joined, last_login, \
                       is_active, is_staff, is_superuser, synced_at) \
                   SELECT i.*, ",
        );
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(
            " FROM i, c \
                   ON CONFLICT (id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name, \
                       last_name = excluded.last_name, date_joined = excluded.date_joined, \
                       last_login = excluded.last_login, is_active = excluded.is_active, \
                       is_staff = excluded.is_staff, is_superuser = excluded.is_superuser, \
                       synced_at = excluded.synced_at \
                   RETURNING 1), \
             g AS (INSERT INTO gatehouse_access_groups (user_id, name, level) SELECT * FROM n \
                   ON CONFLICT (user_id, name) DO UPDATE SET level = excluded.level \
                   RETURNING 1) \
             DELETE FROM gatehouse_access_groups d \
             WHERE d.user_id IN (SELECT id FROM i) \
               AND NOT EXISTS (SELECT 1 FROM n WHERE n.user_id = d.user_id AND n.name = d.name)",
        );
        Ok(())
    }
}

/// One user's row and groups, inside the caller's transaction (PostgreSQL).
async fn upsert_one(conn: &mut shared_user::db::PgConn, user: &User, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::delete(users::table.filter(users::email.eq(&user.email)).filter(users::id.ne(user.id)))
        .execute(conn)
        .await?;
    diesel::insert_into(users::table)
        .values(values(user, now))
        .on_conflict(users::id)
        .do_update()
        .set(changes(user, now))
        .execute(conn)
        .await?;
    replace_access_groups!(conn, gatehouse_access_groups, user.id, &user.access_groups)?;
    Ok(())
}

/// The row of `user`, synced at `now`.
#[allow(clippy::type_complexity)]
fn values(
    user: &User,
    now: NaiveDateTime,
) -> (
    diesel::dsl::Eq<users::id, i64>,
    diesel::dsl::Eq<users::email, &String>,
    diesel::dsl::Eq<users::first_name, &String>,
    diesel::dsl::Eq<users::last_name, &String>,
    diesel::dsl::Eq<users::date_joined, NaiveDateTime>,
    diesel::dsl::Eq<users::last_login, Option<NaiveDateTime>>,
    diesel::dsl::Eq<users::is_active, bool>,
    diesel::dsl::Eq<users::is_staff, bool>,
    diesel::dsl::Eq<users::is_superuser, bool>,
    diesel::dsl::Eq<users::synced_at, NaiveDateTime>,
) {
    (
        users::id.eq(user.id),
        users::email.eq(&user.email),
        users::first_name.eq(&user.first_name),
        users::last_name.eq(&user.last_name),
        users::date_joined.eq(user.date_joined),
        users::last_login.eq(user.last_login),
        users::is_active.eq(user.is_active),
        users::is_staff.eq(user.is_staff),
        users::is_superuser.eq(user.is_superuser),
        users::synced_at.eq(now),
    )
}

/// Everything but the id, for the conflict branch of the upsert.
#[allow(clippy::type_complexity)]
fn changes(
    user: &User,
    now: NaiveDateTime,
) -> (
    diesel::dsl::Eq<users::email, &String>,
    diesel::dsl::Eq<users::first_name, &String>,
    diesel::dsl::Eq<users::last_name, &String>,
    diesel::dsl::Eq<users::date_joined, NaiveDateTime>,
    diesel::dsl::Eq<users::last_login, Option<NaiveDateTime>>,
    diesel::dsl::Eq<users::is_active, bool>,
    diesel::dsl::Eq<users::is_staff, bool>,
    diesel::dsl::Eq<users::is_superuser, bool>,
    diesel::dsl::Eq<users::synced_at, NaiveDateTime>,
) {
    let (_, email, first, last, joined, login, active, staff, superuser, synced) = values(user, now);
    (email, first, last, joined, login, active, staff, superuser, synced)
}

/// The same queries on diesel's synchronous SQLite connection, run inside one blocking call.
mod sync {
    use diesel::prelude::*;
    use diesel::{QueryResult, SqliteConnection};

    use super::{COLUMNS, Mirrored, Row, changes, mirrored, users, values};
    use crate::schema::gatehouse_access_groups as groups;
    use shared_user::{AccessGroup, User};

    pub(super) fn find(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<Mirrored>> {
        let Some(row) = users::table.find(id).select(COLUMNS).first::<Row>(conn).optional()? else {
            return Ok(None);
        };
        let access_groups = groups::table
            .filter(groups::user_id.eq(id))
            .order(groups::name.asc())
            .select((groups::name, groups::level))
            .load::<(String, Option<String>)>(conn)?
            .into_iter()
            .map(|(name, level)| AccessGroup { name, level })
            .collect();
        Ok(Some(mirrored(row, access_groups)))
    }

    pub(super) fn upsert(conn: &mut SqliteConnection, user: &User, now: chrono::NaiveDateTime) -> QueryResult<()> {
        diesel::delete(users::table.filter(users::email.eq(&user.email)).filter(users::id.ne(user.id)))
            .execute(conn)?;
        diesel::insert_into(users::table)
            .values(values(user, now))
            .on_conflict(users::id)
            .do_update()
            .set(changes(user, now))
            .execute(conn)?;
        diesel::delete(groups::table.filter(groups::user_id.eq(user.id))).execute(conn)?;
        for g in &user.access_groups {
            diesel::insert_into(groups::table)
                .values((groups::user_id.eq(user.id), groups::name.eq(&g.name), groups::level.eq(&g.level)))
                .execute(conn)?;
        }
        Ok(())
    }
}
