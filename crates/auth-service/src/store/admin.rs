//! SQL for the admin surface: a searched, paged user list and an admin's change to one user
//! (names, flags, access groups) written with its audit event in one transaction; a
//! deactivation also ends every session of the user in that transaction.
//!
//! The user search stays fast on a million users because each kind of term has an index:
//! a term of [`SHORTEST_SUBSTRING`] characters or more is a substring of the email or a name,
//! found through trigrams (PostgreSQL: a `pg_trgm` GIN index over the lowered columns; SQLite:
//! the FTS5 table `users_search` with the trigram tokenizer, kept in step by triggers); a
//! shorter term, which trigrams cannot find, matches the start of the email through an index
//! on `lower(email)`. A substring that holds trigrams nearly every user holds (`@example.com`)
//! is looked up by its rare part only, and each user found is checked for the whole term
//! (see `store/trigrams.rs`). Pages start after an id (keyset) or at an offset (the
//! first pages), and the count stops at [`COUNT_CAP`].

use crate::schema::{access_groups, refresh_tokens, users};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::user::now_utc;
use shared_user::{AccessGroup, Db, DbError, User, replace_access_groups, with_conn, with_write_conn};

use super::audit::insert_audit;
use super::revocations::insert_revocation;
use super::{Store, USER_COLUMNS, UserRow};
use crate::audit::{AuditEvent, AuditKind};

diesel::table! {
    /// SQLite's FTS5 index of the searched user columns (external content: the rows live in
    /// `users`, the row id is the user id).
    users_search (rowid) {
        /// The user id.
        rowid -> BigInt,
    }
}

/// Matches beyond this many are not counted: a search answers "more than `COUNT_CAP`" rather
/// than read every match of a million rows on every page.
pub const COUNT_CAP: i64 = 100;

/// How many matching ids PostgreSQL reads for the count: a trigram index scan costs about the
/// same for a thousand matches as for a hundred (it builds its bitmap whole), and with every
/// match in hand the page needs no second search. SQLite's FTS5 stops at the limit, and its cost
/// grows with the matches it reads, so it reads [`COUNT_CAP`] + 1.
pub const PG_IDS_READ: i64 = 1001;

/// Search terms with fewer characters than this match the start of the email only (a trigram
/// index finds substrings of three characters or more).
pub const SHORTEST_SUBSTRING: usize = 3;

/// The most ids SQLite's FTS5 hands over per query when a term's rare part is looked up and
/// each candidate is checked for the whole term.
const CANDIDATES: i64 = 1024;

/// One id of a `sql_query`.
#[derive(QueryableByName)]
struct MatchId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Where a page of users starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSeek {
    /// After skipping this many matches (cheap for the first pages only).
    Offset(i64),
    /// With the first match whose id is greater than this one (keyset: as cheap at any depth).
    After(i64),
}

/// One page of a user search.
#[derive(Debug, Clone)]
pub struct FoundUsers {
    /// Matches in all pages, counted up to [`COUNT_CAP`] (then `COUNT_CAP`, see `more`).
    pub count: i64,
    /// Whether more than [`COUNT_CAP`] users match.
    pub more: bool,
    /// Whether matches follow this page.
    pub has_next: bool,
    /// This page's users, by id.
    pub users: Vec<User>,
}

/// What a search term asks for, lowercased.
enum Matching {
    /// Every user.
    All,
    /// Emails starting with the term.
    EmailPrefix(String),
    /// Emails or names containing the term.
    Contains(String),
}

impl Matching {
    fn of(search: Option<&str>) -> Self {
        match search.map(str::to_lowercase) {
            None => Matching::All,
            Some(t) if t.chars().count() < SHORTEST_SUBSTRING => Matching::EmailPrefix(t),
            Some(t) => Matching::Contains(t),
        }
    }
}

/// The FTS5 query for `term` as one literal phrase (quotes doubled; no operator or wildcard
/// inside a quoted phrase is special).
fn fts_phrase(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

/// The first string above every string starting with `prefix`, byte-wise (UTF-8 never holds a
/// byte above the start of U+10FFFF, which no email starts with).
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// The ids of a page (`limit` + 1 of them, to tell whether another follows) cut from `counted`
/// when it holds every match (fewer than the `read` asked for); `None` when there may be more.
fn page_of(counted: &[i64], read: i64, after: i64, offset: i64, limit: i64) -> Option<Vec<i64>> {
    if counted.len() as i64 >= read {
        return None;
    }
    let mut ids: Vec<i64> = counted.iter().copied().filter(|id| *id > after).collect();
    ids.sort_unstable();
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit + 1).unwrap_or(usize::MAX);
    Some(ids.into_iter().skip(skip).take(take).collect())
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
    /// One page of the users matching `search` (every user when `None`; see the module doc
    /// for what a term matches), by id, at most `limit` from `seek`, with the capped count.
    pub async fn search_users(&self, search: Option<&str>, seek: UserSeek, limit: i64) -> Result<FoundUsers, DbError> {
        let sqlite = matches!(self.db(), Db::Sqlite(_));
        let read = if sqlite { COUNT_CAP + 1 } else { PG_IDS_READ };
        let matching = Matching::of(search);
        // User ids start at 1: "after 0" is from the start.
        let (after, offset) = match seek {
            UserSeek::After(id) => (id, 0),
            UserSeek::Offset(n) => (0, n),
        };
        // A substring's rare part, when looking up the whole term would read the rows of
        // trigrams nearly every user holds (see `trigrams`).
        let part = match &matching {
            Matching::Contains(term) => self.trigram_sample.sample(self.db()).await?.lookup_part(term),
            _ => None,
        };
        with_conn!(self.db(), |conn| {
            // The capped count reads the ids of up to `read` matches. When that is all of them,
            // the page is cut from those ids (no second search); when there are more, matches
            // are dense enough that reading in id order finds a page quickly.
            let (counted, page): (Vec<i64>, Vec<i64>) = match &matching {
                Matching::Contains(term) if sqlite && part.is_some() => {
                    let phrase = fts_phrase(part.as_deref().unwrap_or(term));
                    // The ids of the first `want` users after `from` holding the whole term,
                    // among those FTS5 finds by the part (in rowid order, a chunk at a time).
                    let mut matches_after = async |from: i64, want: usize| -> Result<Vec<i64>, DbError> {
                        let mut found = Vec::new();
                        let mut cursor = from;
                        // Most candidates usually hold the whole term: ask for as many as
                        // wanted, and twice as many each time that was not enough.
                        let mut chunk = (want as i64).clamp(16, CANDIDATES);
                        loop {
                            let candidates: Vec<i64> = users_search::table
                                .filter(sql::<Bool>("users_search MATCH ").bind::<Text, _>(phrase.clone()))
                                .filter(users_search::rowid.gt(cursor))
                                .order(users_search::rowid.asc())
                                .select(users_search::rowid)
                                .limit(chunk)
                                .load(conn)
                                .await?;
                            let Some(&last) = candidates.last() else { break };
                            cursor = last;
                            let rows: Vec<(i64, String, String, String)> = users::table
                                .filter(users::id.eq_any(&candidates))
                                .order(users::id.asc())
                                .select((users::id, users::email, users::first_name, users::last_name))
                                .load(conn)
                                .await?;
                            for (id, email, first_name, last_name) in rows {
                                if [email, first_name, last_name]
                                    .iter()
                                    .any(|c| c.to_lowercase().contains(term.as_str()))
                                {
                                    found.push(id);
                                    if found.len() >= want {
                                        return Ok(found);
                                    }
                                }
                            }
                            if (candidates.len() as i64) < chunk {
                                break;
                            }
                            chunk = (chunk * 2).min(CANDIDATES);
                        }
                        Ok(found)
                    };
                    let counted = matches_after(0, read as usize).await?;
                    // `counted` is every match up to its last id, in id order: a page that
                    // ends by then is cut from it too.
                    let wanted = (offset + limit + 1) as usize;
                    let early: Vec<i64> = counted.iter().copied().filter(|id| *id > after).take(wanted).collect();
                    let page = match page_of(&counted, read, after, offset, limit) {
                        Some(page) => page,
                        None if early.len() == wanted => early.into_iter().skip(offset as usize).collect(),
                        None => {
                            let skip = offset as usize;
                            matches_after(after, skip + limit as usize + 1).await?.into_iter().skip(skip).collect()
                        }
                    };
                    (counted, page)
                }
                Matching::Contains(term) if sqlite => {
                    let phrase = fts_phrase(term);
                    let found = || {
                        users_search::table
                            .filter(sql::<Bool>("users_search MATCH ").bind::<Text, _>(phrase.clone()))
                            .select(users_search::rowid)
                    };
                    let counted: Vec<i64> = found().limit(read).load(conn).await?;
                    let page = match page_of(&counted, read, after, offset, limit) {
                        Some(page) => page,
                        // FTS5 walks its doclists in rowid order and stops at the limit.
                        None => {
                            found()
                                .filter(users_search::rowid.gt(after))
                                .order(users_search::rowid.asc())
                                .offset(offset)
                                .limit(limit + 1)
                                .load(conn)
                                .await?
                        }
                    };
                    (counted, page)
                }
                Matching::Contains(term) if part.is_some() => {
                    // PostgreSQL: the index finds the part (`LIKE`), `strpos` checks the whole
                    // term. The inner query is fenced (`OFFSET 0`) with the check outside it, so
                    // the planner plans the index lookup for all its rows: the `LIMIT` with a
                    // `strpos` it cannot estimate would otherwise have it read the table by id,
                    // hoping to stop early (97 ms on a million users). `sql_query` is never a
                    // cached prepared statement: each term gets its own plan.
                    let like = like_pattern(part.as_deref().unwrap_or(term));
                    let fenced = |outer: &str| {
                        format!(
                            "SELECT s.id FROM (SELECT id, email, first_name, last_name FROM users \
                             WHERE lower(email) LIKE $1 ESCAPE '\\' OR lower(first_name) LIKE $1 ESCAPE '\\' \
                             OR lower(last_name) LIKE $1 ESCAPE '\\' OFFSET 0) s \
                             WHERE (strpos(lower(s.email), $2) > 0 OR strpos(lower(s.first_name), $2) > 0 \
                             OR strpos(lower(s.last_name), $2) > 0) {outer}"
                        )
                    };
                    let counted: Vec<i64> = diesel::sql_query(fenced("LIMIT $3"))
                        .bind::<Text, _>(&like)
                        .bind::<Text, _>(term)
                        .bind::<BigInt, _>(read)
                        .load::<MatchId>(conn)
                        .await?
                        .into_iter()
                        .map(|m| m.id)
                        .collect();
                    let page = match page_of(&counted, read, after, offset, limit) {
                        Some(page) => page,
                        None => diesel::sql_query(fenced("AND s.id > $3 ORDER BY s.id OFFSET $4 LIMIT $5"))
                            .bind::<Text, _>(&like)
                            .bind::<Text, _>(term)
                            .bind::<BigInt, _>(after)
                            .bind::<BigInt, _>(offset)
                            .bind::<BigInt, _>(limit + 1)
                            .load::<MatchId>(conn)
                            .await?
                            .into_iter()
                            .map(|m| m.id)
                            .collect(),
                    };
                    (counted, page)
                }
                _ => {
                    // SQL text rather than the query builder: never a cached prepared statement,
                    // so PostgreSQL plans each search with its term (a generic plan cannot tell a
                    // rare term, for the index, from a common one, for the primary key).
                    let filtered = |scan_by_id: bool| {
                        let query = users::table.into_boxed();
                        match &matching {
                            Matching::All => query,
                            Matching::EmailPrefix(p) => {
                                let (ge, lt) = match (sqlite, scan_by_id) {
                                    (false, _) => ("lower(users.email) ~>=~ ", " AND lower(users.email) ~<~ "),
                                    (true, false) => ("lower(users.email) >= ", " AND lower(users.email) < "),
                                    // `+` hides the index: with more than COUNT_CAP matches, reading
                                    // by id and stopping at the page beats sorting them all.
                                    (true, true) => ("+lower(users.email) >= ", " AND +lower(users.email) < "),
                                };
                                query.filter(
                                    sql::<Bool>(ge).bind::<Text, _>(p.clone()).sql(lt).bind::<Text, _>(prefix_end(p)),
                                )
                            }
                            Matching::Contains(term) => {
                                let p = like_pattern(term);
                                query.filter(
                                    sql::<Bool>("(lower(users.email) LIKE ")
                                        .bind::<Text, _>(p.clone())
                                        .sql(" ESCAPE '\\' OR lower(users.first_name) LIKE ")
                                        .bind::<Text, _>(p.clone())
                                        .sql(" ESCAPE '\\' OR lower(users.last_name) LIKE ")
                                        .bind::<Text, _>(p)
                                        .sql(" ESCAPE '\\')"),
                                )
                            }
                        }
                    };
                    let counted: Vec<i64> = filtered(false).select(users::id).limit(read).load(conn).await?;
                    let page = match page_of(&counted, read, after, offset, limit) {
                        Some(page) => page,
                        None => {
                            filtered(true)
                                .filter(users::id.gt(after))
                                .order(users::id.asc())
                                .select(users::id)
                                .offset(offset)
                                .limit(limit + 1)
                                .load(conn)
                                .await?
                        }
                    };
                    (counted, page)
                }
            };
            let rows: Vec<UserRow> = if page.is_empty() {
                Vec::new()
            } else {
                users::table
                    .filter(users::id.eq_any(page))
                    .order(users::id.asc())
                    .select(USER_COLUMNS)
                    .load(conn)
                    .await?
            };
            let has_next = rows.len() as i64 > limit;
            let rows: Vec<UserRow> = rows.into_iter().take(limit as usize).collect();
            // The page's access groups in one query, not one per user.
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let mut groups: Vec<(i64, String, Option<String>)> = if ids.is_empty() {
                Vec::new()
            } else {
                access_groups::table
                    .filter(access_groups::user_id.eq_any(ids))
                    .order((access_groups::user_id.asc(), access_groups::name.asc()))
                    .select((access_groups::user_id, access_groups::name, access_groups::level))
                    .load(conn)
                    .await?
            };
            // Both in id order: each user takes the groups at the front that are its own.
            groups.reverse();
            let mut users = Vec::with_capacity(rows.len());
            for row in rows {
                let mut own = Vec::new();
                while groups.last().is_some_and(|(user_id, _, _)| *user_id == row.id) {
                    if let Some((_, name, level)) = groups.pop() {
                        own.push(AccessGroup { name, level });
                    }
                }
                users.push(row.into_user(own).0);
            }
            let more = counted.len() as i64 > COUNT_CAP;
            Ok(FoundUsers { count: (counted.len() as i64).min(COUNT_CAP), more, has_next, users })
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
        let done = with_write_conn!(self.db(), |conn| {
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

    #[test]
    fn a_page_is_cut_from_every_match_in_id_order() {
        let all = [9, 3, 7, 1, 5];
        assert_eq!(super::page_of(&all, 6, 0, 0, 2), Some(vec![1, 3, 5]), "one more than the page");
        assert_eq!(super::page_of(&all, 6, 3, 0, 2), Some(vec![5, 7, 9]), "after an id");
        assert_eq!(super::page_of(&all, 6, 0, 4, 2), Some(vec![9]), "at an offset");
        assert_eq!(super::page_of(&all, 5, 0, 0, 2), None, "as many as read: maybe not every match");
    }

    #[test]
    fn a_phrase_is_one_literal_string() {
        assert_eq!(super::fts_phrase(r#"a"b OR c*"#), r#""a""b OR c*""#);
    }
}
