//! `GET /healthz` and `GET /readyz`: whether the process answers, and whether the mirror
//! database does. Neither calls the auth-service: a known user keeps working without it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::ClientState;

/// The two routes, with their state.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(state: ClientState) -> Router<S> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(state)
}

/// 200 `{"status":"ok"}` while the process answers.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 `{"status":"ok"}` while the mirror database answers, else 503 `{"status":"unavailable"}`.
async fn readyz(State(state): State<ClientState>) -> (StatusCode, Json<Value>) {
    match state.mirror().db().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: the mirror database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"})))
        }
    }
}
