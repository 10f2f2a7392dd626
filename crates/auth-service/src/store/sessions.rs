//! SQL for sessions (one per refresh-token family, i.e. per login) and for the changes that end
//! them: each writes its refresh-token revocations, its watermark and its audit event in one
//! transaction, then logs the event.
//!
//! A login is settled in one transaction after its password check ([`Store::open_session`]):
//! throttle counters, known address, rehashed password, `last_login`, the refresh record and
//! session, the sessions the per-user cap ends, and the audit events. Live sessions are listed
//! with the liveness filter in SQL, one page at a time.

use crate::schema::{refresh_tokens, users};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::user::{format_datetime, now_utc};
use shared_user::{DbError, with_conn, with_write_conn};

use super::Store;
use super::audit::insert_audit;
use super::revocations::insert_revocation;
use super::throttle::{ThrottleSettlement, settle_throttle};
use crate::audit::{AuditEvent, AuditKind};

diesel::table! {
    /// Sessions: one per refresh-token family (`id` is the family, the first token's jti).
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(sessions, refresh_tokens);

/// Why the per-user cap ended a session (the `reason` of its `session_revoked` event).
pub const CAPPED_REASON: &str = "max_sessions_per_user";

/// Serializes a time as DRF does (`2026-11-22T19:16:07.250330Z`).
pub(crate) fn ser_time<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_datetime(t))
}

/// A live session, as `GET /auth/sessions/` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, serde::Serialize)]
pub struct SessionRow {
    /// Session id (the refresh-token family).
    pub id: String,
    /// Owner (not shown on the wire).
    #[serde(skip)]
    pub user_id: i64,
    /// Login time.
    #[serde(rename = "created", serialize_with = "ser_time")]
    pub created_at: NaiveDateTime,
    /// Last refresh (the login time until the first refresh).
    #[serde(rename = "last_used", serialize_with = "ser_time")]
    pub last_used_at: NaiveDateTime,
    /// When its current refresh token expires.
    #[serde(rename = "expires", serialize_with = "ser_time")]
    pub expires_at: NaiveDateTime,
    /// Client address at login.
    pub ip: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
}

/// A new login's records.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// jti of the refresh token, also the family and session id.
    pub jti: String,
    /// Owner.
    pub user_id: i64,
    /// Expiry of the refresh token.
    pub expires_at: NaiveDateTime,
}

/// Everything a successful login writes besides its session, in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct LoginWrites {
    /// The login counters to settle (none: the limiter is off, or a sign-up's first session).
    pub throttle: Option<ThrottleSettlement>,
    /// A new hash of the password (the stored one used outdated parameters).
    pub password_hash: Option<String>,
    /// Record `last_login`.
    pub last_login: bool,
    /// Live sessions the user may hold, this one included (`None`: no cap); the oldest beyond
    /// it are ended.
    pub max_sessions: Option<usize>,
}

/// Live sessions of `$user_id` as of `$now`: an unexpired session whose family holds an
/// unexpired refresh token that is neither revoked nor rotated away (a boxed query of
/// `sessions`; the filter runs in SQL).
macro_rules! live_sessions_of {
    ($user_id:expr, $now:expr) => {{
        let (user_id, now): (i64, NaiveDateTime) = ($user_id, $now);
        sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::expires_at.gt(now)).filter(
            sessions::id.eq_any(
                refresh_tokens::table
                    .filter(refresh_tokens::user_id.eq(user_id))
                    .filter(refresh_tokens::revoked_at.is_null())
                    .filter(refresh_tokens::replaced_by.is_null())
                    .filter(refresh_tokens::expires_at.gt(now))
                    .select(refresh_tokens::family),
            ),
        )
    }};
}

impl Store {
    /// Records a login: the refresh token, its session (with the event's client address and
    /// user agent) and the `login_succeeded` event, with `writes` (throttle settlement, new
    /// password hash, `last_login`, the sessions the cap ends, each with its `session_revoked`
    /// event), in one transaction. Returns the ids of the sessions the cap ended.
    pub async fn open_session(
        &self,
        new: &NewSession,
        event: &AuditEvent,
        writes: &LoginWrites,
    ) -> Result<Vec<String>, DbError> {
        let now = now_utc();
        let capped = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                // The user's row first (a row lock on PostgreSQL, the write lock on SQLite), as
                // a refresh or a password change takes it: concurrent logins of one user count
                // its sessions one after the other, so the cap holds.
                if writes.last_login {
                    diesel::update(users::table.find(new.user_id))
                        .set(users::last_login.eq(Some(now)))
                        .execute(conn)
                        .await?;
                } else if writes.max_sessions.is_some() {
                    diesel::update(users::table.find(new.user_id))
                        .set(users::is_active.eq(users::is_active))
                        .execute(conn)
                        .await?;
                }
                if let Some(hash) = &writes.password_hash {
                    diesel::update(users::table.find(new.user_id)).set(users::password.eq(hash)).execute(conn).await?;
                }
                if let Some(settlement) = &writes.throttle {
                    settle_throttle!(conn, settlement, now)?;
                }
                diesel::insert_into(refresh_tokens::table)
                    .values((
                        refresh_tokens::jti.eq(&new.jti),
                        refresh_tokens::user_id.eq(new.user_id),
                        refresh_tokens::family.eq(&new.jti),
                        refresh_tokens::created_at.eq(now),
                        refresh_tokens::expires_at.eq(new.expires_at),
                    ))
                    .execute(conn)
                    .await?;
                diesel::insert_into(sessions::table)
                    .values((
                        sessions::id.eq(&new.jti),
                        sessions::user_id.eq(new.user_id),
                        sessions::created_at.eq(now),
                        sessions::last_used_at.eq(now),
                        sessions::expires_at.eq(new.expires_at),
                        sessions::ip.eq(event.ip.as_deref()),
                        sessions::user_agent.eq(event.user_agent.as_deref()),
                    ))
                    .execute(conn)
                    .await?;
                let mut capped: Vec<String> = Vec::new();
                if let Some(max) = writes.max_sessions {
                    // The new session is kept whatever the clocks say; of the others, the
                    // newest `max - 1` stay.
                    let keep = i64::try_from(max.saturating_sub(1)).unwrap_or(i64::MAX);
                    capped = live_sessions_of!(new.user_id, now)
                        .filter(sessions::id.ne(&new.jti))
                        .order((sessions::created_at.desc(), sessions::id.asc()))
                        .select(sessions::id)
                        .offset(keep)
                        .limit(i64::MAX)
                        .load(conn)
                        .await?;
                }
                if !capped.is_empty() {
                    diesel::update(
                        refresh_tokens::table
                            .filter(refresh_tokens::family.eq_any(&capped))
                            .filter(refresh_tokens::revoked_at.is_null()),
                    )
                    .set(refresh_tokens::revoked_at.eq(Some(now)))
                    .execute(conn)
                    .await?;
                    // An ended session's row is of no further use; dropping it keeps a user's
                    // rows near the cap however often they log in.
                    diesel::delete(sessions::table.filter(sessions::id.eq_any(&capped))).execute(conn).await?;
                    for id in &capped {
                        insert_audit!(conn, &capped_event(event, id), now)?;
                    }
                }
                insert_audit!(conn, event, now)?;
                Ok::<Vec<String>, DbError>(capped)
            })
            .await
        })?;
        for id in &capped {
            capped_event(event, id).log();
        }
        event.log();
        Ok(capped)
    }

    /// Records a refresh of session `family`; `expires_at` is the expiry of the refresh token
    /// the client holds afterwards.
    pub async fn touch_session(&self, family: &str, expires_at: NaiveDateTime) -> Result<(), DbError> {
        let now = now_utc();
        with_write_conn!(self.db(), |conn| {
            diesel::update(sessions::table.find(family))
                .set((sessions::last_used_at.eq(now), sessions::expires_at.eq(expires_at)))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// The user's live sessions, newest first: a session is live while its family holds an
    /// unexpired refresh token that is neither revoked nor rotated away.
    pub async fn live_sessions(&self, user_id: i64) -> Result<Vec<SessionRow>, DbError> {
        self.live_sessions_page(user_id, 0, i64::MAX).await
    }

    /// At most `limit` of the user's live sessions, newest first, after skipping `offset`.
    pub async fn live_sessions_page(&self, user_id: i64, offset: i64, limit: i64) -> Result<Vec<SessionRow>, DbError> {
        let now = now_utc();
        with_conn!(self.db(), |conn| {
            Ok(live_sessions_of!(user_id, now)
                .order((sessions::created_at.desc(), sessions::id.asc()))
                .offset(offset.max(0))
                .limit(limit.max(0))
                .load(conn)
                .await?)
        })
    }

    /// Ends session `id` of `user_id` (revokes every token of its family) and records `event`,
    /// in one transaction. `false` (and nothing recorded) when the user has no live session
    /// with that id.
    pub async fn end_session(&self, user_id: i64, id: &str, event: &AuditEvent) -> Result<bool, DbError> {
        let now = now_utc();
        let ended = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let revoked = diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::family.eq(id))
                        .filter(refresh_tokens::user_id.eq(user_id))
                        .filter(refresh_tokens::revoked_at.is_null())
                        .filter(refresh_tokens::expires_at.gt(now)),
                )
                .set(refresh_tokens::revoked_at.eq(Some(now)))
                .execute(conn)
                .await?;
                if revoked == 0 {
                    return Ok::<bool, DbError>(false);
                }
                insert_audit!(conn, event, now)?;
                Ok(true)
            })
            .await
        })?;
        if ended {
            event.log();
        }
        Ok(ended)
    }

    /// Revokes one refresh token (logout, `revokeToken`) and records `event` in one
    /// transaction; `false` when it was already revoked (or unknown).
    pub async fn revoke_refresh_recorded(&self, jti: &str, event: &AuditEvent) -> Result<bool, DbError> {
        let now = now_utc();
        let revoked = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let n = diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::jti.eq(jti))
                        .filter(refresh_tokens::revoked_at.is_null()),
                )
                .set(refresh_tokens::revoked_at.eq(Some(now)))
                .execute(conn)
                .await?;
                if n == 0 {
                    return Ok::<bool, DbError>(false);
                }
                insert_audit!(conn, event, now)?;
                Ok(true)
            })
            .await
        })?;
        if revoked {
            event.log();
        }
        Ok(revoked)
    }

    /// Revokes every live token of a rotation family (reuse detected) and records `event`, in
    /// one transaction; returns how many tokens were revoked.
    pub async fn revoke_family_recorded(&self, family: &str, event: &AuditEvent) -> Result<usize, DbError> {
        let now = now_utc();
        let revoked = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let n = diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::family.eq(family))
                        .filter(refresh_tokens::revoked_at.is_null()),
                )
                .set(refresh_tokens::revoked_at.eq(Some(now)))
                .execute(conn)
                .await?;
                insert_audit!(conn, event, now)?;
                Ok::<usize, DbError>(n)
            })
            .await
        })?;
        event.log();
        Ok(revoked)
    }

    /// Ends every session of `user_id` and refuses every token issued before `not_before`
    /// (logout-all, admin revocation): refresh tokens revoked, watermark and `event` written,
    /// in one transaction. Returns how many refresh tokens were revoked.
    pub async fn revoke_everything(&self, user_id: i64, not_before: i64, event: &AuditEvent) -> Result<usize, DbError> {
        self.revoke_everything_with(user_id, None, None, not_before, event).await
    }

    /// [`Store::revoke_everything`] plus a new password hash (password change).
    pub async fn change_password_everywhere(
        &self,
        user_id: i64,
        hash: &str,
        not_before: i64,
        event: &AuditEvent,
    ) -> Result<usize, DbError> {
        self.revoke_everything_with(user_id, Some(hash), None, not_before, event).await
    }

    /// Deactivates the user with this email with [`Store::revoke_everything`] (`users
    /// deactivate`, the admin API); `false` when no such user.
    pub async fn deactivate_everywhere(
        &self,
        email: &str,
        not_before: i64,
        event: &AuditEvent,
    ) -> Result<bool, DbError> {
        let Some(c) = self.find_by_email(email).await? else { return Ok(false) };
        let event = AuditEvent { user_id: Some(c.user.id), ..event.clone() };
        self.revoke_everything_with(c.user.id, None, Some(false), not_before, &event).await?;
        Ok(true)
    }

    async fn revoke_everything_with(
        &self,
        user_id: i64,
        hash: Option<&str>,
        active: Option<bool>,
        not_before: i64,
        event: &AuditEvent,
    ) -> Result<usize, DbError> {
        let now = now_utc();
        let revoked = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                if let Some(hash) = hash {
                    diesel::update(users::table.find(user_id)).set(users::password.eq(hash)).execute(conn).await?;
                }
                if let Some(active) = active {
                    diesel::update(users::table.find(user_id)).set(users::is_active.eq(active)).execute(conn).await?;
                }
                let revoked = diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::user_id.eq(user_id))
                        .filter(refresh_tokens::revoked_at.is_null()),
                )
                .set(refresh_tokens::revoked_at.eq(Some(now)))
                .execute(conn)
                .await?;
                let event = event.with_detail("refresh_tokens_revoked", revoked.into());
                insert_audit!(conn, &event, now)?;
                insert_revocation!(conn, user_id, not_before, now)?;
                Ok::<(usize, AuditEvent), DbError>((revoked, event))
            })
            .await
        })?;
        self.forget_watermark(user_id);
        revoked.1.log();
        Ok(revoked.0)
    }

    /// Deletes session rows whose refresh tokens have all expired, in batches (see
    /// [`super::purge`]); returns how many.
    pub async fn purge_sessions(&self) -> Result<usize, DbError> {
        let now = now_utc();
        let sizes = super::purge::Batches::of(self.db());
        super::purge::in_batches("sessions", sizes, |rows| async move {
            with_write_conn!(self.db(), |conn| {
                let batch = super::purge::batch_filter("id", "sessions", "expires_at", now, rows);
                Ok(diesel::delete(sessions::table.filter(batch)).execute(conn).await?)
            })
        })
        .await
    }
}

/// The `session_revoked` event of a session the cap ended, in the login `event`'s request.
fn capped_event(login: &AuditEvent, session: &str) -> AuditEvent {
    AuditEvent { kind: AuditKind::SessionRevoked, actor_id: None, detail: None, ..login.clone() }
        .detail(serde_json::json!({"session": session, "reason": CAPPED_REASON}))
}
