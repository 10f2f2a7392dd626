//! A second microservice mounting the client crate next to tables of its own (including its
//! own `users`): `app.rs` holds its state (with the `ClientState` derived by `FromRef`), a route
//! using the `AuthUser` extractor, a group-guarded route (`RequireAuthLayer::new(..).group(..)`),
//! and the `/auth/*` proxy; `migrations/` its own diesel migrations, applied with the client
//! crate's in the same database.
//!
//! Needs a running auth-service (`cargo run --example pair` starts one on :8000):
//! `SIGNING_KEY=... REMOTE_AUTH_SERVICE_URL=http://127.0.0.1:8000 cargo run --example inventory`
//! (listens on `INVENTORY_BIND`, default 127.0.0.1:8002; verifies remotely without SIGNING_KEY;
//! database `INVENTORY_DATABASE_URL`, default `sqlite://gatehouse-inventory.db`).

mod app;

use client_service::{ClientConfig, ClientState, Db};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client_service::init_tracing();
    let remote = std::env::var("REMOTE_AUTH_SERVICE_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let config = match std::env::var("SIGNING_KEY") {
        Ok(key) => ClientConfig::builder(remote).local_hmac(key),
        Err(_) => ClientConfig::builder(remote).remote(),
    }
    .build()?;
    let url = std::env::var("INVENTORY_DATABASE_URL").unwrap_or_else(|_| "sqlite://gatehouse-inventory.db".into());
    let db = Db::connect(&url, 4).await?;
    let (own, ours) = app::migrate(&db).await?;
    tracing::info!(own, client = ours, "migrations applied");
    let state = ClientState::new(config, db.clone())?;
    let app = app::app(state.clone(), db);

    let bind = std::env::var("INVENTORY_BIND").unwrap_or_else(|_| "127.0.0.1:8002".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("inventory service on http://{bind}: GET /inventory/items/, POST /inventory/items/add/ (group warehouse)");
    axum::serve(listener, app).with_graceful_shutdown(client_service::shutdown_signal()).await?;
    // The last users fetched reach the mirror before the process exits.
    state.flush_mirror().await;
    Ok(())
}
