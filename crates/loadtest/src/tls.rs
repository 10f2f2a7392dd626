//! What TLS costs (DESIGN.md target: remote-mode verify through a client over TLS with
//! keep-alive at >= 85 % of the same over plain HTTP). One auth-service state served twice, on a
//! plain listener and on a TLS listener (`shared_user::server::serve_tls`, a certificate from a
//! private CA made for the run); two remote-mode clients with the verified-token path on every
//! request, one per listener, each behind `RequireAuthLayer` on a plain listener; the same load
//! on both, interleaved. Then new TLS connections per second to a listener served by one
//! thread: each connection is a full handshake (no session resumption) and one request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use shared_user::TokenType;
use shared_user::pki::{Ca, Overwrite, files, write_issued};
use shared_user::server::{Limits as ServerLimits, Tls, TlsFiles};
use tokio::runtime::Runtime;

use crate::load::{self, Limits, Outcome, Target};
use crate::setup;

/// What [`measure`] found.
#[derive(Debug)]
pub struct Report {
    /// Remote verify through a client reaching the auth-service over plain HTTP, per round.
    pub plain: Vec<Outcome>,
    /// The same over TLS (kept-alive connections), per round.
    pub tls: Vec<Outcome>,
    /// New TLS connections (handshake + one request) completed per second against a listener
    /// on one thread.
    pub handshakes_per_second: f64,
    /// Connections that failed in that run.
    pub handshake_errors: u64,
    /// Concurrent connecting tasks in that run.
    pub handshake_workers: usize,
}

/// Serves `router` over TLS on a fresh `127.0.0.1:0` listener on the current runtime.
async fn serve_tls(router: axum::Router, tls: Tls) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(shared_user::server::serve_tls(
        listener,
        router,
        ServerLimits::default(),
        Some(tls),
        std::future::pending(),
    ));
    Ok(addr)
}

/// Runs both measurements: `rounds` interleaved rounds of `limits` for the verify pair, then
/// `limits.duration` of new connections from `limits.connections` tasks.
pub fn measure(limits: Limits, rounds: usize, servers: &Runtime, loadgen: &Runtime) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("loadtest CA")?;
    ca.write(dir.path(), Overwrite::Refuse)?;
    let server = ca.server(&["127.0.0.1"])?;
    write_issued(dir.path(), files::SERVER_CERT, files::SERVER_KEY, &server, Overwrite::Refuse)?;
    let files = TlsFiles::new(dir.path().join(files::SERVER_CERT), dir.path().join(files::SERVER_KEY));
    let ca_file = dir.path().join(files::CA_CERT);
    let key = setup::signing_key();
    let settings = setup::auth_settings(&key);

    let (plain_client, tls_client, access) = servers.block_on(async {
        let (auth, user_id) =
            setup::auth_state(&settings, setup::sqlite(dir.path(), "auth.db", 10, auth_service::MIGRATIONS).await?)
                .await?;
        let access = auth.keys.mint(TokenType::Access, user_id)?.token;
        let plain_auth = setup::serve(auth_service::app(auth.clone())).await?;
        let tls_auth = serve_tls(auth_service::app(auth.clone()), Tls::load(files.clone())?).await?;
        let plain = setup::client_state(
            &format!("http://{plain_auth}"),
            None,
            setup::sqlite(dir.path(), "plain.db", 8, client_service::MIGRATIONS).await?,
        )?;
        let over_tls = setup::client_state_with(
            &format!("https://{tls_auth}"),
            None,
            setup::sqlite(dir.path(), "tls.db", 8, client_service::MIGRATIONS).await?,
            |config| config.ca_file(&ca_file),
        )?;
        anyhow::Ok((
            setup::serve(setup::protected_router(plain)).await?,
            setup::serve(setup::protected_router(over_tls)).await?,
            access,
        ))
    })?;

    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        plain.push(loadgen.block_on(load::run(Target::get(plain_client, "/bare", Some(&access)), limits))?);
        tls.push(loadgen.block_on(load::run(Target::get(tls_client, "/bare", Some(&access)), limits))?);
    }

    // One thread serves the handshakes: at most one core's worth of work.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let one_core_files = files.clone();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => return drop(addr_tx.send(Err(anyhow::Error::from(e)))),
        };
        runtime.block_on(async move {
            let served = async { serve_tls(setup::bare_router(), Tls::load(one_core_files)?).await };
            let _ = addr_tx.send(served.await);
            std::future::pending::<()>().await;
        });
    });
    let one_core = addr_rx.recv()??;
    let ca_pem = std::fs::read(dir.path().join(files::CA_CERT))?;
    let workers = limits.connections.clamp(1, 16);
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let elapsed = loadgen.block_on(async {
        // No pooled connection is ever reused: every request opens and handshakes a new one.
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem)?])
            .pool_max_idle_per_host(0)
            .build()?;
        let url = format!("https://{one_core}/bare");
        let until = Instant::now() + limits.duration;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (client, url, done, errors) = (client.clone(), url.clone(), done.clone(), errors.clone());
            tasks.spawn(async move {
                while Instant::now() < until {
                    match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => done.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        anyhow::Ok(started.elapsed())
    })?;
    Ok(Report {
        plain,
        tls,
        handshakes_per_second: done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64().max(1e-9),
        handshake_errors: errors.load(Ordering::Relaxed),
        handshake_workers: workers,
    })
}

/// Prints the rounds, the medians and their ratio.
pub fn print(report: &Report, connections: usize) {
    println!("\nRemote-mode verify through a client, {connections} connections (req/s, p50 / p99 µs)");
    let row = |o: &Outcome| {
        format!(
            "{:>9.0} {:>7} / {:>7} errors {}",
            o.rps(),
            o.latency.value_at_quantile(0.5) / 1000,
            o.latency.value_at_quantile(0.99) / 1000,
            o.errors
        )
    };
    for (i, (plain, tls)) in report.plain.iter().zip(&report.tls).enumerate() {
        println!("  round {}: plain HTTP {}   TLS {}", i + 1, row(plain), row(tls));
    }
    let median = |outcomes: &[Outcome]| {
        let mut rates: Vec<f64> = outcomes.iter().map(Outcome::rps).collect();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or_default()
    };
    let (plain, tls) = (median(&report.plain), median(&report.tls));
    println!(
        "  median: plain {plain:.0} req/s, TLS {tls:.0} req/s = {:.1} % of plain (target >= 85 %)",
        100.0 * tls / plain.max(1e-9)
    );
    println!(
        "\nNew TLS connections (full handshake + one request) to a listener on one thread, {} connecting tasks: \
         {:.0}/s ({} failed)",
        report.handshake_workers, report.handshakes_per_second, report.handshake_errors
    );
}
