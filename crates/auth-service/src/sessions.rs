//! Sessions and revocation over REST: `GET /auth/sessions/`, `DELETE /auth/sessions/{id}/`,
//! `POST /auth/logout-all/` and the revocation feed `GET /auth/revocations/?after=CURSOR`. The
//! rules (paging, the watermark) are the service's, in `crate::service::sessions`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json};
use serde_json::json;
use shared_user::http::{FieldErrors, both_slashes};
use shared_user::server::{ClientCertificate, Draining};
use shared_user::wire::revocations::{AFTER_PARAM, Entry, FEED_TOKEN_HEADER, Page, WAIT_PARAM};

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::params::{invalid_page, requested_page};
use crate::service::sessions::{
    check_feed_token, end_session_of, log_out_everywhere, revocations_waiting, sessions_of,
};
use crate::state::AppState;

/// The sessions, logout-all and revocation-feed routes.
pub fn routes(mut r: Router<AppState>) -> Router<AppState> {
    r = both_slashes(r, "/auth/sessions/", get(list_sessions));
    r = both_slashes(r, "/auth/sessions/{id}/", delete(end_session));
    r = both_slashes(r, "/auth/logout-all/", post(logout_all));
    both_slashes(r, "/auth/revocations/", get(get_revocations))
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

/// The `after` cursor (absent: 0) and the `wait` of a feed request (absent: none; `25s`,
/// `500ms`, or seconds).
fn parse_feed_query(query: Option<&str>) -> Result<(i64, std::time::Duration), FieldErrors> {
    let (mut after, mut wait) = (0, std::time::Duration::ZERO);
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == AFTER_PARAM {
            after = value
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| crate::service::field_error("after", &["A valid integer is required."]))?;
        } else if name == WAIT_PARAM {
            wait = shared_user::wire::revocations::parse_wait(value).ok_or_else(|| {
                crate::service::field_error("wait", &["A valid duration is required (e.g. 25s, 500ms or 25)."])
            })?;
        }
    }
    Ok((after, wait))
}

/// `GET /auth/revocations/?after=CURSOR`: watermarks recorded after the cursor,
/// `{"cursor":N,"revocations":[{"user_id":7,"not_before":EPOCH}]}`. Only with
/// `REVOCATION_FEED_TOKEN` or `REVOCATION_FEED_CLIENT_NAMES` set (404 otherwise), and only for
/// callers presenting the token in `X-Revocation-Feed-Token` or a client certificate of one of
/// those names (403 otherwise).
pub async fn get_revocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Option<Extension<ClientCertificate>>,
    draining: Option<Extension<Draining>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page>, ApiError> {
    let token = headers.get(FEED_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    check_feed_token(&state, token, client.as_ref().map(|Extension(c)| c))?;
    // The headers share the connection's read buffer: not kept while the poll waits.
    drop((headers, client));
    let (after, wait) = parse_feed_query(query.as_deref())?;
    let page = revocations_waiting(&state, after, wait, draining.map(|Extension(d)| d)).await?;
    let revocations = page
        .revocations
        .into_iter()
        .map(|r| match r.kid {
            Some(kid) => Entry::key(kid),
            None => Entry::watermark(r.user_id, r.not_before),
        })
        .collect();
    Ok(Json(Page { cursor: page.cursor, revocations }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_a_non_negative_integer_defaulting_to_zero() {
        let after = |q| parse_feed_query(q).map(|(after, _)| after);
        assert_eq!(after(None).unwrap(), 0);
        assert_eq!(after(Some("after=42")).unwrap(), 42);
        assert_eq!(after(Some("x=1&after=7")).unwrap(), 7);
        for bad in ["after=-1", "after=x", "after=", "after=1.5"] {
            let e = after(Some(bad)).unwrap_err();
            assert_eq!(serde_json::to_string(&e.0).unwrap(), r#"{"after":["A valid integer is required."]}"#, "{bad}");
        }
    }

    #[test]
    fn wait_is_a_duration_defaulting_to_none() {
        use std::time::Duration;
        let wait = |q| parse_feed_query(Some(q)).map(|(_, wait)| wait);
        assert_eq!(wait("after=1").unwrap(), Duration::ZERO);
        assert_eq!(wait("after=1&wait=25s").unwrap(), Duration::from_secs(25));
        assert_eq!(wait("wait=500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(wait("wait=25").unwrap(), Duration::from_secs(25));
        for bad in ["wait=", "wait=soon", "wait=-1s", "wait=99999999999999999999"] {
            let e = wait(bad).unwrap_err();
            assert_eq!(
                serde_json::to_string(&e.0).unwrap(),
                r#"{"wait":["A valid duration is required (e.g. 25s, 500ms or 25)."]}"#,
                "{bad}"
            );
        }
    }
}
