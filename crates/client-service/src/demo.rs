//! The demo microservice of the `client-service` binary (`cli` feature): EasyJWT's
//! walkthrough routes over the crate's public API.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use shared_user::User;

use shared_user::http::both_slashes;

use crate::state::ClientState;
use crate::verify::{AuthUser, RequireAuthLayer};
use crate::{health, proxy};

/// `GET /api/test/` -> `"success"` for any authenticated user (the EasyJWT walkthrough route),
/// `GET /api/me/` -> the mirrored user, `GET /api/billing/` -> only for the `billing` group,
/// `GET /api/secure/` -> only with a token from a login that used a second factor,
/// plus the `/auth/*` proxy routes, `/healthz`, `/readyz`, `/metrics` and `/openapi.json`;
/// instrumented with request ids, access logs and HTTP metrics ([`shared_user::ops::instrument`]).
/// The binary serves this on its one listener when `MANAGEMENT_BIND` is unset.
pub fn app(state: ClientState) -> Router {
    build(state, true, true)
}

/// The public listener (`BIND`) next to a management listener: [`app`] without `/metrics` and
/// `/openapi.json` (the JSON 404 of an unknown path here); `/healthz` and `/readyz` stay, for the
/// load balancers that probe this listener.
pub fn public_app(state: ClientState) -> Router {
    build(state, true, false)
}

/// The management listener (`MANAGEMENT_BIND`): `/healthz`, `/readyz`, `/metrics` and
/// `/openapi.json`, with the same instrumentation.
pub fn management_app(state: ClientState) -> Router {
    build(state, false, true)
}

/// The demo's routes: the API (`/api/*`, `/auth/*`) when `api`, `/metrics` and `/openapi.json`
/// when `operations`, the health checks always.
fn build(state: ClientState, api: bool, operations: bool) -> Router {
    let mut app = Router::<ClientState>::new().merge(health::routes(state.clone()));
    if api {
        let billing = both_slashes(Router::<ClientState>::new(), "/api/billing/", get(billing))
            .layer(RequireAuthLayer::new(state.clone()).group("billing", None));
        app = both_slashes(app, "/api/test/", get(test));
        app = both_slashes(app, "/api/me/", get(me));
        let secure = both_slashes(Router::<ClientState>::new(), "/api/secure/", get(test))
            .layer(crate::RequireMfaLayer::new(state.clone()));
        app = app.merge(billing).merge(secure).merge(proxy::routes(state.clone()));
    }
    if operations {
        app = app.merge(crate::metrics::router()).merge(crate::openapi::router(&crate::openapi::demo_document()));
    }
    let app = app
        .with_state(state)
        .fallback(shared_user::http::not_found)
        .method_not_allowed_fallback(shared_user::http::method_not_allowed);
    shared_user::ops::instrument(app)
}

async fn test(_user: AuthUser) -> Json<Value> {
    Json(json!("success"))
}

async fn me(AuthUser(user): AuthUser) -> Json<Arc<User>> {
    Json(user)
}

async fn billing(AuthUser(user): AuthUser) -> Json<Value> {
    Json(json!({"detail": format!("Welcome to billing, {}.", user.email)}))
}
