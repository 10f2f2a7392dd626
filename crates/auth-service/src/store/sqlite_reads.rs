//! Reads on every authenticated request, written for diesel's synchronous SQLite connection so
//! that a lookup (the user row and its groups) is one call on the blocking pool instead of one
//! per query.

use diesel::prelude::*;
use diesel::{QueryResult, SqliteConnection};
use shared_user::{AccessGroup, User};

use super::{USER_COLUMNS, UserRow};
use crate::schema::{access_groups, users};

/// The user `id` with its groups ordered by name (as `load_access_groups!` orders them).
pub(super) fn find_user(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<User>> {
    let Some(row) = users::table.find(id).select(USER_COLUMNS).first::<UserRow>(conn).optional()? else {
        return Ok(None);
    };
    let groups = access_groups::table
        .filter(access_groups::user_id.eq(id))
        .order(access_groups::name.asc())
        .select((access_groups::name, access_groups::level))
        .load::<(String, Option<String>)>(conn)?
        .into_iter()
        .map(|(name, level)| AccessGroup { name, level })
        .collect();
    Ok(Some(row.into_user(groups).0))
}
