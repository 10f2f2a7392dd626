//! Sessions and revocation: `GET /auth/sessions/`, `DELETE /auth/sessions/{id}/`,
//! `POST /auth/logout-all/` and the revocation feed `GET /auth/revocations/?after=CURSOR`, and the
//! service functions behind them (the GraphQL schema calls the same ones).
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

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use shared_user::http::{FieldErrors, both_slashes};
use shared_user::{TokenError, User};

use crate::AppState;
use crate::audit::{AuditEvent, AuditKind};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::service::ServiceError;
use crate::store::revocations::RevocationRow;
use crate::store::sessions::SessionRow;

/// Header carrying `REVOCATION_FEED_TOKEN` on feed requests.
pub const FEED_TOKEN_HEADER: &str = "x-revocation-feed-token";
/// Most feed entries in one answer (a client asks again at once when it got this many).
pub const FEED_PAGE: i64 = 1000;

/// The sessions, logout-all and revocation-feed routes.
pub fn routes(mut r: Router<AppState>) -> Router<AppState> {
    r = both_slashes(r, "/auth/sessions/", get(list_sessions));
    r = both_slashes(r, "/auth/sessions/{id}/", delete(end_session));
    r = both_slashes(r, "/auth/logout-all/", post(logout_all));
    both_slashes(r, "/auth/revocations/", get(get_revocations))
}

/// The watermark of a revocation happening now (see the module doc).
pub fn watermark_now() -> i64 {
    chrono::Utc::now().timestamp() + 1
}

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

/// `GET /auth/sessions/?page=N`: one page of the caller's live sessions, a plain list (404
/// `{"detail":"Invalid page."}` for a page that is not a positive number or lies past the end).
pub async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let page = requested_page(query.as_deref()).unwrap_or(0);
    Ok(match sessions_of(&state, &user, page).await? {
        Some(rows) => Json(rows).into_response(),
        None => invalid_page(),
    })
}

/// The `?page=` of a session list, read as the admin user list reads it (absent: 1; `None`:
/// not a positive number).
pub fn requested_page(query: Option<&str>) -> Option<i64> {
    let pairs = crate::admin::query_pairs(query);
    crate::admin::parse_page(pairs.iter().find(|(k, _)| k == "page").map(|(_, v)| v.as_str()))
}

/// DRF's 404 for a page that is not there.
pub fn invalid_page() -> Response {
    shared_user::http::detail(StatusCode::NOT_FOUND, crate::admin::INVALID_PAGE)
}

/// `DELETE /auth/sessions/{id}/`: 204, or 404 for an id that is not one of the caller's live sessions.
pub async fn end_session(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    end_session_of(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/logout-all/`: every session of the caller ended, every earlier access token
/// refused -> `{}`.
pub async fn logout_all(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Response, ApiError> {
    log_out_everywhere(&state, &user).await?;
    Ok(Json(json!({})).into_response())
}

/// The `after` cursor of a feed request (absent: 0).
fn parse_after(query: Option<&str>) -> Result<i64, FieldErrors> {
    let mut after = 0;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "after" {
            after = value
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| crate::service::field_error("after", &["A valid integer is required."]))?;
        }
    }
    Ok(after)
}

/// One page of the revocation feed.
#[derive(Debug, Clone)]
pub struct RevocationPage {
    /// Where the next request starts (`after`).
    pub cursor: i64,
    /// The watermarks recorded after the requested cursor, oldest first (at most [`FEED_PAGE`]).
    pub revocations: Vec<RevocationRow>,
}

/// Whether a caller presenting `feed_token` may read the revocation feed: only with
/// `REVOCATION_FEED_TOKEN` set ([`ServiceError::NotFound`] otherwise) and only when it presents
/// that token ([`ServiceError::Forbidden`] otherwise, compared by digest in constant time, so
/// neither its bytes nor its length leak through timing).
pub fn check_feed_token(state: &AppState, feed_token: &[u8]) -> Result<(), ServiceError> {
    let Some(expected) = &state.config.revocation_feed_token else { return Err(ServiceError::NotFound) };
    if expected.matches(feed_token) { Ok(()) } else { Err(ServiceError::Forbidden) }
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

/// `GET /auth/revocations/?after=CURSOR`: watermarks recorded after the cursor,
/// `{"cursor":N,"revocations":[{"user_id":7,"not_before":EPOCH}]}`. Only with
/// `REVOCATION_FEED_TOKEN` set (404 otherwise), and only for callers presenting it in
/// `X-Revocation-Feed-Token` (403 otherwise).
pub async fn get_revocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    check_feed_token(&state, headers.get(FEED_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default())?;
    let page = revocations_after(&state, parse_after(query.as_deref())?).await?;
    let revocations: Vec<Value> =
        page.revocations.iter().map(|r| json!({"user_id": r.user_id, "not_before": r.not_before})).collect();
    Ok(Json(json!({"cursor": page.cursor, "revocations": revocations})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_a_non_negative_integer_defaulting_to_zero() {
        assert_eq!(parse_after(None).unwrap(), 0);
        assert_eq!(parse_after(Some("after=42")).unwrap(), 42);
        assert_eq!(parse_after(Some("x=1&after=7")).unwrap(), 7);
        for bad in ["after=-1", "after=x", "after=", "after=1.5"] {
            let e = parse_after(Some(bad)).unwrap_err();
            assert_eq!(serde_json::to_string(&e.0).unwrap(), r#"{"after":["A valid integer is required."]}"#, "{bad}");
        }
    }

    #[test]
    fn the_watermark_is_the_next_whole_second() {
        let before = chrono::Utc::now().timestamp();
        let mark = watermark_now();
        assert!(mark == before + 1 || mark == before + 2, "{mark} vs {before}");
    }
}
