//! Key rotation under load with the release binaries (#24 item 6): what
//! `tests/e2e_jwks.rs` (`two_replicas_rotate_by_themselves_without_a_refused_token`) shows
//! in-process, with the binaries' own timers. Two `auth-service serve` replicas start at once on
//! one fresh database (SQLite file, or a throw-away PostgreSQL database) with `ALGORITHM=EdDSA`
//! and rotate their keys by themselves; a local-mode `client-service serve` checks tokens
//! against replica A's JWKS.
//!
//! Workers mint access tokens by refresh, half at replica A and half at replica B, and send the
//! client the newest token and a sample of older live ones; a sampler reads replica A's JWKS
//! every 250 ms. The run lasts until two rotations are done (three kids minted) and the first
//! key has left the JWKS, at most 150 s. Any refusal of a live token is a failure. A retired
//! key must stay published until every token it signed has expired, refresh tokens included:
//! the last sample still holding it must come at or after their latest `exp`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::load::{self, ms, percentile};
use crate::rss::{Service, command, free_port, wait_healthy};
use crate::setup::PgDatabase;

/// `KEY_ENCRYPTION_KEY` of the replicas (base64 of 32 bytes; the database is thrown away).
const KEK: &str = "bG9hZHRlc3Qtcm90YXRpb24ta2V5LTMyLWJ5dGVzISE=";
/// Password of every seeded user.
const PASSWORD: &str = "rotation-load-test-password-2026";
/// Concurrent workers (even ones mint at replica A, odd ones at replica B), one user each.
const WORKERS: usize = 4;
/// Pause of a worker between two rounds (one refresh, a few client requests).
const PAUSE: Duration = Duration::from_millis(50);
/// Older live tokens sent to the client per round, besides the newest.
const OLDER_SAMPLE: usize = 3;
/// How often replica A's JWKS is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The longest run.
const CAP: Duration = Duration::from_secs(150);
/// Environment of both replicas besides `DATABASE_URL` and `BIND`. The publication lead is
/// `KEYS_RELOAD_INTERVAL` + `JWKS_MAX_AGE` + `LEEWAY` + 1 s = 12 s: longer than the 10 s the
/// client binary keeps a JWKS at least (and waits between two refetches for an unknown kid), and
/// shorter than `KEY_ROTATION_INTERVAL`, as `serve` requires.
const REPLICA_ENV: [(&str, &str); 8] = [
    ("ALGORITHM", "EdDSA"),
    ("KEY_ENCRYPTION_KEY", KEK),
    ("KEY_ROTATION_INTERVAL", "15s"),
    ("KEYS_RELOAD_INTERVAL", "1s"),
    ("JWKS_MAX_AGE", "10s"),
    ("ACCESS_TOKEN_LIFETIME", "5s"),
    ("REFRESH_TOKEN_LIFETIME", "8s"),
    ("ROTATE_REFRESH_TOKENS", "true"),
];
/// Path of the JWKS on each replica.
const JWKS: &str = "/.well-known/jwks.json";

/// A live token the client refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Seconds since the loop started.
    pub at: f64,
    /// The token's kid.
    pub kid: String,
    /// The client's status.
    pub status: u16,
}

/// One signing key as the run saw it; times in seconds since the loop started.
#[derive(Debug, Clone, Default)]
pub struct Kid {
    /// The key id.
    pub kid: String,
    /// First JWKS sample of replica A holding it (the first sample is taken as the loop starts,
    /// before the first token).
    pub in_jwks: Option<f64>,
    /// First token (access or refresh) minted with it.
    pub first_token: Option<f64>,
    /// Last token (access or refresh) minted with it.
    pub last_token: Option<f64>,
    /// Latest `exp` of the access tokens minted with it (what the client checks on the JWKS).
    pub last_access_exp: Option<f64>,
    /// Latest `exp` of all tokens (access and refresh) minted with it.
    pub last_exp: Option<f64>,
    /// Last JWKS sample of replica A still holding it.
    pub held_until: Option<f64>,
    /// First JWKS sample of replica A without it, after it was there: it left between
    /// `held_until` and this.
    pub left_jwks: Option<f64>,
    /// Access tokens minted with it at replica A and at replica B.
    pub minted: [u64; 2],
}

/// What [`measure`] found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// "SQLite" or "PostgreSQL".
    pub backend: &'static str,
    /// Kids in replica A's and replica B's first JWKS answers.
    pub first_jwks: [Vec<String>; 2],
    /// Length of the loop.
    pub elapsed: Duration,
    /// Two rotations done and the first key unpublished within 150 s.
    pub complete: bool,
    /// Client requests made.
    pub requests: u64,
    /// Latency of each client request that got an answer.
    pub latencies: Vec<Duration>,
    /// Live tokens refused.
    pub refused: Vec<Refusal>,
    /// Client requests without an answer (connection errors).
    pub transport_errors: u64,
    /// Refreshes answered with a new pair.
    pub refreshes: u64,
    /// Refreshes refused although the refresh token had not expired, with the answer's body.
    pub refused_refreshes: Vec<(Refusal, String)>,
    /// Logins, the first of each worker included (a failed refresh logs in again).
    pub logins: u64,
    /// JWKS samples taken, and how many failed.
    pub samples: (u64, u64),
    /// Every kid seen, in the order it was first seen.
    pub kids: Vec<Kid>,
}

impl Report {
    /// Every kid that signed a token was in replica A's JWKS before its first token.
    pub fn published_first(&self) -> bool {
        self.kids
            .iter()
            .filter(|k| k.first_token.is_some())
            .all(|k| matches!((k.in_jwks, k.first_token), (Some(p), Some(t)) if p <= t))
    }

    /// Each kid that left replica A's JWKS was still there at its last token's `exp` (the last
    /// sample holding it came at or after that `exp`; access tokens only with `access_only`), and
    /// at least one left.
    pub fn unpublished_after_expiry(&self, access_only: bool) -> bool {
        let left: Vec<&Kid> = self.kids.iter().filter(|k| k.left_jwks.is_some()).collect();
        !left.is_empty()
            && left.iter().all(|k| {
                let exp = if access_only { k.last_access_exp } else { k.last_exp };
                matches!((k.held_until, exp), (Some(held), Some(exp)) if held >= exp)
            })
    }

    /// Both replicas answered the same single key first.
    pub fn one_first_key(&self) -> bool {
        self.first_jwks[0].len() == 1 && self.first_jwks[0] == self.first_jwks[1]
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn email(i: usize) -> String {
    format!("rotation{i}@example.com")
}

/// Runs the scenario against the binaries in `bin_dir`: on a SQLite file, or on a fresh
/// database of the PostgreSQL server `postgres` (dropped after).
pub async fn measure(bin_dir: &Path, postgres: Option<&str>, extra: &[(String, String)]) -> anyhow::Result<Report> {
    let auth_bin = bin_dir.join("auth-service");
    let client_bin = bin_dir.join("client-service");
    for bin in [&auth_bin, &client_bin] {
        anyhow::ensure!(bin.exists(), "{} not found: run `cargo build --release --workspace` first", bin.display());
    }
    let dir = tempfile::tempdir()?;
    let client_db = format!("sqlite://{}", dir.path().join("client.db").display());
    match postgres {
        None => {
            let auth_db = format!("sqlite://{}", dir.path().join("auth.db").display());
            run(&auth_bin, &client_bin, auth_db, client_db, "SQLite", extra).await
        }
        Some(admin) => {
            let pg = PgDatabase::create(admin).await?;
            let result = run(&auth_bin, &client_bin, pg.url.clone(), client_db, "PostgreSQL", extra).await;
            let dropped = pg.drop_now().await;
            let report = result?;
            dropped?;
            Ok(report)
        }
    }
}

/// State the workers and the sampler share.
struct Shared {
    http: reqwest::Client,
    replicas: [SocketAddr; 2],
    api: String,
    /// Unix time the loop started.
    start: f64,
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
    jwks: Mutex<Published>,
}

/// Tokens minted so far.
#[derive(Default)]
struct Ledger {
    /// Access tokens not yet expired: `(token, kid, exp)`.
    live: Vec<(String, String, i64)>,
    /// Per kid: first and last token (unix), last `exp`, access tokens minted at A and B.
    kids: BTreeMap<String, Minted>,
    /// Kid of the first token.
    first: Option<String>,
}

/// One kid in replica A's JWKS samples (unix times).
struct Sighting {
    /// The first sample holding it.
    first: f64,
    /// The last sample holding it before it left.
    held: f64,
    /// The first sample without it, after it was there.
    gone: Option<f64>,
}

/// Tokens minted with one kid.
struct Minted {
    /// Unix time of the first and the last.
    first: f64,
    last: f64,
    /// Latest `exp` of all, and of the access tokens.
    exp: i64,
    access_exp: Option<i64>,
    /// Access tokens minted at replica A and at replica B.
    count: [u64; 2],
}

/// Replica A's JWKS as sampled, per kid.
#[derive(Default)]
struct Published {
    kids: BTreeMap<String, Sighting>,
    order: Vec<String>,
    samples: u64,
    failures: u64,
}

impl Shared {
    /// Notes `token`, minted at `replica` (0: A, 1: B); returns its kid and `exp`.
    fn record(&self, token: &str, access: bool, replica: usize) -> anyhow::Result<(String, i64)> {
        let data = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)?;
        let kid = data.header.kid.ok_or_else(|| anyhow::anyhow!("a token without a kid"))?;
        let exp = data.claims["exp"].as_i64().ok_or_else(|| anyhow::anyhow!("a token without exp"))?;
        let now = unix_now();
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger.first.get_or_insert_with(|| kid.clone());
        let entry = ledger.kids.entry(kid.clone()).or_insert(Minted {
            first: now,
            last: now,
            exp,
            access_exp: None,
            count: [0, 0],
        });
        entry.last = now;
        entry.exp = entry.exp.max(exp);
        if access {
            entry.count[replica] += 1;
            entry.access_exp = entry.access_exp.max(Some(exp));
            let horizon = now as i64 + 1;
            ledger.live.retain(|(_, _, e)| *e > horizon);
            ledger.live.push((token.to_owned(), kid.clone(), exp));
        }
        Ok((kid, exp))
    }

    /// Up to `n` live tokens (exp > now + 1 s) picked by `pick`.
    fn sample(&self, n: usize, pick: &mut impl FnMut(usize) -> usize) -> Vec<(String, String)> {
        let horizon = unix_now() as i64 + 1;
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let live: Vec<&(String, String, i64)> = ledger.live.iter().filter(|(_, _, e)| *e > horizon).collect();
        if live.is_empty() {
            return Vec::new();
        }
        (0..n).map(|_| live[pick(live.len())]).map(|(t, k, _)| (t.clone(), k.clone())).collect()
    }

    /// Two rotations done (three kids minted) and the first kid gone from replica A's JWKS.
    fn done(&self) -> bool {
        let (kids, first) = {
            let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            (ledger.kids.len(), ledger.first.clone())
        };
        let jwks = self.jwks.lock().unwrap_or_else(|p| p.into_inner());
        kids >= 3 && first.is_some_and(|kid| jwks.kids.get(&kid).is_some_and(|seen| seen.gone.is_some()))
    }
}

/// The kids of the JWKS at `addr`.
async fn jwks_kids(http: &reqwest::Client, addr: SocketAddr) -> anyhow::Result<BTreeSet<String>> {
    let response = http.get(format!("http://{addr}{JWKS}")).send().await?;
    anyhow::ensure!(response.status() == 200, "the JWKS answered {}", response.status());
    let set: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    let keys = set["keys"].as_array().ok_or_else(|| anyhow::anyhow!("a JWKS without keys"))?;
    Ok(keys.iter().filter_map(|k| k["kid"].as_str().map(str::to_owned)).collect())
}

/// [`measure`] on `auth_db` (the replicas') and `client_db` (the client's mirror).
async fn run(
    auth_bin: &Path,
    client_bin: &Path,
    auth_db: String,
    client_db: String,
    backend: &'static str,
    extra: &[(String, String)],
) -> anyhow::Result<Report> {
    // Both replicas at once on the fresh database: migrations and the first key race.
    let replicas = [free_port()?, free_port()?];
    let mut services = Vec::new();
    for addr in replicas {
        let mut env: Vec<(&str, String)> = REPLICA_ENV.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        env.push(("DATABASE_URL", auth_db.clone()));
        env.push(("BIND", addr.to_string()));
        services.push(Service { child: command(auth_bin, &env, extra).arg("serve").spawn()? });
    }
    for (addr, service) in replicas.iter().zip(services.iter_mut()) {
        wait_healthy(*addr, service).await?;
    }
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let first_jwks = [
        jwks_kids(&http, replicas[0]).await?.into_iter().collect(),
        jwks_kids(&http, replicas[1]).await?.into_iter().collect(),
    ];
    for i in 0..WORKERS {
        let mut add = command(auth_bin, &[("DATABASE_URL", auth_db.clone())], extra)
            .args(["users", "add", "--email", &email(i), "--password-stdin"])
            .stdin(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = add.stdin.take() {
            writeln!(stdin, "{PASSWORD}")?;
        }
        anyhow::ensure!(add.wait()?.success(), "auth-service users add failed");
    }
    let client_addr = free_port()?;
    let env = [
        ("DATABASE_URL", client_db),
        ("BIND", client_addr.to_string()),
        ("VERIFY_MODE", "local".to_owned()),
        // No SIGNING_KEY and no ALGORITHM (the algorithm of a shared secret): EdDSA tokens are
        // checked against this JWKS.
        ("JWK_URL", format!("http://{}{JWKS}", replicas[0])),
        ("REMOTE_AUTH_SERVICE_URL", format!("http://{}", replicas[0])),
        // Every request checks the signature against the client's current key set, not a cache
        // of tokens it already accepted.
        ("TOKEN_CACHE_MEMORY", "0".to_owned()),
    ];
    let mut client = Service { child: command(client_bin, &env, extra).arg("serve").spawn()? };
    wait_healthy(client_addr, &mut client).await?;

    let shared = Arc::new(Shared {
        http,
        replicas,
        api: format!("http://{client_addr}/api/test/"),
        start: unix_now(),
        stop: AtomicBool::new(false),
        ledger: Mutex::default(),
        jwks: Mutex::default(),
    });
    let started = Instant::now();
    let sampler = tokio::spawn(sample_jwks(shared.clone()));
    // The first sample before the first token.
    while shared.jwks.lock().unwrap_or_else(|p| p.into_inner()).samples == 0 {
        anyhow::ensure!(!sampler.is_finished(), "the JWKS sampler stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..WORKERS {
        workers.spawn(work(shared.clone(), i));
    }
    let mut tallies = Vec::new();
    while !shared.done() && started.elapsed() < CAP && !workers.is_empty() {
        if let Some(joined) = workers.try_join_next() {
            // A worker that ends before the stop has failed: its error ends the run.
            tallies.push(joined??);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let complete = shared.done();
    shared.stop.store(true, Ordering::Relaxed);
    let mut report = Report { backend, first_jwks, elapsed: started.elapsed(), complete, ..Report::default() };
    while let Some(joined) = workers.join_next().await {
        tallies.push(joined??);
    }
    for tally in tallies {
        report.requests += tally.requests;
        report.latencies.extend(tally.latencies);
        report.refused.extend(tally.refused);
        report.transport_errors += tally.transport_errors;
        report.refreshes += tally.refreshes;
        report.refused_refreshes.extend(tally.refused_refreshes);
        report.logins += tally.logins;
    }
    sampler.await?;
    drop(client);
    drop(services);

    let start = shared.start;
    let ledger = shared.ledger.lock().unwrap_or_else(|p| p.into_inner());
    let jwks = shared.jwks.lock().unwrap_or_else(|p| p.into_inner());
    report.samples = (jwks.samples, jwks.failures);
    let mut order = jwks.order.clone();
    order.extend(ledger.kids.keys().filter(|k| !jwks.kids.contains_key(*k)).cloned());
    for kid in order {
        let published = jwks.kids.get(&kid);
        let minted = ledger.kids.get(&kid);
        report.kids.push(Kid {
            in_jwks: published.map(|seen| seen.first - start),
            held_until: published.map(|seen| seen.held - start),
            left_jwks: published.and_then(|seen| seen.gone.map(|g| g - start)),
            first_token: minted.map(|m| m.first - start),
            last_token: minted.map(|m| m.last - start),
            last_access_exp: minted.and_then(|m| m.access_exp).map(|exp| exp as f64 - start),
            last_exp: minted.map(|m| m.exp as f64 - start),
            minted: minted.map_or([0, 0], |m| m.count),
            kid,
        });
    }
    report.refused.sort_by(|a, b| a.at.total_cmp(&b.at));
    Ok(report)
}

/// Reads replica A's JWKS every [`SAMPLE_EVERY`] until told to stop.
async fn sample_jwks(shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let kids = jwks_kids(&shared.http, shared.replicas[0]).await;
        let now = unix_now();
        {
            let mut jwks = shared.jwks.lock().unwrap_or_else(|p| p.into_inner());
            jwks.samples += 1;
            match kids {
                Ok(kids) => {
                    for kid in &kids {
                        if !jwks.kids.contains_key(kid) {
                            jwks.kids.insert(kid.clone(), Sighting { first: now, held: now, gone: None });
                            jwks.order.push(kid.clone());
                        }
                    }
                    for (kid, seen) in jwks.kids.iter_mut() {
                        match (seen.gone, kids.contains(kid)) {
                            (None, true) => seen.held = now,
                            (None, false) => seen.gone = Some(now),
                            (Some(_), _) => {}
                        }
                    }
                }
                Err(_) => jwks.failures += 1,
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// What one worker did.
#[derive(Default)]
struct Tally {
    requests: u64,
    latencies: Vec<Duration>,
    refused: Vec<Refusal>,
    transport_errors: u64,
    refreshes: u64,
    refused_refreshes: Vec<(Refusal, String)>,
    logins: u64,
}

/// `POST /auth/token/refresh/` at `addr`: the new `(access, refresh)`, or the refusal's status
/// and body.
async fn refresh(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
) -> anyhow::Result<Result<(String, String), (u16, String)>> {
    let url = format!("http://{addr}/auth/token/refresh/");
    let response = http.post(url).json(&serde_json::json!({"refresh": token})).send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    if status != 200 {
        return Ok(Err((status, String::from_utf8_lossy(&body).chars().take(160).collect())));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    match (v["access"].as_str(), v["refresh"].as_str()) {
        (Some(a), Some(r)) => Ok(Ok((a.to_owned(), r.to_owned()))),
        _ => anyhow::bail!("a refresh answer without both tokens"),
    }
}

/// Worker `i`: mints at replica `i % 2` by refresh (logging in again when a refresh is refused),
/// and sends the client the newest access token and [`OLDER_SAMPLE`] older live ones.
async fn work(shared: Arc<Shared>, i: usize) -> anyhow::Result<Tally> {
    let replica = i % 2;
    let addr = shared.replicas[replica];
    let mut tally = Tally::default();
    // xorshift64 for the sample, seeded per worker.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (i as u64 + 1);
    let mut pick = move |len: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % len as u64) as usize
    };
    // The refresh token held: token, kid, exp.
    let mut held: Option<(String, String, i64)> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let pair = match &held {
            Some((token, kid, exp)) => match refresh(&shared.http, addr, token).await? {
                Ok(pair) => Some(pair),
                Err((status, body)) => {
                    // Refused before its own expiry: the chain's end (its family's lifetime) or
                    // a key the replica did not know; the body says which.
                    if *exp > unix_now() as i64 + 1 {
                        tally
                            .refused_refreshes
                            .push((Refusal { at: unix_now() - shared.start, kid: kid.clone(), status }, body));
                    }
                    None
                }
            },
            None => None,
        };
        let (access, next) = match pair {
            Some(pair) => {
                tally.refreshes += 1;
                pair
            }
            None => {
                tally.logins += 1;
                load::login(addr, &email(i), PASSWORD).await?
            }
        };
        let (next_kid, next_exp) = shared.record(&next, false, replica)?;
        let (kid, _) = shared.record(&access, true, replica)?;
        held = Some((next, next_kid, next_exp));
        let mut round = vec![(access, kid)];
        round.extend(shared.sample(OLDER_SAMPLE, &mut pick));
        for (token, kid) in round {
            let sent = Instant::now();
            tally.requests += 1;
            match shared.http.get(&shared.api).bearer_auth(&token).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    drop(response.bytes().await);
                    tally.latencies.push(sent.elapsed());
                    if status != 200 {
                        tally.refused.push(Refusal { at: unix_now() - shared.start, kid, status });
                    }
                }
                Err(_) => tally.transport_errors += 1,
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
    Ok(tally)
}

fn at(t: Option<f64>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| format!("{t:+.1} s"))
}

/// Prints the report.
pub fn print(report: &Report) {
    let mut latencies = report.latencies.clone();
    latencies.sort();
    println!(
        "\nKey rotation under load: two auth-service replicas (EdDSA, {}, rotating by themselves), \
         a local-mode client-service on replica A's JWKS (release binaries)",
        report.backend
    );
    println!(
        "  replicas: {} (publication lead 12 s); client: TOKEN_CACHE_MEMORY=0",
        REPLICA_ENV
            .iter()
            .filter(|(k, _)| *k != "KEY_ENCRYPTION_KEY")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("  first JWKS: replica A {:?}, replica B {:?}", report.first_jwks[0], report.first_jwks[1]);
    println!(
        "  {:.1} s, {} workers: {} refreshes, {} logins; {} JWKS samples ({} failed)",
        report.elapsed.as_secs_f64(),
        WORKERS,
        report.refreshes,
        report.logins,
        report.samples.0,
        report.samples.1
    );
    println!(
        "  client requests {} (newest token + {} older live ones per round): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         {} without an answer",
        report.requests,
        OLDER_SAMPLE,
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        report.transport_errors
    );
    println!("  refused valid tokens: {}", report.refused.len());
    for r in report.refused.iter().take(10) {
        println!("    {:+.1} s kid {} status {}", r.at, r.kid, r.status);
    }
    println!("  refreshes refused before the refresh token's exp: {}", report.refused_refreshes.len());
    for (r, body) in report.refused_refreshes.iter().take(10) {
        println!("    {:+.1} s kid {} status {} {}", r.at, r.kid, r.status, body);
    }
    println!(
        "\n  {:<18} {:>9} {:>12} {:>11} {:>11} {:>12} {:>16} {:>14}",
        "kid", "in JWKS", "first token", "last token", "access exp", "any exp", "left JWKS", "access A / B"
    );
    let exp = |t: Option<f64>| t.map_or_else(|| "-".to_owned(), |t| format!("{t:+.2}"));
    for k in &report.kids {
        let minted = format!("{} / {}", k.minted[0], k.minted[1]);
        let left = match (k.held_until, k.left_jwks) {
            (Some(held), Some(gone)) => format!("{held:+.2}..{gone:+.2}"),
            _ => "-".to_owned(),
        };
        println!(
            "  {:<18} {:>9} {:>12} {:>11} {:>11} {:>12} {:>16} {:>14}",
            k.kid,
            at(k.in_jwks),
            at(k.first_token),
            at(k.last_token),
            exp(k.last_access_exp),
            exp(k.last_exp),
            left,
            minted
        );
    }
    println!(
        "  (seconds from the loop's start; exp: the latest of the access tokens, of any token (refresh tokens \
         included); replica A's JWKS sampled every 250 ms: \"left\" is between the last sample holding the \
         key and the first without it)"
    );
    let line = |name: &str, met: bool| println!("  {:<80} {}", name, if met { "met" } else { "MISSED" });
    println!("\nChecks");
    line("both replicas started on one first key", report.one_first_key());
    line("two rotations (three kids minted) and the first key unpublished within 150 s", report.complete);
    line("no valid token refused", report.refused.is_empty());
    line("every kid was in the JWKS before its first token", report.published_first());
    line("each retired key left the JWKS only after its last token expired", report.unpublished_after_expiry(false));
    line("  ... after its last access token expired (what the client checks)", report.unpublished_after_expiry(true));
}
