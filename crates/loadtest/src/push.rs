//! Revocations pushed (DESIGN.md target: a local-mode client refuses a revoked user's older
//! tokens within 100 ms p99 of logout-all, and a thousand waiting long polls cost the
//! auth-service a few MB). Against the release binaries as child processes: `auth-service
//! serve` on SQLite with a feed token, `client-service serve` in local mode reading the feed by
//! long poll (`REVOCATION_FEED_WAIT` at its default).
//!
//! 1. Rounds: a user logs in at the auth-service, the client accepts the token, the user calls
//!    logout-all at the auth-service; the harness then asks the client with the old token in a
//!    tight loop until it answers 401. Measured from logout-all's answer (the revocation is
//!    committed) and from its sending.
//! 2. Waiters: `waiters` long polls of the feed opened at once from eight source addresses
//!    (127.0.0.10-17, under `MAX_CONNECTIONS_PER_IP`), the auth-service's RSS read before and
//!    while they wait; then one logout-all, and the time until each waiter has its answer.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::load::{self, ms, percentile};
use crate::rss::{Pair, command, memory};
use crate::setup::signing_key;

/// Feed token of the run.
const FEED_TOKEN: &str = "loadtest-push-feed-token-0123456789";
/// Users who take turns logging in and out (each user's rounds are apart by more than the
/// one-second watermark resolution).
const USERS: usize = 16;
/// Password of every user.
const PASSWORD: &str = "push-load-test-password-2026";

/// What [`measure`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Per round, logout-all answered -> the client's first 401.
    pub after_answer: Vec<Duration>,
    /// Per round, logout-all sent -> the client's first 401.
    pub after_send: Vec<Duration>,
    /// Client requests made while waiting for the 401s (all answered from memory).
    pub probes: u64,
    /// auth-service RSS with `waiters` idle kept-alive connections open (each served one
    /// `GET /healthz`), KiB: what a connection costs without a long poll.
    pub rss_idle_connections_kib: u64,
    /// auth-service RSS with only the client's long poll open, KiB.
    pub rss_before_kib: u64,
    /// auth-service RSS with `waiters` more long polls open, KiB.
    pub rss_waiting_kib: u64,
    /// Long polls opened.
    pub waiters: usize,
    /// Long polls still waiting when the revocation was made (none answered early).
    pub still_waiting: usize,
    /// Per waiter, logout-all answered -> its feed answer.
    pub fan_out: Vec<Duration>,
    /// Waiters that got no answer, or not a 200.
    pub waiter_errors: usize,
}

/// Runs `rounds` logout-all rounds, then `waiters` long polls, against the binaries in `bin_dir`.
pub async fn measure(
    bin_dir: &std::path::Path,
    rounds: usize,
    waiters: usize,
    extra: &[(String, String)],
) -> anyhow::Result<Report> {
    let auth_bin = bin_dir.join("auth-service");
    let client_bin = bin_dir.join("client-service");
    for bin in [&auth_bin, &client_bin] {
        anyhow::ensure!(bin.exists(), "{} not found: run `cargo build --release --workspace` first", bin.display());
    }
    let dir = tempfile::tempdir()?;
    let key = signing_key();
    let auth_db = format!("sqlite://{}", dir.path().join("auth.db").display());
    let client_db = format!("sqlite://{}", dir.path().join("client.db").display());
    for i in 0..USERS {
        let mut add = command(&auth_bin, &[("DATABASE_URL", auth_db.clone())], extra)
            .args(["users", "add", "--email", &email(i), "--password-stdin"])
            .stdin(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = add.stdin.take() {
            writeln!(stdin, "{PASSWORD}")?;
        }
        anyhow::ensure!(add.wait()?.success(), "auth-service users add failed");
    }
    let feed = [("REVOCATION_FEED_TOKEN", FEED_TOKEN.to_owned())];
    let Pair { auth, auth_addr, client, client_addr } =
        Pair::start(&auth_bin, &client_bin, (auth_db, client_db), &key, &feed, extra).await?;
    // The client's first read of the feed, then its long poll.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut report = Report::default();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let api = format!("http://{client_addr}/api/test/");
    let logout_url = format!("http://{auth_addr}/auth/logout-all/");
    for round in 0..rounds {
        let user = email(round % USERS);
        let (access, _) = load::login(auth_addr, &user, PASSWORD).await?;
        let status = http.get(&api).bearer_auth(&access).send().await?.status();
        anyhow::ensure!(status == 200, "the client refused a fresh token: {status}");
        let sent = Instant::now();
        let status = http.post(&logout_url).bearer_auth(&access).json(&serde_json::json!({})).send().await?.status();
        anyhow::ensure!(status == 200, "logout-all answered {status}");
        let answered = Instant::now();
        loop {
            report.probes += 1;
            if http.get(&api).bearer_auth(&access).send().await?.status() == 401 {
                break;
            }
            anyhow::ensure!(answered.elapsed() < Duration::from_secs(30), "round {round}: never refused");
        }
        report.after_answer.push(answered.elapsed());
        report.after_send.push(sent.elapsed());
    }

    // The waiters, after the newest entry; first the same number of idle kept-alive connections
    // (one `GET /healthz` each), for what a connection alone costs.
    let cursor = feed_cursor(&http, auth_addr).await?;
    report.waiters = waiters;
    report.rss_before_kib = memory(auth.pid())?.rss_kib;
    let mut idle = Vec::with_capacity(waiters);
    for i in 0..waiters {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + (i % 8) as u8));
        idle.push(kept_alive(source, auth_addr).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_idle_connections_kib = memory(auth.pid())?.rss_kib;
    drop(idle);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(waiters.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..waiters {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + (i % 8) as u8));
        let ready = ready_tx.clone();
        tasks.spawn(async move { long_poll(source, auth_addr, cursor, ready).await });
    }
    drop(ready_tx);
    for _ in 0..waiters {
        ready_rx.recv().await;
    }
    // Every request written; give the service a moment to have read them all.
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_waiting_kib = memory(auth.pid())?.rss_kib;
    report.still_waiting = waiters - finished(&mut tasks);
    let (access, _) = load::login(auth_addr, &email(0), PASSWORD).await?;
    let status = http.post(&logout_url).bearer_auth(&access).json(&serde_json::json!({})).send().await?.status();
    anyhow::ensure!(status == 200, "logout-all answered {status}");
    let answered = Instant::now();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(at)) => report.fan_out.push(at.saturating_duration_since(answered)),
            _ => report.waiter_errors += 1,
        }
    }
    drop(client);
    drop(auth);
    Ok(report)
}

/// How many of `tasks` have already finished (a waiter answered before the revocation).
fn finished(tasks: &mut tokio::task::JoinSet<anyhow::Result<Instant>>) -> usize {
    let mut done = 0;
    while let Some(joined) = tasks.try_join_next() {
        done += 1;
        drop(joined);
    }
    done
}

fn email(i: usize) -> String {
    format!("push{i}@example.com")
}

/// The feed's newest cursor.
async fn feed_cursor(http: &reqwest::Client, auth: SocketAddr) -> anyhow::Result<i64> {
    use shared_user::wire::revocations::{FEED_TOKEN_HEADER, Page, page_after};
    let mut cursor = 0;
    loop {
        let url = format!("http://{auth}{}", page_after(cursor));
        let response = http.get(url).header(FEED_TOKEN_HEADER, FEED_TOKEN).send().await?;
        anyhow::ensure!(response.status() == 200, "the feed answered {}", response.status());
        let page: Page = serde_json::from_slice(&response.bytes().await?)?;
        if page.revocations.is_empty() {
            return Ok(page.cursor.max(cursor));
        }
        cursor = page.cursor;
    }
}

/// A connection from `source` that has been answered one `GET /healthz` and stays open.
async fn kept_alive(source: IpAddr, auth: SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(auth).await?;
    stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {auth}\r\n\r\n").as_bytes()).await?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    while !answer.ends_with(b"}") {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the health answer");
        answer.extend_from_slice(&chunk[..n]);
    }
    anyhow::ensure!(answer.starts_with(b"HTTP/1.1 200"), "health answered {}", String::from_utf8_lossy(&answer));
    Ok(stream)
}

/// One long poll of the feed from `source`, on its own connection: says it is sent on `ready`,
/// returns when the answer's status line has arrived.
async fn long_poll(
    source: IpAddr,
    auth: SocketAddr,
    cursor: i64,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<Instant> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(auth).await?;
    let request = format!(
        "GET /auth/revocations/?after={cursor}&wait=60s HTTP/1.1\r\nHost: {auth}\r\nx-revocation-feed-token: {FEED_TOKEN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let _ = ready.send(()).await;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    let at = Instant::now();
    anyhow::ensure!(head.starts_with(b"HTTP/1.1 200"), "the feed answered {}", String::from_utf8_lossy(&head));
    Ok(at)
}

/// Prints the report.
pub fn print(report: &Report) {
    let mut after_answer = report.after_answer.clone();
    after_answer.sort();
    let mut after_send = report.after_send.clone();
    after_send.sort();
    println!("\nRevocations pushed: logout-all at the auth-service -> the client's first 401 (release binaries)");
    println!(
        "  {} rounds, {} client requests while waiting (each verified in memory)",
        after_answer.len(),
        report.probes
    );
    for (name, sorted) in [("from logout-all's answer", &after_answer), ("from logout-all's sending", &after_send)] {
        println!(
            "  {:<28} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            name,
            ms(percentile(sorted, 50.0)),
            ms(percentile(sorted, 99.0)),
            ms(sorted.last().copied().unwrap_or_default())
        );
    }
    let mut fan_out = report.fan_out.clone();
    fan_out.sort();
    let delta = report.rss_waiting_kib.saturating_sub(report.rss_before_kib);
    println!("\n{} long polls of the feed waiting at once (8 source addresses)", report.waiters);
    let idle = report.rss_idle_connections_kib.saturating_sub(report.rss_before_kib);
    println!(
        "  for comparison, {} idle kept-alive connections (one GET /healthz each): +{:.2} MiB ({:.1} KiB each)",
        report.waiters,
        idle as f64 / 1024.0,
        idle as f64 / report.waiters.max(1) as f64
    );
    println!(
        "  auth-service RSS: {:.1} MiB before, {:.1} MiB while they wait: +{:.2} MiB ({:.1} KiB per waiter)",
        report.rss_before_kib as f64 / 1024.0,
        report.rss_waiting_kib as f64 / 1024.0,
        delta as f64 / 1024.0,
        delta as f64 / report.waiters.max(1) as f64
    );
    println!("  still waiting when the revocation came: {}/{}", report.still_waiting, report.waiters);
    println!(
        "  one logout-all -> every waiter answered: p50 {:.2} ms, p99 {:.2} ms, last {:.2} ms; errors {}",
        ms(percentile(&fan_out, 50.0)),
        ms(percentile(&fan_out, 99.0)),
        ms(fan_out.last().copied().unwrap_or_default()),
        report.waiter_errors
    );
    let p99 = ms(percentile(&after_answer, 99.0));
    println!("\nTargets (DESIGN.md)");
    println!(
        "  {:<44} {:>12.1} {:<6} target < {:<10} {}",
        "revocation reaches the client, p99",
        p99,
        "ms",
        100,
        if p99 < 100.0 { "met" } else { "MISSED" }
    );
}
