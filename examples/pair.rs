//! The whole pair on one machine: the auth-service on 127.0.0.1:8000 and the demo
//! client-service on 127.0.0.1:8001, both on SQLite files under `./gatehouse-demo/`, with
//! revocation on, a seeded user and a seeded staff account; the walkthrough to try (curl lines,
//! the admin console, metrics, OpenAPI documents, the audit command) printed at start.
//!
//! `cargo run --example pair` (ports: `AUTH_BIND`, `CLIENT_BIND`; Ctrl-C stops both). The setup
//! and the walkthrough are `gatehouse::demo`, which `tests/demo.rs` runs and checks.

use gatehouse::demo::{Demo, Options};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    auth_service::init_tracing();
    let demo = Demo::setup(Options::from_env()?).await?;
    println!("\n{}", demo.walkthrough());
    demo.serve(auth_service::shutdown_signal()).await
}
