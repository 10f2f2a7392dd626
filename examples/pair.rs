//! The whole pair on one machine: the auth-service on 127.0.0.1:8000 and the demo
//! client-service on 127.0.0.1:8001, both on SQLite files under `./gatehouse-demo/`, with
//! revocation on, a seeded user and a seeded staff account; the walkthrough to try (curl lines,
//! the admin console, metrics, OpenAPI documents, the audit command) printed at start.
//!
//! `cargo run --example pair` (ports: `AUTH_BIND`, `CLIENT_BIND`; Ctrl-C stops both). The setup
//! and the walkthrough are `gatehouse::demo`, which `tests/demo.rs` runs and checks.

use std::io::Write;

use gatehouse::demo::{Demo, Options};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    auth_service::init_tracing();
    let demo = Demo::setup(Options::from_env()?).await?;
    // The banner in one write, and a reader that has gone (`| head`, a test that read enough)
    // does not stop the services: `println!` would panic on the closed pipe.
    let banner = format!("\n{}\n", demo.walkthrough());
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush()) {
        tracing::warn!("the walkthrough was not printed in full: {e}");
    }
    drop(stdout);
    demo.serve(auth_service::shutdown_signal()).await
}
