//! The scenarios of `loadtest` and the table they print, each compared with its target in
//! DESIGN.md ("Targets").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;
use shared_user::TokenType;
use tokio::runtime::Runtime;

use crate::load::{self, Limits, Outcome, Payload, Target};
use crate::setup::{self, EMAIL, PASSWORD};

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Everything below.
    All,
    /// `GET /bare`: bare axum vs behind the client layer (local, remote) and the demo route.
    Client,
    /// Only `GET /bare` behind the local-mode layer (for profiling).
    Local,
    /// `POST /auth/token/verify/` at saturation (HS256).
    Verify,
    /// `POST /auth/token/` at saturation, verify latency sampled meanwhile.
    Login,
    /// `POST /auth/token/refresh/` with rotation (PostgreSQL with --postgres, else SQLite).
    Refresh,
    /// Many distinct users (`--users`) against the release binaries: cold pass, steady pass,
    /// client RSS (not part of `all`).
    Users,
    /// The shared listener at its default limits while one address holds its whole share with
    /// silent connections: what others see, when the silent ones are closed (not part of `all`;
    /// lasts the default HEADER_READ_TIMEOUT and then some).
    Listener,
    /// Abuse resistance (not part of `all`): `GET /auth/sessions/` of a user at the session cap
    /// with a long history of ended sessions, and a locked address sending a new email per
    /// request (what it costs, and what it writes).
    Abuse,
    /// Remote verify through a client over TLS vs plain HTTP, interleaved (`--rounds`), and new
    /// TLS connections per second to a listener on one thread (not part of `all`).
    Tls,
    /// Revocations pushed (not part of `all`): logout-all -> a long-polling local-mode client's
    /// first 401, `--rounds` times (default here 200), then `--waiters` long polls of the feed
    /// at once (the auth-service's memory, and one revocation's fan-out), release binaries.
    Push,
    /// Key rotation under load (not part of `all`): two auth-service replicas on one fresh
    /// database (PostgreSQL with --postgres, else SQLite) rotating EdDSA keys by themselves, a
    /// local-mode client on the JWKS, until two rotations are done; no valid token may be
    /// refused. Release binaries; lasts about a minute.
    Rotation,
    /// Data scale (not part of `all`, issue #26): the release auth-service on a fresh database
    /// (PostgreSQL with --postgres, else SQLite) empty and then filled in bulk with `--users`,
    /// `--refresh-records` and `--audit-events`; start-up, RSS, and p50/p99 of each request at
    /// 1 and 8 connections side by side, the plans of the queries that grow, and refreshes
    /// during a `purge-tokens` of --refresh-records / 5 expired records.
    Scale,
    /// None (with --rss: only the memory measurement).
    None,
}

/// Gatehouse load harness: in-process services on 127.0.0.1, bounded load, req/s and latency.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", version, about)]
pub struct Options {
    /// Measured seconds per scenario (after the warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent connections (one closed-loop worker each).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// Request budget per scenario (the loop also stops at the deadline).
    #[arg(long, default_value_t = 5_000_000)]
    pub max_requests: u64,
    /// Unmeasured warm-up per scenario, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Repeat the bare/local/remote comparison this many times, interleaved, and report the
    /// round with the median req/s per row (steadier on a shared machine).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// PostgreSQL server for the refresh, users, rotation and scale scenarios (a fresh database is
    /// created on it and dropped after), e.g. postgres://postgres@127.0.0.1:5432/postgres. Loopback only.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Also run the release binaries as child processes and report their idle and peak RSS.
    #[arg(long)]
    pub rss: bool,
    /// Extra `KEY=VALUE` environment for the --rss child processes (repeatable), e.g.
    /// `MALLOC_ARENA_MAX=2` to see how the allocator shapes resident memory.
    #[arg(long = "child-env", value_parser = parse_key_value)]
    pub child_env: Vec<(String, String)>,
    /// Extra `auth-service serve` flag for the in-process auth-service (repeatable), e.g.
    /// `--auth-arg=--hash-concurrency=1`.
    #[arg(long = "auth-arg", allow_hyphen_values = true)]
    pub auth_args: Vec<String>,
    /// Where `auth-service` and `client-service` are (default: next to this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Worker threads of the services' runtime (default: cores).
    #[arg(long)]
    pub server_threads: Option<usize>,
    /// Worker threads of the load generator's runtime (default: cores).
    #[arg(long)]
    pub load_threads: Option<usize>,
    /// Metrics on: the Prometheus recorder installed (the client's `metrics::router()` mounted,
    /// the auth-service with `METRICS=true`). Off (default): no recorder, `METRICS=false`. The
    /// routers are the same either way (the `local` scenario has a plain and an instrumented
    /// local-mode row), so two runs compare recording alone. The recorder is process-wide.
    #[arg(long)]
    pub metrics: bool,
    /// Populations of the `users` scenario (comma-separated; default 1000,20000,100000), each
    /// run on fresh databases and fresh processes: SQLite, or PostgreSQL for both services with
    /// --postgres. The `scale` scenario takes one number (default 1000000).
    #[arg(long, value_delimiter = ',')]
    pub users: Vec<usize>,
    /// Refresh-token records of the `scale` scenario's filled database.
    #[arg(long, default_value_t = 10_000_000)]
    pub refresh_records: u64,
    /// Audit events of the `scale` scenario's filled database.
    #[arg(long, default_value_t = 5_000_000)]
    pub audit_events: u64,
    /// `users` with --postgres: keep the auth-service on SQLite (only the mirror on PostgreSQL).
    #[arg(long)]
    pub auth_sqlite: bool,
    /// Long polls of the feed held open at once in the `push` scenario.
    #[arg(long, default_value_t = 1000)]
    pub waiters: usize,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl Options {
    fn limits(&self, connections: usize) -> Limits {
        Limits {
            connections,
            duration: Duration::from_secs(self.seconds.max(1)),
            max_requests: self.max_requests,
            warmup: Duration::from_secs_f64(self.warmup.max(0.0)),
            pace: None,
        }
    }

    fn wants(&self, s: Scenario) -> bool {
        (self.scenario == Scenario::All
            && !matches!(
                s,
                Scenario::Users
                    | Scenario::Listener
                    | Scenario::Abuse
                    | Scenario::Tls
                    | Scenario::Push
                    | Scenario::Rotation
                    | Scenario::Scale
            ))
            || self.scenario == s
    }
}

/// One printed line.
struct Row {
    name: String,
    connections: usize,
    outcome: Outcome,
}

/// Interval between verify samples while logins saturate the CPU.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// Runs the selected scenarios: services on `servers`, load on `loadgen`.
pub fn run(options: &Options, servers: &Runtime, loadgen: &Runtime) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    println!(
        "loadtest: {cores} cores, services on {} server threads, load on {} loadgen threads (same cores), \
         {} s measured + {} s warm-up per scenario, {} connections",
        options.server_threads.unwrap_or(cores),
        options.load_threads.unwrap_or(cores),
        options.seconds,
        options.warmup,
        options.connections
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average before: {}", load.trim());
    }
    if options.scenario == Scenario::Users {
        return users_rows(options, loadgen);
    }
    if options.scenario == Scenario::Scale {
        let users = match options.users.as_slice() {
            [] => 1_000_000,
            [n] => *n as u64,
            _ => anyhow::bail!("--scenario scale takes one --users number"),
        };
        let sizes =
            crate::scale::Sizes { users, refresh_records: options.refresh_records, audit_events: options.audit_events };
        let bin_dir = options.bin_dir.clone().unwrap_or_else(crate::rss::default_bin_dir);
        let report = loadgen.block_on(crate::scale::measure(
            &bin_dir,
            options.postgres.as_deref(),
            sizes,
            options.limits(1),
            &options.child_env,
        ))?;
        crate::scale::print(&report);
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            println!("load average after: {}", load.trim());
        }
        return Ok(());
    }
    if options.scenario == Scenario::Listener {
        let report = crate::listener::measure(options.connections, options.seconds, options.warmup, servers, loadgen)?;
        crate::listener::print(&report, options.connections);
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            println!("load average after: {}", load.trim());
        }
        return Ok(());
    }
    if options.scenario == Scenario::Tls {
        let report = crate::tls::measure(options.limits(options.connections), options.rounds, servers, loadgen)?;
        crate::tls::print(&report, options.connections);
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            println!("load average after: {}", load.trim());
        }
        return Ok(());
    }
    if options.scenario == Scenario::Push {
        let bin_dir = options.bin_dir.clone().unwrap_or_else(crate::rss::default_bin_dir);
        let rounds = if options.rounds > 1 { options.rounds } else { 200 };
        let report = loadgen.block_on(crate::push::measure(&bin_dir, rounds, options.waiters, &options.child_env))?;
        crate::push::print(&report);
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            println!("load average after: {}", load.trim());
        }
        return Ok(());
    }
    if options.scenario == Scenario::Rotation {
        let bin_dir = options.bin_dir.clone().unwrap_or_else(crate::rss::default_bin_dir);
        let report =
            loadgen.block_on(crate::rotation::measure(&bin_dir, options.postgres.as_deref(), &options.child_env))?;
        crate::rotation::print(&report);
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            println!("load average after: {}", load.trim());
        }
        anyhow::ensure!(report.refused.is_empty(), "{} valid tokens refused", report.refused.len());
        anyhow::ensure!(report.complete, "two rotations were not done within the run");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let key = setup::signing_key();
    let settings = if options.auth_args.is_empty() {
        setup::auth_settings(&key)
    } else {
        println!("auth-service flags: {}", options.auth_args.join(" "));
        let extra: Vec<&str> = options.auth_args.iter().map(String::as_str).collect();
        setup::auth_settings_with_flags(&key, &extra)?
    };
    if options.metrics {
        println!("metrics on: Prometheus recorder installed");
    }
    let settings =
        auth_service::Settings { revocation_feed_token: Some(FEED_TOKEN.into()), metrics: options.metrics, ..settings };

    let env = servers.block_on(async {
        let (auth, user_id) =
            setup::auth_state(&settings, setup::sqlite(dir.path(), "auth.db", 10, auth_service::MIGRATIONS).await?)
                .await?;
        let access = auth.keys.mint(TokenType::Access, user_id)?.token;
        let auth_addr = setup::serve(auth_service::app(auth.clone())).await?;
        let auth_url = format!("http://{auth_addr}");
        let local = setup::client_state(
            &auth_url,
            Some(&key),
            setup::sqlite(dir.path(), "local.db", 8, client_service::MIGRATIONS).await?,
        )?;
        let remote = setup::client_state(
            &auth_url,
            None,
            setup::sqlite(dir.path(), "remote.db", 8, client_service::MIGRATIONS).await?,
        )?;
        let demo = setup::client_state(
            &auth_url,
            Some(&key),
            setup::sqlite(dir.path(), "demo.db", 8, client_service::MIGRATIONS).await?,
        )?;
        let uncached = setup::client_state_with(
            &auth_url,
            Some(&key),
            setup::sqlite(dir.path(), "uncached.db", 8, client_service::MIGRATIONS).await?,
            |config| config.token_cache_memory(0),
        )?;
        // Watermarks for other users, so the feed-on row really looks its user up in a filled map.
        for other in 0..REVOKED_USERS {
            let event = auth_service::audit::AuditEvent::new(auth_service::audit::AuditKind::LogoutAll);
            auth.store.revoke_everything(1_000_000 + other, auth_service::store::watermark_now(), &event).await?;
        }
        let revoking = setup::client_state_with(
            &auth_url,
            Some(&key),
            setup::sqlite(dir.path(), "revoking.db", 8, client_service::MIGRATIONS).await?,
            |config| config.revocation_feed(FEED_TOKEN),
        )?;
        let poll_deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(revoking.revocation_status(), client_service::RevocationStatus::Live { .. }) {
            anyhow::ensure!(Instant::now() < poll_deadline, "the revocation feed was never polled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::ensure!(
            matches!(revoking.revocation_status(), client_service::RevocationStatus::Live { users, .. } if users >= REVOKED_USERS as usize),
            "the watermarks did not arrive"
        );
        anyhow::Ok(Env {
            revoking: setup::serve(setup::protected_router(revoking)).await?,
            bare: setup::serve(setup::bare_router()).await?,
            local: setup::serve(setup::protected_router(local.clone())).await?,
            instrumented: setup::serve(client_service::instrument(if options.metrics {
                setup::protected_router(local).merge(client_service::metrics::router())
            } else {
                setup::protected_router(local)
            }))
            .await?,
            remote: setup::serve(setup::protected_router(remote)).await?,
            demo: setup::serve(client_service::demo::app(demo)).await?,
            uncached: setup::serve(setup::protected_router(uncached)).await?,
            auth_addr,
            auth,
            access,
            argon2: {
                let h = &settings.hashing;
                (h.argon2_memory_kib, h.argon2_iterations, h.argon2_parallelism)
            },
        })
    })?;

    let mut rows = Vec::new();
    let mut checks = Vec::new();
    if options.wants(Scenario::Client) {
        client_rows(options, loadgen, &env, &mut rows, &mut checks)?;
    }
    if options.scenario == Scenario::Local {
        for (name, addr) in [
            ("GET /bare + RequireAuthLayer, local", env.local),
            ("GET /bare + RequireAuthLayer, local, instrumented", env.instrumented),
        ] {
            let target = Target::get(addr, "/bare", Some(&env.access));
            let o = loadgen.block_on(load::run(target, options.limits(options.connections)))?;
            rows.push(Row { name: name.into(), connections: options.connections, outcome: o });
        }
    }
    if options.wants(Scenario::Verify) {
        let target = Target::post_json(env.auth_addr, "/auth/token/verify/", &json!({"token": env.access}));
        let o = loadgen.block_on(load::run(target, options.limits(options.connections)))?;
        checks.push(Check::at_least("verify HS256 req/s", o.rps(), 30_000.0, "req/s"));
        rows.push(Row {
            name: "POST /auth/token/verify/ (HS256)".into(),
            connections: options.connections,
            outcome: o,
        });
    }
    if options.wants(Scenario::Login) {
        login_rows(options, servers, loadgen, &env, cores, &mut rows, &mut checks)?;
    }
    if options.wants(Scenario::Refresh) {
        refresh_rows(options, servers, loadgen, &env, &settings, &mut rows)?;
    }
    if options.wants(Scenario::Abuse) {
        abuse_rows(options, servers, loadgen, &env, &mut rows, &mut checks)?;
    }

    if !rows.is_empty() {
        print_rows(&rows);
    }
    if options.rss {
        let bin_dir = options.bin_dir.clone().unwrap_or_else(crate::rss::default_bin_dir);
        let burst = Duration::from_secs(options.seconds.clamp(1, 5));
        let report = loadgen.block_on(crate::rss::measure(&bin_dir, burst, options.connections, &options.child_env))?;
        print_rss(&report);
        checks.push(Check::at_most("auth-service idle RSS", kib_to_mb(report.auth.idle.rss_kib), 30.0, "MiB"));
        checks.push(Check::at_most("client-service idle RSS", kib_to_mb(report.client.idle.rss_kib), 30.0, "MiB"));
    }
    if !checks.is_empty() {
        println!("\nTargets (DESIGN.md)");
        for c in &checks {
            println!(
                "  {:<44} {:>12.1} {:<6} target {} {:<10} {}",
                c.name,
                c.value,
                c.unit,
                if c.at_least { ">=" } else { "<" },
                c.target,
                if c.met() { "met" } else { "MISSED" }
            );
        }
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average after: {}", load.trim());
    }
    Ok(())
}

struct Env {
    auth: auth_service::AppState,
    auth_addr: std::net::SocketAddr,
    access: String,
    bare: std::net::SocketAddr,
    local: std::net::SocketAddr,
    /// The same layer inside `client_service::instrument` (request ids, access log, HTTP
    /// metrics when a recorder is installed).
    instrumented: std::net::SocketAddr,
    remote: std::net::SocketAddr,
    demo: std::net::SocketAddr,
    /// Local mode with the verified-token cache off: every request checks the signature.
    uncached: std::net::SocketAddr,
    /// argon2id memory KiB, iterations, parallelism in force.
    argon2: (u32, u32, u32),
    /// Local mode polling the revocation feed (every 2 s), with watermarks for other users.
    revoking: std::net::SocketAddr,
}

/// `REVOCATION_FEED_TOKEN` of the load-test pair.
const FEED_TOKEN: &str = "loadtest-feed-token-0123456789";
/// Users with a watermark when the feed-on row runs.
const REVOKED_USERS: i64 = 200;

struct Check {
    name: &'static str,
    value: f64,
    target: f64,
    unit: &'static str,
    at_least: bool,
}

impl Check {
    fn at_least(name: &'static str, value: f64, target: f64, unit: &'static str) -> Self {
        Self { name, value, target, unit, at_least: true }
    }

    fn at_most(name: &'static str, value: f64, target: f64, unit: &'static str) -> Self {
        Self { name, value, target, unit, at_least: false }
    }

    fn met(&self) -> bool {
        if self.at_least { self.value >= self.target } else { self.value < self.target }
    }
}

fn median_by_rps(mut outcomes: Vec<Outcome>) -> Outcome {
    outcomes.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
    outcomes.swap_remove(outcomes.len() / 2)
}

fn client_rows(
    options: &Options,
    loadgen: &Runtime,
    env: &Env,
    rows: &mut Vec<Row>,
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let c = options.connections;
    let targets = [
        ("GET /bare, bare axum", Target::get(env.bare, "/bare", None)),
        ("GET /bare + RequireAuthLayer, local", Target::get(env.local, "/bare", Some(&env.access))),
        ("GET /bare + RequireAuthLayer, remote", Target::get(env.remote, "/bare", Some(&env.access))),
        (
            "GET /bare + RequireAuthLayer, local, TOKEN_CACHE_MEMORY=0",
            Target::get(env.uncached, "/bare", Some(&env.access)),
        ),
        (
            "GET /bare + RequireAuthLayer, local, revocation feed on",
            Target::get(env.revoking, "/bare", Some(&env.access)),
        ),
    ];
    // Saturation (C connections) for throughput; one connection for the latency a request
    // really gains (at saturation p50 is mostly queueing: C / throughput).
    let loads = [c, 1];
    let mut results = vec![vec![Vec::new(); loads.len()]; targets.len()];
    for _ in 0..options.rounds.max(1) {
        for (i, (_, target)) in targets.iter().enumerate() {
            for (j, &n) in loads.iter().enumerate() {
                results[i][j].push(loadgen.block_on(load::run(target.clone(), options.limits(n)))?);
            }
        }
    }
    let results: Vec<Vec<Outcome>> =
        results.into_iter().map(|per_load| per_load.into_iter().map(median_by_rps).collect()).collect();
    let demo =
        loadgen.block_on(load::run(Target::get(env.demo, "/api/test/", Some(&env.access)), options.limits(c)))?;
    let (bare, local) = (&results[0], &results[1]);
    checks.push(Check::at_most(
        "local layer: added p50 over bare (1 conn)",
        local[1].p50_us() - bare[1].p50_us(),
        20.0,
        "µs",
    ));
    checks.push(Check::at_least(
        "local layer: throughput vs bare (C conns)",
        100.0 * local[0].rps() / bare[0].rps(),
        80.0,
        "%",
    ));
    let revoking = &results[4];
    checks.push(Check::at_least(
        "revocation feed on: throughput vs local (C conns)",
        100.0 * revoking[0].rps() / local[0].rps(),
        95.0,
        "%",
    ));
    for (j, &n) in loads.iter().enumerate() {
        for (i, (name, _)) in targets.iter().enumerate() {
            rows.push(Row { name: (*name).to_owned(), connections: n, outcome: results[i][j].clone() });
        }
    }
    rows.push(Row { name: "GET /api/test/ demo::app (extractor), local".into(), connections: c, outcome: demo });
    Ok(())
}

fn login_rows(
    options: &Options,
    servers: &Runtime,
    loadgen: &Runtime,
    env: &Env,
    cores: usize,
    rows: &mut Vec<Row>,
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    // The argon2 bound, measured now: one check of the seeded user's hash (what a login costs)
    // at a time, through the service's own hasher; then `cores` checks at once for 3 s, which
    // shows what parallel hashing really gets on this machine (memory bandwidth, neighbours).
    let stored = servers.block_on(env.auth.store.find_by_email(EMAIL))?.map(|c| c.password_hash);
    let hash_time = servers.block_on(async {
        let mut times = Vec::new();
        for i in 0..10 {
            let start = Instant::now();
            let checked = env.auth.hasher.check(PASSWORD.into(), stored.clone()).await?;
            anyhow::ensure!(checked.ok, "seeded password does not check");
            if i > 0 {
                times.push(start.elapsed());
            }
        }
        times.sort();
        anyhow::Ok(times[times.len() / 2])
    })?;
    let bound = cores as f64 / hash_time.as_secs_f64();
    let parallel = servers.block_on(async {
        let until = Instant::now() + Duration::from_secs(3);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..cores {
            let (hasher, stored) = (env.auth.hasher.clone(), stored.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u32;
                while Instant::now() < until {
                    hasher.check(PASSWORD.into(), stored.clone()).await?;
                    n += 1;
                }
                anyhow::Ok(n)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await??;
        }
        anyhow::Ok(f64::from(total) / start.elapsed().as_secs_f64())
    })?;

    let verify = Target::post_json(env.auth_addr, "/auth/token/verify/", &json!({"token": env.access}));
    let sampled = Limits { pace: Some(SAMPLE_EVERY), ..options.limits(1) };
    let idle = loadgen.block_on(load::run(verify.clone(), sampled))?;

    let login = Target::post_json(env.auth_addr, "/auth/token/", &json!({"email": EMAIL, "password": PASSWORD}));
    let (logins, mut under) = loadgen.block_on(async {
        let (l, v) = tokio::join!(load::run(login, options.limits(options.connections)), load::run(verify, sampled));
        anyhow::Ok((l?, v?))
    })?;
    // A login that rehashes (parameters changed) would cost two hashes: say whether it did.
    let stored_after = servers.block_on(env.auth.store.find_by_email(EMAIL))?.map(|c| c.password_hash);
    let rehashed = if stored_after == stored { "no" } else { "YES" };
    // CPU of the paced samplers says nothing per request (mostly idle, or the logins' CPU).
    let mut idle = idle;
    idle.server_cpu = None;
    under.server_cpu = None;
    println!(
        "argon2 (OWASP m={} KiB t={} p={}): one check {:.1} ms -> bound {cores} cores / {:.1} ms = {bound:.1} logins/s; \
         {cores} checks at once: {parallel:.1} checks/s; measured {:.1} logins/s = {:.1} % of the bound, \
         {:.1} % of the parallel check rate; stored hash rewritten during the run: {rehashed}",
        env.argon2.0,
        env.argon2.1,
        env.argon2.2,
        hash_time.as_secs_f64() * 1e3,
        hash_time.as_secs_f64() * 1e3,
        logins.rps(),
        100.0 * logins.rps() / bound,
        100.0 * logins.rps() / parallel
    );
    checks.push(Check::at_least("login throughput vs argon2 bound", 100.0 * logins.rps() / bound, 85.0, "%"));
    checks.push(Check::at_most("verify p99 under login load", under.p99_us() / 1000.0, 5.0, "ms"));
    let every = SAMPLE_EVERY.as_millis();
    rows.push(Row { name: format!("verify sampled every {every} ms, idle"), connections: 1, outcome: idle });
    rows.push(Row {
        name: "POST /auth/token/ (login, argon2id)".into(),
        connections: options.connections,
        outcome: logins,
    });
    rows.push(Row { name: format!("verify sampled every {every} ms, under login"), connections: 1, outcome: under });
    Ok(())
}

fn refresh_rows(
    options: &Options,
    servers: &Runtime,
    loadgen: &Runtime,
    env: &Env,
    settings: &auth_service::Settings,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let c = options.connections;
    let (addr, label, pg) = match &options.postgres {
        Some(admin) => servers.block_on(async {
            let pg = setup::PgDatabase::create(admin).await?;
            let run = async {
                let db = shared_user::Db::connect(&pg.url, 10).await?;
                auth_service::migrate(&db).await?;
                let (state, _) = setup::auth_state(settings, db).await?;
                setup::serve(auth_service::app(state)).await
            };
            match run.await {
                Ok(addr) => anyhow::Ok((addr, "PostgreSQL", Some(pg))),
                Err(e) => {
                    let _ = pg.drop_now().await;
                    Err(e)
                }
            }
        })?,
        None => (env.auth_addr, "SQLite", None),
    };
    let result = (|| {
        // One refresh chain per connection, each from its own login.
        let tokens = loadgen.block_on(async {
            let mut tokens = Vec::with_capacity(c);
            for _ in 0..c {
                tokens.push(load::login(addr, EMAIL, PASSWORD).await?.1);
            }
            anyhow::Ok(tokens)
        })?;
        let target = Target {
            payload: Payload::RefreshChain(std::sync::Arc::new(tokens)),
            ..Target::post_json(addr, "/auth/token/refresh/", &json!({}))
        };
        loadgen.block_on(load::run(target, options.limits(c)))
    })();
    if let Some(pg) = pg {
        servers.block_on(pg.drop_now())?;
    }
    rows.push(Row { name: format!("POST /auth/token/refresh/ rotating, {label}"), connections: c, outcome: result? });
    Ok(())
}

/// The `users` scenario: one fresh pair of binaries per population, printed as it finishes.
fn users_rows(options: &Options, loadgen: &Runtime) -> anyhow::Result<()> {
    let bin_dir = options.bin_dir.clone().unwrap_or_else(crate::rss::default_bin_dir);
    let backend = match (&options.postgres, options.auth_sqlite) {
        (None, _) => "SQLite",
        (Some(_), true) => "mirror on PostgreSQL, auth-service on SQLite",
        (Some(_), false) => "PostgreSQL",
    };
    println!(
        "\nMany users: auth-service and client-service release binaries, {backend}, local HS256 verification, \
         GET /api/test/ with one token per user in turn"
    );
    println!(
        "{:>8} {:<7} {:>10} {:>10} {:>10} {:>7} {:>12} {:>10} {:>10} {:>11} {:>11}",
        "users",
        "pass",
        "req/s",
        "p50 µs",
        "p99 µs",
        "errors",
        "vs /healthz",
        "RSS MiB",
        "peak MiB",
        "auth CPU µs",
        "client µs"
    );
    let mut checks = Vec::new();
    let populations = if options.users.is_empty() { vec![1_000, 20_000, 100_000] } else { options.users.clone() };
    for &n in &populations {
        let r = loadgen.block_on(crate::users::run(
            &bin_dir,
            n,
            options.postgres.as_deref(),
            options.auth_sqlite,
            options.connections,
            options.seconds,
            &options.child_env,
        ))?;
        let line = |pass: &str, o: &Outcome, rss: Option<&crate::rss::Memory>, cpu: Option<(f64, f64)>| {
            let ratio =
                if pass == "healthz" { String::new() } else { format!("{:.1} %", 100.0 * o.rps() / r.healthz.rps()) };
            println!(
                "{:>8} {:<7} {:>10.0} {:>10.1} {:>10.1} {:>7} {:>12} {:>10} {:>10} {:>11} {:>11}",
                n,
                pass,
                o.rps(),
                o.p50_us(),
                o.p99_us(),
                o.errors,
                ratio,
                rss.map(|m| format!("{:.1}", kib_to_mb(m.rss_kib))).unwrap_or_default(),
                rss.map(|m| format!("{:.1}", kib_to_mb(m.hwm_kib))).unwrap_or_default(),
                cpu.map(|c| format!("{:.1}", c.0)).unwrap_or_default(),
                cpu.map(|c| format!("{:.1}", c.1)).unwrap_or_default(),
            );
        };
        line("healthz", &r.healthz, None, None);
        line("cold", &r.cold, Some(&r.rss_cold), Some(r.cold_cpu_us()));
        line("steady", &r.steady, Some(&r.rss_steady), Some(r.steady_cpu_us()));
        println!("{:>8} cold means: {}", "", r.cold_breakdown);
        if n == populations.iter().copied().max().unwrap_or(n) {
            checks.push(Check::at_least(
                "steady vs /healthz, most users",
                100.0 * r.steady.rps() / r.healthz.rps(),
                50.0,
                "%",
            ));
            checks.push(Check::at_most("steady p99, most users", r.steady.p99_us() / 1000.0, 5.0, "ms"));
            checks.push(Check::at_least("cold: new users/s", r.cold.rps(), 5_000.0, "/s"));
            // #16 asked 100 MB for 100,000 users; #26 item 4 asks 256 MB (244 MiB) for a million.
            let rss_target = if n >= 1_000_000 { 256e6 / f64::from(1u32 << 20) } else { 100.0 };
            checks.push(Check::at_most(
                "client peak RSS, most users",
                kib_to_mb(r.rss_steady.hwm_kib),
                rss_target,
                "MiB",
            ));
        }
    }
    println!("\nTargets (#16 up to 100,000 users, #26 item 4 from 1,000,000)");
    for c in &checks {
        println!(
            "  {:<44} {:>12.1} {:<6} target {} {:<10} {}",
            c.name,
            c.value,
            c.unit,
            if c.at_least { ">=" } else { "<" },
            c.target,
            if c.met() { "met" } else { "MISSED" }
        );
    }
    Ok(())
}

/// Logins of the seeded user before the session list is measured: the cap's worth live, the
/// rest ended by the cap (their refresh records stay until they expire).
const ABUSE_LOGINS: usize = 2_000;
/// Distinct emails a locked address sends, one per request, in turn.
const LOCKED_EMAILS: usize = 10_000;

/// Rows of `login_throttle`, and `throttled` audit events, in the auth-service's database.
fn throttle_rows(servers: &Runtime, env: &Env) -> anyhow::Result<(i64, usize)> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    servers.block_on(async {
        let db = env.auth.store.db();
        let counters: Result<i64, shared_user::DbError> = shared_user::with_conn!(db, |conn| {
            Ok(auth_service::schema::login_throttle::table.count().get_result(conn).await?)
        });
        let filter = auth_service::store::audit::AuditFilter {
            kind: Some("throttled".into()),
            limit: 1000,
            ..Default::default()
        };
        anyhow::Ok((counters?, env.auth.store.list_audit(&filter).await?.len()))
    })
}

fn abuse_rows(
    options: &Options,
    servers: &Runtime,
    loadgen: &Runtime,
    env: &Env,
    rows: &mut Vec<Row>,
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    // The session list at the cap: sessions opened as a login opens them (no password check).
    let cap = env.auth.settings.session_cap();
    let (access, live) = servers.block_on(async {
        let user = env.auth.store.find_by_email(EMAIL).await?.ok_or_else(|| anyhow::anyhow!("no seeded user"))?.user;
        let mut access = String::new();
        for _ in 0..ABUSE_LOGINS {
            access = auth_service::service::start_session(&env.auth, user.clone()).await?.access.token;
        }
        anyhow::Ok((access, env.auth.store.live_sessions(user.id).await?.len()))
    })?;
    println!(
        "sessions: {ABUSE_LOGINS} logins of one user with MAX_SESSIONS_PER_USER={}: {live} live",
        cap.map_or_else(|| "0 (no cap)".to_owned(), |c| c.to_string())
    );
    let list = Target::get(env.auth_addr, "/auth/sessions/", Some(&access));
    for connections in [options.connections, 1] {
        let o = loadgen.block_on(load::run(list.clone(), options.limits(connections)))?;
        if connections == 1 {
            checks.push(Check::at_most("session list p99 at the cap (1 conn)", o.p99_us() / 1000.0, 20.0, "ms"));
        }
        rows.push(Row { name: format!("GET /auth/sessions/ ({live} live)"), connections, outcome: o });
    }

    // A locked address: lock the load generator's address (127.0.0.1) by spraying accounts, then
    // send a new email per request.
    servers.block_on(async {
        for i in 0..env.auth.throttle.ip.threshold {
            let body = json!({"email": format!("spray{i}@example.com"), "password": "guess"});
            load::request_once(&Target::post_json(env.auth_addr, "/auth/token/", &body)).await?;
        }
        anyhow::Ok(())
    })?;
    let before = throttle_rows(servers, env)?;
    let bodies: Vec<bytes::Bytes> = (0..LOCKED_EMAILS)
        .map(|i| {
            bytes::Bytes::from(json!({"email": format!("locked{i}@example.com"), "password": "guess"}).to_string())
        })
        .collect();
    let locked = Target {
        payload: load::Payload::JsonRotation(bodies.into()),
        expect: hyper::StatusCode::TOO_MANY_REQUESTS,
        ..Target::post_json(env.auth_addr, "/auth/token/", &json!({}))
    };
    let o = loadgen.block_on(load::run(locked, options.limits(options.connections)))?;
    let after = throttle_rows(servers, env)?;
    println!(
        "locked address: {} refused requests (a new email each) added {} login_throttle rows and {} throttled events",
        o.ok + o.errors,
        after.0 - before.0,
        after.1.saturating_sub(before.1)
    );
    rows.push(Row {
        name: "POST /auth/token/ from a locked address (429)".into(),
        connections: options.connections,
        outcome: o,
    });
    Ok(())
}

fn print_rows(rows: &[Row]) {
    let bare_at = |connections: usize| {
        rows.iter().find(|r| r.name.contains("bare axum") && r.connections == connections).map(|r| &r.outcome)
    };
    println!(
        "\n{:<48} {:>5} {:>10} {:>10} {:>10} {:>7} {:>8} {:>10} {:>11}",
        "scenario", "conns", "req/s", "p50 µs", "p99 µs", "errors", "vs bare", "+p50 µs", "srv CPU µs"
    );
    for r in rows {
        let o = &r.outcome;
        let (ratio, added) = match (bare_at(r.connections), r.name.starts_with("GET ")) {
            (Some(b), true) => {
                (format!("{:.1} %", 100.0 * o.rps() / b.rps()), format!("{:+.1}", o.p50_us() - b.p50_us()))
            }
            _ => (String::new(), String::new()),
        };
        let cpu = o.server_cpu_us_per_request().map(|c| format!("{c:.1}")).unwrap_or_default();
        println!(
            "{:<48} {:>5} {:>10.0} {:>10.1} {:>10.1} {:>7} {:>8} {:>10} {:>11}",
            r.name,
            r.connections,
            o.rps(),
            o.p50_us(),
            o.p99_us(),
            o.errors,
            ratio,
            added,
            cpu
        );
    }
}

fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_rss(report: &crate::rss::Report) {
    println!("\nResident memory of the release binaries (MiB; SQLite files, local verification)");
    println!(
        "{:<16} {:>10} {:>14} {:>14} {:>16}",
        "service", "idle RSS", "after burst", "peak (HWM)", "2 s after burst"
    );
    for (name, m) in [("auth-service", report.auth), ("client-service", report.client)] {
        println!(
            "{:<16} {:>10.1} {:>14.1} {:>14.1} {:>16.1}",
            name,
            kib_to_mb(m.idle.rss_kib),
            kib_to_mb(m.loaded.rss_kib),
            kib_to_mb(m.loaded.hwm_kib.max(m.settled.hwm_kib)),
            kib_to_mb(m.settled.rss_kib)
        );
    }
    let (api, verify, logins) = report.burst;
    if !report.child_env.is_empty() {
        println!("child environment: {}", report.child_env.join(" "));
    }
    println!("burst: {api} client /api/test/, {verify} auth verify, {logins} logins, all at once");
}
