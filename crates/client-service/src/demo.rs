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
/// plus the `/auth/*` proxy routes, `/healthz`, `/readyz`, `/metrics` and `/openapi.json`;
/// instrumented with request ids, access logs and HTTP metrics ([`shared_user::ops::instrument`]).
pub fn app(state: ClientState) -> Router {
    let billing = both_slashes(Router::<ClientState>::new(), "/api/billing/", get(billing))
        .layer(RequireAuthLayer::new(state.clone()).group("billing", None));
    let mut app = Router::<ClientState>::new();
    app = both_slashes(app, "/api/test/", get(test));
    app = both_slashes(app, "/api/me/", get(me));
    let app = app
        .merge(billing)
        .merge(health::routes(state.clone()))
        .merge(proxy::routes(state.clone()))
        .merge(crate::metrics::router())
        .merge(crate::openapi::router(&crate::openapi::demo_document()))
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
