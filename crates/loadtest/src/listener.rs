//! The listener under a silent-connection attack at its default limits: the real
//! `shared_user::server::serve` with `Limits::default()` in front of the bare route, an attacker
//! on `127.0.0.2` opening connections that never send a byte (its whole per-address share, then as
//! many again), honest load from `127.0.0.1` meanwhile, and a fresh client on `127.0.0.3`.
//! Reports what the attacker got, what the others saw, and when the server closed the silent
//! connections.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use shared_user::server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::runtime::Runtime;

use crate::load::{self, Outcome, Target};
use crate::setup;

/// Longest wait for the server to close a silent connection (the default idle timeout is 60 s:
/// a connection still open then was not closed by the head deadline).
const CLOSE_BOUND: Duration = Duration::from_secs(45);

/// A connection that the server closes this soon after the connect counts as refused.
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// What the scenario measured.
#[derive(Debug)]
pub struct Report {
    /// The limits in force (the defaults).
    pub limits: Limits,
    /// Silent connections from the attacker's address that the server held.
    pub held: usize,
    /// Further connections from that address, and how many of them were closed within
    /// `REFUSED_WITHIN` (1 s) without an answer.
    pub extra: (usize, usize),
    /// Median time from connect to close of the refused ones.
    pub refused_close: Duration,
    /// Honest load without and with the attack.
    pub before: Outcome,
    /// Honest load while the attacker holds its share.
    pub during: Outcome,
    /// Connect to complete answer of one request from a fresh address during the attack.
    pub fresh: Duration,
    /// Connect to close of each held silent connection, sorted; those still open at
    /// `CLOSE_BOUND` (45 s) are missing.
    pub closed_after: Vec<Duration>,
}

/// A connection to `addr` from `127.0.0.<host>`.
async fn connect_from(host: u8, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0)))?;
    Ok(socket.connect(addr).await?)
}

/// Reads until the server closes or `bound` passes: when it closed and what it sent.
async fn until_closed(mut stream: TcpStream, bound: Duration) -> Option<(Instant, usize)> {
    let mut buf = [0u8; 512];
    let mut got = 0;
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return (Instant::now(), got),
                Ok(n) => got += n,
            }
        }
    })
    .await
    .ok()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Runs the scenario: the server on `servers`, clients on `loadgen`.
pub fn measure(
    connections: usize,
    seconds: u64,
    warmup: f64,
    servers: &Runtime,
    loadgen: &Runtime,
) -> anyhow::Result<Report> {
    let limits = Limits::default();
    let addr = servers.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(shared_user::server::serve(listener, setup::bare_router(), limits, std::future::pending()));
        anyhow::Ok(addr)
    })?;
    // Both honest runs fit well inside the head deadline, so the attack holds through the second.
    let load_limits = load::Limits {
        connections,
        duration: Duration::from_secs(seconds.clamp(1, 5)),
        max_requests: u64::MAX,
        warmup: Duration::from_secs_f64(warmup.clamp(0.0, 1.0)),
        pace: None,
    };
    let target = Target::get(addr, "/bare", None);
    let before = loadgen.block_on(load::run(target.clone(), load_limits))?;

    loadgen.block_on(async {
        // The attacker's whole share: silent connections, each watched until the server closes it.
        let mut watchers = Vec::new();
        for _ in 0..limits.max_connections_per_ip {
            let stream = connect_from(2, addr).await?;
            let opened = Instant::now();
            watchers.push(tokio::spawn(async move {
                until_closed(stream, CLOSE_BOUND).await.map(|(at, _)| at.duration_since(opened))
            }));
        }
        // As many again from the same address: each should be closed at once, unanswered.
        let mut extras = Vec::new();
        for _ in 0..limits.max_connections_per_ip {
            let stream = connect_from(2, addr).await?;
            let opened = Instant::now();
            extras.push(tokio::spawn(async move {
                until_closed(stream, REFUSED_WITHIN).await.map(|(at, got)| (at.duration_since(opened), got))
            }));
        }
        let mut refused = Vec::new();
        let mut kept = 0;
        for extra in extras {
            match extra.await? {
                Some((after, 0)) => refused.push(after),
                _ => kept += 1,
            }
        }
        // A fresh address is answered at once, and honest load goes on, while the share is held.
        let started = Instant::now();
        let mut fresh = connect_from(3, addr).await?;
        fresh.write_all(b"GET /bare HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
        let answer = until_closed(fresh, CLOSE_BOUND).await;
        anyhow::ensure!(matches!(answer, Some((_, n)) if n > 0), "the fresh address got no answer");
        let fresh = started.elapsed();
        let during = load::run(target, load_limits).await?;
        let mut closed_after = Vec::new();
        for watcher in watchers {
            if let Some(after) = watcher.await? {
                closed_after.push(after);
            }
        }
        closed_after.sort();
        Ok(Report {
            limits,
            held: limits.max_connections_per_ip,
            extra: (refused.len() + kept, refused.len()),
            refused_close: median(refused),
            before,
            during,
            fresh,
            closed_after,
        })
    })
}

/// Prints `report`.
pub fn print(report: &Report, connections: usize) {
    let l = &report.limits;
    println!(
        "\nListener under silent connections, default limits (HEADER_READ_TIMEOUT {} s, MAX_CONNECTIONS {}, \
         MAX_CONNECTIONS_PER_IP {})",
        l.header_read_timeout.as_secs(),
        l.max_connections,
        l.max_connections_per_ip
    );
    println!("  silent connections opened from 127.0.0.2:              {}", report.held);
    println!(
        "  further ones from 127.0.0.2 closed unanswered at once:  {} of {} (median {:.2} ms after connect)",
        report.extra.1,
        report.extra.0,
        report.refused_close.as_secs_f64() * 1e3
    );
    println!("  new connection from 127.0.0.3, connect to answer:       {:.2} ms", report.fresh.as_secs_f64() * 1e3);
    for (name, o) in [("no attack", &report.before), ("attack holding its share", &report.during)] {
        println!(
            "  GET /bare from 127.0.0.1, {connections} connections, {name:<25} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>8.1} µs  errors {}",
            o.rps(),
            o.p50_us(),
            o.p99_us(),
            o.errors
        );
    }
    let closed = &report.closed_after;
    let at =
        |q: f64| closed.get(((closed.len() as f64 - 1.0) * q).round() as usize).map_or(f64::NAN, Duration::as_secs_f64);
    println!(
        "  silent connections closed by the server:                {} of {} (after min {:.2} s, median {:.2} s, max {:.2} s)",
        closed.len(),
        report.held,
        at(0.0),
        at(0.5),
        at(1.0)
    );
}
