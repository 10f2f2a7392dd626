//! The local user mirror (`gatehouse_users`, `gatehouse_access_groups`): users and access
//! groups overwritten from the auth-service's JSON. All SQL of the client crate is here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::user::now_utc;
use shared_user::{Db, DbError, User, load_access_groups, replace_access_groups, with_conn};

use crate::schema::{gatehouse_access_groups, gatehouse_users as users};

type Row = (i64, String, String, String, NaiveDateTime, Option<NaiveDateTime>, bool, bool, bool, NaiveDateTime);

/// A mirrored user and when it was last fetched.
#[derive(Debug, Clone)]
pub(crate) struct Mirrored {
    /// The user as last seen on the auth-service.
    pub(crate) user: User,
    /// When it was fetched (UTC).
    pub(crate) synced_at: Option<NaiveDateTime>,
}

/// All SQL of the client-service.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    db: Db,
}

impl Mirror {
    /// Wraps a connected, migrated database.
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// The underlying database.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The mirrored user with this id.
    pub(crate) async fn find(&self, id: i64) -> Result<Option<Mirrored>, DbError> {
        with_conn!(&self.db, |conn| {
            let row: Option<Row> = users::table
                .find(id)
                .select((
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
                ))
                .first(conn)
                .await
                .optional()?;
            let Some((
                id,
                email,
                first_name,
                last_name,
                date_joined,
                last_login,
                is_active,
                is_staff,
                is_superuser,
                synced_at,
            )) = row
            else {
                return Ok(None);
            };
            let access_groups = load_access_groups!(conn, gatehouse_access_groups, id)?;
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
            Ok(Some(Mirrored { user, synced_at: Some(synced_at) }))
        })
    }

    /// Marks a mirrored user inactive (the auth-service refused them), as of now.
    pub(crate) async fn deactivate(&self, id: i64) -> Result<(), DbError> {
        let now = now_utc();
        with_conn!(&self.db, |conn| {
            diesel::update(users::table.find(id))
                .set((users::is_active.eq(false), users::synced_at.eq(now)))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// Overwrites the mirror of `user` (row and groups) in one transaction. The auth-service is
    /// the source of truth: a local row holding the same email under another id is removed.
    pub(crate) async fn upsert(&self, user: &User) -> Result<(), DbError> {
        let now = now_utc();
        with_conn!(&self.db, |conn| {
            let user = user.clone();
            conn.transaction(async move |conn| {
                diesel::delete(users::table.filter(users::email.eq(&user.email)).filter(users::id.ne(user.id)))
                    .execute(conn)
                    .await?;
                diesel::insert_into(users::table)
                    .values((
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
                    ))
                    .on_conflict(users::id)
                    .do_update()
                    .set((
                        users::email.eq(&user.email),
                        users::first_name.eq(&user.first_name),
                        users::last_name.eq(&user.last_name),
                        users::date_joined.eq(user.date_joined),
                        users::last_login.eq(user.last_login),
                        users::is_active.eq(user.is_active),
                        users::is_staff.eq(user.is_staff),
                        users::is_superuser.eq(user.is_superuser),
                        users::synced_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                replace_access_groups!(conn, gatehouse_access_groups, user.id, &user.access_groups)?;
                Ok::<(), DbError>(())
            })
            .await
        })
    }
}
