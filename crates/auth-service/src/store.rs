//! All SQL of the auth-service: users, access groups and refresh-token records.
//! Each query is written once and compiled for PostgreSQL and SQLite by `with_conn!`.

pub mod admin;
pub mod audit;
pub mod mfa;
pub mod purge;
pub mod revocations;
pub mod sessions;
pub mod signing_keys;
mod sqlite_reads;
pub mod throttle;
pub(crate) mod trigrams;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::user::{GroupRow, now_utc};
use shared_user::{
    AccessGroup, Db, DbError, User, load_access_groups, replace_access_groups, with_conn, with_write_conn,
};

use crate::schema::{access_groups, refresh_tokens, users};

/// The auth-service's own tables (`migrations/auth/{postgres,sqlite}`): users, access groups,
/// refresh tokens, signing keys and login counters. Versions `2026-11-23-0000NN`.
pub const MIGRATIONS: shared_user::Migrations = shared_user::Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/auth/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/auth/sqlite"),
};

/// Applies the auth-service's pending migrations to `db`; returns how many ran.
pub async fn migrate(db: &Db) -> Result<usize, shared_user::DbError> {
    db.migrate(MIGRATIONS).await
}

/// The watermark of a revocation happening now (see `crate::service::sessions`: `floor(now) + 1`, epoch seconds).
pub fn watermark_now() -> i64 {
    chrono::Utc::now().timestamp() + 1
}

/// A user row with its password hash.
#[derive(Debug, Clone, Queryable)]
struct UserRow {
    id: i64,
    email: String,
    password: String,
    first_name: String,
    last_name: String,
    date_joined: NaiveDateTime,
    last_login: Option<NaiveDateTime>,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
}

type UserColumns = (
    users::id,
    users::email,
    users::password,
    users::first_name,
    users::last_name,
    users::date_joined,
    users::last_login,
    users::is_active,
    users::is_staff,
    users::is_superuser,
);

const USER_COLUMNS: UserColumns = (
    users::id,
    users::email,
    users::password,
    users::first_name,
    users::last_name,
    users::date_joined,
    users::last_login,
    users::is_active,
    users::is_staff,
    users::is_superuser,
);

impl UserRow {
    fn into_user(self, access_groups: Vec<AccessGroup>) -> (User, String) {
        let user = User {
            id: self.id,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            date_joined: self.date_joined,
            last_login: self.last_login,
            is_active: self.is_active,
            is_staff: self.is_staff,
            is_superuser: self.is_superuser,
            access_groups,
        };
        (user, self.password)
    }
}

/// A user and its stored password hash.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Stored hash (argon2 PHC string or Django pbkdf2).
    pub password_hash: String,
}

/// A new user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email (the username).
    pub email: String,
    /// Already hashed password.
    pub password_hash: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Staff flag.
    pub is_staff: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Access groups.
    pub groups: Vec<AccessGroup>,
}

/// A recorded refresh token.
#[derive(Debug, Clone, Queryable)]
pub struct RefreshRecord {
    /// Token id.
    pub jti: String,
    /// Owner.
    pub user_id: i64,
    /// Rotation family (the jti of the first token of the login).
    pub family: String,
    /// When it was issued.
    pub created_at: NaiveDateTime,
    /// When it expires.
    pub expires_at: NaiveDateTime,
    /// The token it was rotated into.
    pub replaced_by: Option<String>,
    /// When it was rotated.
    pub replaced_at: Option<NaiveDateTime>,
    /// When it was revoked (logout, reuse, password change, deactivation).
    pub revoked_at: Option<NaiveDateTime>,
}

/// Result of trying to rotate a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// This call won: the old token now points at the new one.
    Rotated,
    /// The token was already rotated or revoked (by another request or earlier).
    AlreadyUsed,
}

/// The auth-service store.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Every user's revocation watermark, kept in step with the feed table (see
    /// [`revocations::WatermarkIndex`]): every token check needs one, and a database read per
    /// request would cost more than the check.
    watermarks: std::sync::Arc<revocations::WatermarkIndex>,
    /// Wakes the feed's long polls (see [`revocations::FeedWatch`]).
    feed_watch: std::sync::Arc<revocations::FeedWatch>,
    /// How common each trigram of the searched columns is (see [`trigrams`]).
    trigram_sample: std::sync::Arc<trigrams::Sampler>,
}

impl Store {
    /// Wraps a connected, migrated database.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            watermarks: std::sync::Arc::default(),
            feed_watch: std::sync::Arc::default(),
            trigram_sample: std::sync::Arc::default(),
        }
    }

    /// The underlying database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Finds a user (with password hash) by exact email.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Credentials>, DbError> {
        with_conn!(&self.db, |conn| {
            let row: Option<UserRow> =
                users::table.filter(users::email.eq(email)).select(USER_COLUMNS).first(conn).await.optional()?;
            match row {
                None => Ok(None),
                Some(row) => {
                    let groups = load_access_groups!(conn, access_groups, row.id)?;
                    let (user, password_hash) = row.into_user(groups);
                    Ok(Some(Credentials { user, password_hash }))
                }
            }
        })
    }

    /// Finds a user by id.
    pub async fn find_user(&self, id: i64) -> Result<Option<User>, DbError> {
        if let Db::Sqlite(pool) = &self.db {
            let mut conn = pool.get().await?;
            return Ok(conn.spawn_blocking(move |c| sqlite_reads::find_user(c, id)).await?);
        }
        with_conn!(&self.db, |conn| {
            // The user and its groups in one round trip: one row per group (a user without
            // groups gives one row with no group), groups in name order.
            let rows: Vec<(UserRow, Option<GroupRow>)> = users::table
                .left_join(access_groups::table)
                .filter(users::id.eq(id))
                .order(access_groups::name.asc())
                .select((USER_COLUMNS, (access_groups::name, access_groups::level).nullable()))
                .load(conn)
                .await?;
            Ok(AccessGroup::fold_joined(rows).map(|(row, groups)| row.into_user(groups).0))
        })
    }

    /// All users, by id.
    pub async fn list_users(&self) -> Result<Vec<User>, DbError> {
        with_conn!(&self.db, |conn| {
            let rows: Vec<UserRow> = users::table.order(users::id.asc()).select(USER_COLUMNS).load(conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let groups = load_access_groups!(conn, access_groups, row.id)?;
                out.push(row.into_user(groups).0);
            }
            Ok(out)
        })
    }

    /// Inserts a user and its groups in one transaction, with its `user_created` audit event.
    /// A taken email is [`DbError::Unique`].
    pub async fn create_user(&self, new: NewUser) -> Result<User, DbError> {
        self.create_user_recorded(new, crate::audit::AuditEvent::new(crate::audit::AuditKind::UserCreated)).await
    }

    /// [`Store::create_user`] recording `event` (a `user_created` one, e.g. with the admin who
    /// created the user as actor) about the new user.
    pub async fn create_user_recorded(&self, new: NewUser, event: crate::audit::AuditEvent) -> Result<User, DbError> {
        let now = now_utc();
        let id = with_write_conn!(&self.db, |conn| {
            let event = event.clone();
            let new = new.clone();
            conn.transaction(async move |conn| {
                let id: i64 = diesel::insert_into(users::table)
                    .values((
                        users::email.eq(&new.email),
                        users::password.eq(&new.password_hash),
                        users::first_name.eq(&new.first_name),
                        users::last_name.eq(&new.last_name),
                        users::date_joined.eq(now),
                        users::is_active.eq(true),
                        users::is_staff.eq(new.is_staff),
                        users::is_superuser.eq(new.is_superuser),
                    ))
                    .returning(users::id)
                    .get_result(conn)
                    .await?;
                replace_access_groups!(conn, access_groups, id, &new.groups)?;
                audit::insert_audit!(conn, &crate::audit::AuditEvent { user_id: Some(id), ..event }, now)?;
                Ok::<i64, DbError>(id)
            })
            .await
        })?;
        crate::audit::AuditEvent { user_id: Some(id), ..event }.log();
        self.find_user(id).await?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// Replaces the password hash.
    pub async fn set_password(&self, id: i64, hash: &str) -> Result<(), DbError> {
        with_write_conn!(&self.db, |conn| {
            diesel::update(users::table.find(id)).set(users::password.eq(hash)).execute(conn).await?;
            Ok(())
        })
    }

    /// Replaces the password hash, revokes every live refresh token of the user and refuses
    /// every earlier access token (watermark), with its audit event, in one transaction (a
    /// password change); returns how many tokens were revoked.
    pub async fn change_password(&self, id: i64, hash: &str) -> Result<usize, DbError> {
        let event = crate::audit::AuditEvent::new(crate::audit::AuditKind::PasswordChanged).user(id).actor(id);
        self.change_password_everywhere(id, hash, watermark_now(), &event).await
    }

    /// Records a successful login.
    pub async fn touch_last_login(&self, id: i64) -> Result<(), DbError> {
        let now = now_utc();
        with_write_conn!(&self.db, |conn| {
            diesel::update(users::table.find(id)).set(users::last_login.eq(Some(now))).execute(conn).await?;
            Ok(())
        })
    }

    /// Sets the staff flag of the user with this email, with its `user_updated` event
    /// (`{"is_staff":...}`, no actor: an operator's command) in one transaction; `false` when
    /// no such user.
    pub async fn set_staff(&self, email: &str, staff: bool) -> Result<bool, DbError> {
        let now = now_utc();
        let event = crate::audit::AuditEvent::new(crate::audit::AuditKind::UserUpdated)
            .detail(serde_json::json!({"is_staff": staff}));
        let changed = with_write_conn!(&self.db, |conn| {
            let event = event.clone();
            conn.transaction(async move |conn| {
                let id: Option<i64> = diesel::update(users::table.filter(users::email.eq(email)))
                    .set(users::is_staff.eq(staff))
                    .returning(users::id)
                    .get_result(conn)
                    .await
                    .optional()?;
                let Some(id) = id else { return Ok::<Option<crate::audit::AuditEvent>, DbError>(None) };
                let event = crate::audit::AuditEvent { user_id: Some(id), ..event };
                audit::insert_audit!(conn, &event, now)?;
                Ok(Some(event))
            })
            .await
        })?;
        Ok(changed.inspect(crate::audit::AuditEvent::log).is_some())
    }

    /// Replaces the access groups of the user with this email, with its `user_updated` event
    /// (`{"access_groups":[names]}`, no actor) in one transaction; `false` when no such user.
    pub async fn set_groups(&self, email: &str, groups: Vec<AccessGroup>) -> Result<bool, DbError> {
        let now = now_utc();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let event = crate::audit::AuditEvent::new(crate::audit::AuditKind::UserUpdated)
            .detail(serde_json::json!({"access_groups": names}));
        let changed = with_write_conn!(&self.db, |conn| {
            let (event, groups) = (event.clone(), groups.clone());
            conn.transaction(async move |conn| {
                let id: Option<i64> =
                    users::table.filter(users::email.eq(email)).select(users::id).first(conn).await.optional()?;
                let Some(id) = id else { return Ok::<Option<crate::audit::AuditEvent>, DbError>(None) };
                replace_access_groups!(conn, access_groups, id, &groups)?;
                let event = crate::audit::AuditEvent { user_id: Some(id), ..event };
                audit::insert_audit!(conn, &event, now)?;
                Ok(Some(event))
            })
            .await
        })?;
        Ok(changed.inspect(crate::audit::AuditEvent::log).is_some())
    }

    /// Deactivates a user, revokes their refresh tokens and refuses every earlier access token
    /// (watermark), with its audit event, in one transaction; `false` when no such user.
    pub async fn deactivate(&self, email: &str) -> Result<bool, DbError> {
        let event = crate::audit::AuditEvent::new(crate::audit::AuditKind::UserUpdated)
            .detail(serde_json::json!({"is_active": false}));
        self.deactivate_everywhere(email, watermark_now(), &event).await
    }

    /// Records an issued refresh token.
    pub async fn record_refresh(
        &self,
        jti: &str,
        user_id: i64,
        family: &str,
        expires_at: NaiveDateTime,
    ) -> Result<(), DbError> {
        let now = now_utc();
        with_write_conn!(&self.db, |conn| {
            diesel::insert_into(refresh_tokens::table)
                .values((
                    refresh_tokens::jti.eq(jti),
                    refresh_tokens::user_id.eq(user_id),
                    refresh_tokens::family.eq(family),
                    refresh_tokens::created_at.eq(now),
                    refresh_tokens::expires_at.eq(expires_at),
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// Looks up a refresh-token record.
    pub async fn find_refresh(&self, jti: &str) -> Result<Option<RefreshRecord>, DbError> {
        with_conn!(&self.db, |conn| {
            Ok(refresh_tokens::table.find(jti).first::<RefreshRecord>(conn).await.optional()?)
        })
    }

    /// When the rotation `family` began (its oldest record still kept, normally the sign-in).
    pub async fn family_started(&self, family: &str) -> Result<Option<NaiveDateTime>, DbError> {
        with_conn!(&self.db, |conn| {
            Ok(refresh_tokens::table
                .filter(refresh_tokens::family.eq(family))
                .select(diesel::dsl::min(refresh_tokens::created_at))
                .first::<Option<NaiveDateTime>>(conn)
                .await?)
        })
    }

    /// Atomically marks `old` as rotated into `new_jti` and records the new token, only if
    /// `old` is still live. Concurrent callers: exactly one gets [`Rotation::Rotated`].
    pub async fn rotate_refresh(
        &self,
        old: &RefreshRecord,
        new_jti: &str,
        expires_at: NaiveDateTime,
        mark_replaced: bool,
    ) -> Result<Rotation, DbError> {
        let now = now_utc();
        with_write_conn!(&self.db, |conn| {
            let old = old.clone();
            let new_jti = new_jti.to_owned();
            conn.transaction(async move |conn| {
                // Lock the user row first, as a password change or deactivation does: whichever
                // runs second sees the other's result (revoked tokens, or the new token to revoke).
                let active = diesel::update(users::table.find(old.user_id).filter(users::is_active.eq(true)))
                    .set(users::is_active.eq(true))
                    .execute(conn)
                    .await?;
                if active == 0 {
                    return Ok::<Rotation, DbError>(Rotation::AlreadyUsed);
                }
                if !mark_replaced {
                    // The old token stays usable, but only a live one may mint a successor.
                    let live = diesel::update(
                        refresh_tokens::table
                            .filter(refresh_tokens::jti.eq(&old.jti))
                            .filter(refresh_tokens::revoked_at.is_null()),
                    )
                    .set(refresh_tokens::revoked_at.eq(None::<NaiveDateTime>))
                    .execute(conn)
                    .await?;
                    if live == 0 {
                        return Ok(Rotation::AlreadyUsed);
                    }
                }
                if mark_replaced {
                    let n = diesel::update(
                        refresh_tokens::table
                            .filter(refresh_tokens::jti.eq(&old.jti))
                            .filter(refresh_tokens::replaced_by.is_null())
                            .filter(refresh_tokens::revoked_at.is_null()),
                    )
                    .set((refresh_tokens::replaced_by.eq(Some(&new_jti)), refresh_tokens::replaced_at.eq(Some(now))))
                    .execute(conn)
                    .await?;
                    if n == 0 {
                        return Ok::<Rotation, DbError>(Rotation::AlreadyUsed);
                    }
                }
                diesel::insert_into(refresh_tokens::table)
                    .values((
                        refresh_tokens::jti.eq(&new_jti),
                        refresh_tokens::user_id.eq(old.user_id),
                        refresh_tokens::family.eq(&old.family),
                        refresh_tokens::created_at.eq(now),
                        refresh_tokens::expires_at.eq(expires_at),
                    ))
                    .execute(conn)
                    .await?;
                Ok(Rotation::Rotated)
            })
            .await
        })
    }

    /// Revokes one refresh token; `false` when it was already revoked (or unknown).
    pub async fn revoke_refresh(&self, jti: &str) -> Result<bool, DbError> {
        let now = now_utc();
        with_write_conn!(&self.db, |conn| {
            let n = diesel::update(
                refresh_tokens::table.filter(refresh_tokens::jti.eq(jti)).filter(refresh_tokens::revoked_at.is_null()),
            )
            .set(refresh_tokens::revoked_at.eq(Some(now)))
            .execute(conn)
            .await?;
            Ok(n > 0)
        })
    }

    /// Revokes every live token of a rotation family (reuse detected).
    pub async fn revoke_family(&self, family: &str) -> Result<usize, DbError> {
        let now = now_utc();
        with_write_conn!(&self.db, |conn| {
            Ok(diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::family.eq(family))
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set(refresh_tokens::revoked_at.eq(Some(now)))
            .execute(conn)
            .await?)
        })
    }

    /// Revokes every live refresh token of a user (password change, deactivation).
    pub async fn revoke_user_tokens(&self, user_id: i64) -> Result<usize, DbError> {
        let now = now_utc();
        with_write_conn!(&self.db, |conn| {
            Ok(diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::user_id.eq(user_id))
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set(refresh_tokens::revoked_at.eq(Some(now)))
            .execute(conn)
            .await?)
        })
    }

    /// Deletes refresh-token records that expired before now, in batches (see [`purge`]);
    /// returns how many.
    pub async fn purge_expired(&self) -> Result<usize, DbError> {
        let now = now_utc();
        let sizes = purge::Batches::of(&self.db);
        purge::in_batches("refresh_tokens", sizes, |rows| async move {
            with_write_conn!(&self.db, |conn| {
                let batch = purge::batch_filter("jti", "refresh_tokens", "expires_at", now, rows);
                Ok(diesel::delete(refresh_tokens::table.filter(batch)).execute(conn).await?)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_next_whole_second() {
        let before = chrono::Utc::now().timestamp();
        let mark = watermark_now();
        assert!(mark == before + 1 || mark == before + 2, "{mark} vs {before}");
    }
}
