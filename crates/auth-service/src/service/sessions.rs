//! Sessions and revocation: the rules behind `GET /auth/sessions/`, `DELETE /auth/sessions/{id}/`,
//! `POST /auth/logout-all/` and the revocation feed (the REST handlers in `crate::sessions` and
//! the GraphQL schema call the same functions), and the watermark checks every token path makes.
//!
//! **Paging.** Session lists (`GET /auth/sessions/`, GraphQL `sessions`, the admin API's
//! `GET /auth/admin/users/{id}/sessions/`) answer one page of [`SESSIONS_PAGE_SIZE`] sessions,
//! newest first, as the plain list the contract gives; `?page=N` (GraphQL `page: N`) asks for
//! another, as the admin user list pages: absent is 1, and a page that is not a positive number
//! or lies past the end is 404 `{"detail":"Invalid page."}`. A full page means there may be
//! more. With the default `MAX_SESSIONS_PER_USER` (100) every live session is on the first page.
//!
//! **The watermark rule.** A revocation at time `t` stores `not_before = floor(t) + 1` (epoch
//! seconds) and every token whose `iat` is before it is refused: `iat` is whole seconds, so a
//! token issued earlier in the same second as the revocation has `iat = floor(t)` and is
//! refused too. A token issued after the revocation but within that second would carry the same
//! `iat` and be refused as well, so a login or refresh of that user waits (at most one second,
//! only in that case) until the clock reaches `not_before` before it mints: its tokens then have
//! `iat >= not_before` and are accepted, and no token is ever dated in the future.

use std::time::Duration;

use serde_json::json;
use shared_user::server::ClientCertificate;
use shared_user::{TokenError, User};

use super::ServiceError;
use crate::audit::{AuditEvent, AuditKind};
use crate::state::AppState;
use crate::store::revocations::RevocationRow;
use crate::store::sessions::SessionRow;
use crate::store::watermark_now;

/// Most feed entries in one answer (a client asks again at once when it got this many): the
/// wire contract's `MAX_ENTRIES`.
pub const FEED_PAGE: i64 = shared_user::wire::revocations::MAX_ENTRIES as i64;

/// Whether a token of `user_id` issued at `iat` is refused by the user's watermark (a token
/// without `iat` is refused once the user has one).
pub async fn is_revoked(state: &AppState, user_id: i64, iat: Option<i64>) -> Result<bool, ServiceError> {
    Ok(match state.store.not_before(user_id).await? {
        Some(not_before) => iat.is_none_or(|iat| iat < not_before),
        None => false,
    })
}

/// [`is_revoked`] as the token endpoints answer it: "Token is invalid or expired".
pub async fn check_watermark(state: &AppState, user_id: i64, iat: Option<i64>) -> Result<(), ServiceError> {
    if is_revoked(state, user_id, iat).await? { Err(TokenError::Invalid.into()) } else { Ok(()) }
}

/// Waits, when `user_id` was revoked within the current second, until tokens minted now have
/// an `iat` the watermark accepts (at most about a second; see the module doc).
pub async fn wait_past_watermark(state: &AppState, user_id: i64) -> Result<(), ServiceError> {
    let Some(not_before) = state.store.not_before(user_id).await? else { return Ok(()) };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let due_ms = not_before.saturating_mul(1000);
    if now_ms < due_ms {
        let wait = u64::try_from(due_ms - now_ms).unwrap_or(0).min(2_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    Ok(())
}

/// Sessions on one page of a session list (the default cap's worth).
pub const SESSIONS_PAGE_SIZE: i64 = 100;

/// Page `page` (from 1) of the live sessions of user `user_id`, newest first; `None` for a
/// page below 1 or past the end (the first page is there even when empty).
pub async fn session_page(state: &AppState, user_id: i64, page: i64) -> Result<Option<Vec<SessionRow>>, ServiceError> {
    if page < 1 {
        return Ok(None);
    }
    let offset = (page - 1).saturating_mul(SESSIONS_PAGE_SIZE);
    let rows = state.store.live_sessions_page(user_id, offset, SESSIONS_PAGE_SIZE).await?;
    Ok(if rows.is_empty() && page > 1 { None } else { Some(rows) })
}

/// Page `page` of the live sessions of `user`, newest first (see [`session_page`]).
pub async fn sessions_of(state: &AppState, user: &User, page: i64) -> Result<Option<Vec<SessionRow>>, ServiceError> {
    session_page(state, user.id, page).await
}

/// Ends session `id` of `user`; [`ServiceError::NotFound`] when it is not one of their live sessions.
pub async fn end_session_of(state: &AppState, user: &User, id: &str) -> Result<(), ServiceError> {
    // No session id holds such characters (and PostgreSQL cannot look a NUL up).
    if crate::validators::text_problem(id).is_some() {
        return Err(ServiceError::NotFound);
    }
    let event = AuditEvent::new(AuditKind::SessionRevoked).user(user.id).actor(user.id).detail(json!({"session": id}));
    if state.store.end_session(user.id, id, &event).await? { Ok(()) } else { Err(ServiceError::NotFound) }
}

/// Ends every session of `user` and refuses every access token issued before now.
pub async fn log_out_everywhere(state: &AppState, user: &User) -> Result<(), ServiceError> {
    let event = AuditEvent::new(AuditKind::LogoutAll).user(user.id).actor(user.id);
    state.store.revoke_everything(user.id, watermark_now(), &event).await?;
    Ok(())
}

/// One page of the revocation feed.
#[derive(Debug, Clone)]
pub struct RevocationPage {
    /// Where the next request starts (`after`).
    pub cursor: i64,
    /// The watermarks recorded after the requested cursor, oldest first (at most [`FEED_PAGE`]).
    pub revocations: Vec<RevocationRow>,
}

/// Whether a caller presenting `feed_token` and, on a TLS connection, the verified client
/// certificate `client` may read the revocation feed. The feed is on only with
/// `REVOCATION_FEED_TOKEN` or `REVOCATION_FEED_CLIENT_NAMES` set ([`ServiceError::NotFound`]
/// otherwise). A caller is let in by a client certificate whose common name or a DNS name is
/// one of `REVOCATION_FEED_CLIENT_NAMES`, or by presenting the token (compared by digest in
/// constant time, so neither its bytes nor its length leak through timing);
/// [`ServiceError::Forbidden`] otherwise.
pub fn check_feed_token(
    state: &AppState,
    feed_token: &[u8],
    client: Option<&ClientCertificate>,
) -> Result<(), ServiceError> {
    let settings = &state.settings;
    if !settings.feed_enabled() {
        return Err(ServiceError::NotFound);
    }
    let names = &settings.revocation_feed_client_names;
    if !names.is_empty() && client.is_some_and(|c| c.is_one_of(names)) {
        return Ok(());
    }
    match &settings.revocation_feed_token {
        Some(expected) if expected.matches(feed_token) => Ok(()),
        _ => Err(ServiceError::Forbidden),
    }
}

/// Longest wait of one long poll of the feed (the contract's 60 s; shorter when
/// `REQUEST_TIMEOUT` is: the wait ends a second before the request would time out).
pub const FEED_MAX_WAIT: Duration = Duration::from_secs(60);

/// The page of the revocation feed after cursor `after`, waiting up to `wait` (at most
/// [`FEED_MAX_WAIT`]) for one that is not empty: answered as soon as there is an entry after
/// `after`, or empty at the deadline (or at once when the server starts shutting down, so the
/// caller moves to another replica). No database connection is held while waiting.
pub async fn revocations_waiting(
    state: &AppState,
    after: i64,
    wait: Duration,
    draining: Option<shared_user::server::Draining>,
) -> Result<RevocationPage, ServiceError> {
    let longest = FEED_MAX_WAIT.min(state.settings.request_timeout.saturating_sub(Duration::from_secs(1)));
    let deadline = tokio::time::Instant::now() + wait.min(longest);
    // The reads are boxed: their futures (a database call each) would otherwise be laid out
    // inside this one, which a waiting poll keeps for up to a minute (7 KiB a waiter, measured
    // with heaptrack, against a few hundred bytes boxed).
    let page = Box::pin(revocations_after(state, after)).await?;
    if !page.revocations.is_empty() || wait.is_zero() || page.cursor < after {
        return Ok(page);
    }
    let cut_short = async move {
        match draining {
            Some(draining) => draining.started().await,
            None => std::future::pending().await,
        }
    };
    if state.store.wait_for_revocation_after(after, deadline, cut_short).await {
        return Box::pin(revocations_after(state, after)).await;
    }
    Ok(page)
}

/// The page of the revocation feed after cursor `after` (for a caller [`check_feed_token`] let in).
pub async fn revocations_after(state: &AppState, after: i64) -> Result<RevocationPage, ServiceError> {
    let revocations = state.store.revocations_after(after, FEED_PAGE).await?;
    let cursor = match revocations.last() {
        Some(last) => last.id,
        // A cursor from the future (the database was replaced): send the client back to the
        // real end, so it does not wait for ids that may never come.
        None if after > 0 => after.min(state.store.last_revocation_id().await?),
        None => 0,
    };
    Ok(RevocationPage { cursor, revocations })
}
