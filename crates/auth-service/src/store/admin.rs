//! SQL for the admin surface: a searched, paged user list and an admin's change to one user
//! (names, flags, access groups) written with its audit event in one transaction; a
//! deactivation also ends every session of the user in that transaction.

use crate::schema::{access_groups, refresh_tokens, users};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::user::now_utc;
use shared_user::{AccessGroup, DbError, User, load_access_groups, replace_access_groups, with_conn};

use super::audit::insert_audit;
use super::revocations::insert_revocation;
use super::{Store, USER_COLUMNS, UserRow};
use crate::audit::{AuditEvent, AuditKind};

diesel::define_sql_function! {
    /// SQL `lower(text)` (ASCII case folding on SQLite, full on PostgreSQL).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// An admin's change to a user: every `Some` field is written, the others are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
    /// New `is_active`.
    pub is_active: Option<bool>,
    /// New `is_staff`.
    pub is_staff: Option<bool>,
    /// New `is_superuser`.
    pub is_superuser: Option<bool>,
    /// The user's new access groups (replacing all of them).
    pub access_groups: Option<Vec<AccessGroup>>,
}

impl UserPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == UserPatch::default()
    }
}

/// `%term%` for `LIKE ... ESCAPE '\'`, lowercased, with the wildcards of `term` escaped.
fn like_pattern(term: &str) -> String {
    let mut out = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// What [`Store::patch_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patched {
    /// The patch was written.
    Done,
    /// No such user: nothing written.
    NoSuchUser,
    /// The patch would leave no active superuser (it demotes or deactivates the last one):
    /// nothing written.
    LastSuperuser,
}

impl Store {
    /// Users whose email, first or last name contains `search` (case-insensitive; every user
    /// when `None`), by id, `limit` of them from `offset`, with the total count of matches.
    pub async fn search_users(
        &self,
        search: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<User>), DbError> {
        let pattern = search.map(like_pattern);
        with_conn!(self.db(), |conn| {
            let matches = |p: &String| {
                lower(users::email)
                    .like(p.clone())
                    .escape('\\')
                    .or(lower(users::first_name).like(p.clone()).escape('\\'))
                    .or(lower(users::last_name).like(p.clone()).escape('\\'))
            };
            let mut count_query = users::table.into_boxed();
            let mut page_query = users::table.into_boxed();
            if let Some(p) = &pattern {
                count_query = count_query.filter(matches(p));
                page_query = page_query.filter(matches(p));
            }
            let count: i64 = count_query.count().get_result(conn).await?;
            let rows: Vec<UserRow> =
                page_query.order(users::id.asc()).select(USER_COLUMNS).offset(offset).limit(limit).load(conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let groups = load_access_groups!(conn, access_groups, row.id)?;
                out.push(row.into_user(groups).0);
            }
            Ok((count, out))
        })
    }

    /// Writes `patch` to user `id` with `event`, in one transaction; `false` (nothing written)
    /// when no such user. When the patch deactivates an active user, the same transaction also
    /// ends every session of the user and refuses their earlier access tokens: refresh tokens
    /// revoked, watermark written, and a `logout_all` event (actor, address and agent of
    /// `event`, detail `{"deactivated":true,"refresh_tokens_revoked":N}`) recorded after `event`.
    /// A failure leaves the user as they were, never inactive with live tokens.
    ///
    /// A patch that removes the superuser flag of, or deactivates, an active superuser first
    /// locks every active superuser's row and is refused ([`Patched::LastSuperuser`]) when no
    /// other active superuser would remain: two superusers demoting each other at once cannot
    /// leave none.
    pub async fn patch_user(&self, id: i64, patch: &UserPatch, event: &AuditEvent) -> Result<Patched, DbError> {
        let now = now_utc();
        let may_demote = patch.is_superuser == Some(false) || patch.is_active == Some(false);
        let done = with_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                // Err(outcome): nothing written; Ok(None): patched; Ok(Some(e)): patched and
                // deactivated (`e` the `logout_all` event).
                type Outcome = Result<Option<AuditEvent>, Patched>;
                if may_demote {
                    // A write that changes nothing but locks every active superuser's row (and,
                    // on SQLite, takes the write lock first), so concurrent demotions queue here
                    // and each counts what the one before left.
                    let active_superusers =
                        || users::table.filter(users::is_superuser.eq(true)).filter(users::is_active.eq(true));
                    diesel::update(active_superusers()).set(users::is_superuser.eq(true)).execute(conn).await?;
                    let target: Option<(bool, bool)> = users::table
                        .find(id)
                        .select((users::is_superuser, users::is_active))
                        .first(conn)
                        .await
                        .optional()?;
                    if target == Some((true, true)) {
                        let others: i64 = active_superusers().filter(users::id.ne(id)).count().get_result(conn).await?;
                        if others == 0 {
                            return Ok::<Outcome, DbError>(Err(Patched::LastSuperuser));
                        }
                    }
                }
                let exists: Option<i64> = users::table.find(id).select(users::id).first(conn).await.optional()?;
                if exists.is_none() {
                    return Ok::<Outcome, DbError>(Err(Patched::NoSuchUser));
                }
                let target = users::table.find(id);
                // Ends sessions only when this write is what deactivates the user (the row lock
                // taken here orders it with refreshes, which lock the row first too).
                let mut deactivated = false;
                match patch.is_active {
                    Some(false) => {
                        deactivated = diesel::update(target.filter(users::is_active.eq(true)))
                            .set(users::is_active.eq(false))
                            .execute(conn)
                            .await?
                            > 0;
                    }
                    Some(true) => {
                        diesel::update(target).set(users::is_active.eq(true)).execute(conn).await?;
                    }
                    None => {}
                }
                if let Some(v) = &patch.first_name {
                    diesel::update(target).set(users::first_name.eq(v)).execute(conn).await?;
                }
                if let Some(v) = &patch.last_name {
                    diesel::update(target).set(users::last_name.eq(v)).execute(conn).await?;
                }
                if let Some(v) = patch.is_staff {
                    diesel::update(target).set(users::is_staff.eq(v)).execute(conn).await?;
                }
                if let Some(v) = patch.is_superuser {
                    diesel::update(target).set(users::is_superuser.eq(v)).execute(conn).await?;
                }
                if let Some(groups) = &patch.access_groups {
                    replace_access_groups!(conn, access_groups, id, groups)?;
                }
                insert_audit!(conn, event, now)?;
                if !deactivated {
                    return Ok(Ok(None));
                }
                let revoked = diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::user_id.eq(id))
                        .filter(refresh_tokens::revoked_at.is_null()),
                )
                .set(refresh_tokens::revoked_at.eq(Some(now)))
                .execute(conn)
                .await?;
                let ended = AuditEvent { kind: AuditKind::LogoutAll, user_id: Some(id), detail: None, ..event.clone() }
                    .with_detail("deactivated", true.into())
                    .with_detail("refresh_tokens_revoked", revoked.into());
                insert_audit!(conn, &ended, now)?;
                // Dated inside the transaction, after the row lock: waiting for the lock leaves no gap.
                insert_revocation!(conn, id, super::watermark_now(), now)?;
                Ok(Ok(Some(ended)))
            })
            .await
        })?;
        let ended = match done {
            Ok(ended) => ended,
            Err(refused) => return Ok(refused),
        };
        event.log();
        if let Some(ended) = ended {
            self.forget_watermark(id);
            ended.log();
        }
        Ok(Patched::Done)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(super::like_pattern("A_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
