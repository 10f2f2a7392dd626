//! The demo microservice of the `client-service` binary: EasyJWT's walkthrough routes.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use shared_user::User;

use shared_user::http::both_slashes;

use crate::{AuthUser, ClientState, RequireAuthLayer, RequireGroupLayer};

/// `GET /api/test/` -> `"success"` for any authenticated user (the EasyJWT walkthrough route),
/// `GET /api/me/` -> the mirrored user, `GET /api/billing/` -> only for the `billing` group,
/// plus the `/auth/*` proxy routes, `/healthz`, `/metrics` and `/openapi.json`; instrumented
/// with request ids, access logs and HTTP metrics ([`crate::instrument`]).
pub fn app(state: ClientState) -> Router {
    let billing = both_slashes(Router::<ClientState>::new(), "/api/billing/", get(billing))
        .layer(RequireGroupLayer::new("billing", None))
        .layer(RequireAuthLayer::new(state.clone()));
    let mut app = Router::<ClientState>::new();
    app = both_slashes(app, "/api/test/", get(test));
    app = both_slashes(app, "/api/me/", get(me));
    let app = app
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(billing)
        .merge(crate::router(state.clone()))
        .merge(crate::metrics_router())
        .merge(crate::openapi::router(&crate::openapi::demo_document()))
        .with_state(state)
        .fallback(shared_user::http::not_found)
        .method_not_allowed_fallback(shared_user::http::method_not_allowed);
    crate::instrument(app)
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
