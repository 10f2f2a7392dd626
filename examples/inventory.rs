//! A second microservice mounting the client crate: its own state type holding the
//! `ClientState` (derived with `FromRef`), protected routes via the `AuthUser` extractor, a
//! group-guarded router via `RequireAuthLayer` + `RequireGroupLayer`, and the `/auth/*` proxy.
//!
//! Needs a running auth-service (`cargo run --example pair` starts one on :8000):
//! `SIGNING_KEY=... REMOTE_AUTH_SERVICE_URL=http://127.0.0.1:8000 cargo run --example inventory`
//! (listens on `INVENTORY_BIND`, default 127.0.0.1:8002; verifies remotely when no SIGNING_KEY).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use client_service::shared_user::Db;
use client_service::{AuthUser, ClientConfig, ClientState, RequireAuthLayer, RequireGroupLayer};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// This service's own state; the client crate only needs to find its `ClientState` in it.
#[derive(Clone, FromRef)]
struct Inventory {
    auth: ClientState,
    stock: Arc<Mutex<Vec<String>>>,
}

async fn list_items(State(stock): State<Arc<Mutex<Vec<String>>>>, AuthUser(user): AuthUser) -> Json<Value> {
    Json(json!({"user": user.email, "items": *stock.lock().await}))
}

async fn add_item(State(stock): State<Arc<Mutex<Vec<String>>>>, AuthUser(user): AuthUser) -> Json<Value> {
    let mut stock = stock.lock().await;
    let n = stock.len() + 1;
    stock.push(format!("item #{n} added by {}", user.email));
    Json(json!({"items": *stock}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client_service::init_tracing();
    let remote = std::env::var("REMOTE_AUTH_SERVICE_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let key = std::env::var("SIGNING_KEY").ok().map(String::into_bytes);
    let db = Db::connect("sqlite://gatehouse-inventory.db", 4).await?;
    db.migrate().await?;
    let auth = ClientState::new(ClientConfig::new(remote, key), db).map_err(anyhow::Error::msg)?;
    let state = Inventory { auth: auth.clone(), stock: Arc::new(Mutex::new(Vec::new())) };

    // Writers must be in the "warehouse" group; the layers run outside-in: auth, then group.
    let writers = Router::new()
        .route("/inventory/items/add/", post(add_item))
        .layer(RequireGroupLayer::new("warehouse", None))
        .layer(RequireAuthLayer::new(auth.clone()));
    let app = Router::new()
        .route("/inventory/items/", get(list_items))
        .merge(writers)
        .merge(client_service::router(auth))
        .with_state(state);

    let bind = std::env::var("INVENTORY_BIND").unwrap_or_else(|_| "127.0.0.1:8002".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("inventory service on http://{bind}: GET /inventory/items/, POST /inventory/items/add/ (group warehouse)");
    // The shared listener: request-head and idle timeouts, a connection cap, and the peer
    // address the token proxy forwards to the auth-service.
    let limits = client_service::shared_user::server::Limits::default();
    client_service::shared_user::server::serve(listener, app, limits, client_service::shutdown_signal()).await?;
    Ok(())
}
