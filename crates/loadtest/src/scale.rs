//! Data scale (issue #26): the release `auth-service` on a database holding a year of use
//! (users, refresh-token records, sessions, audit events created in bulk), measured against the
//! same service on an empty database, PostgreSQL (`--postgres`) or SQLite.
//!
//! Per database: `auth-service migrate`, a superuser and one user made by the CLI (whose argon2
//! hash every bulk user shares), the bulk rows (`INSERT ... SELECT` over `generate_series` on
//! PostgreSQL, over a recursive CTE on SQLite, through `psql` and the `sqlite3` shell), then
//! `auth-service serve`: time from spawn to the first 200 of `/readyz`, the first housekeeping
//! (it purges expired records at start), idle RSS, each request at 1 and at 8 connections, RSS
//! after, and on the filled database the plans of the queries that grow with it, and rotating
//! refreshes measured while `auth-service purge-tokens` deletes a fifth as many expired refresh
//! records as the database holds (2,000,000 at the default sizes).
//!
//! The shape of the data follows what the service keeps: housekeeping deletes expired refresh
//! records and sessions every hour and audit events after `AUDIT_RETENTION` (90 days), so the
//! refresh records are a day's worth (the default lifetime) of chains of [`CHAIN`] (a login and
//! its rotations): most rotated away, a tenth of the families revoked, a twentieth expired
//! within the last hour (purged at start), the rest live; the audit events span 89 days.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::load::{self, Limits, Outcome, Payload, Target};
use crate::rss::{Memory, Service, command, free_port, memory};
use crate::setup::{PgDatabase, signing_key};

/// Password of every user of the run (the bulk users share its hash).
const PASSWORD: &str = "scale-load-test-password-2026";
/// The superuser the admin API is called as.
const ADMIN: &str = "scale-admin@example.com";
/// The user made by `auth-service users add` whose hash the bulk users copy.
const HASH_SOURCE: &str = "scale-hash@example.com";
/// Users `pool0..pool15@example.com`, present on every database (the empty one too): the
/// ones who log in during the run.
const POOL: u64 = 16;
/// Refresh records per family: a login and its rotations, five minutes apart.
pub const CHAIN: u64 = 20;

/// How much data a database holds besides the users the run needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// Users `user{i}@example.com`.
    pub users: u64,
    /// Refresh-token records (one session per [`CHAIN`] of them).
    pub refresh_records: u64,
    /// Audit events.
    pub audit_events: u64,
}

impl Sizes {
    fn is_empty(&self) -> bool {
        *self == Sizes::default()
    }
}

/// One measured request kind at one connection count.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was requested.
    pub name: String,
    /// Concurrent connections.
    pub connections: usize,
    /// What the load loop measured.
    pub outcome: Outcome,
}

/// Everything measured on one database.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Its bulk rows.
    pub sizes: Sizes,
    /// Time the bulk rows took to insert (with their indexes), per table.
    pub data_times: Vec<(&'static str, u64, Duration)>,
    /// `ANALYZE` after the bulk load (PostgreSQL; autovacuum would do it on a live server).
    pub analyze_time: Option<Duration>,
    /// Database size on disk, bytes.
    pub db_bytes: u64,
    /// Spawn of `auth-service serve` -> first 200 of `/readyz`.
    pub startup: Duration,
    /// Spawn -> no expired refresh record or session left (the housekeeping run at start).
    pub housekeeping: Option<Duration>,
    /// RSS 1 s after start (and the first housekeeping).
    pub idle: Memory,
    /// RSS after every row (`hwm_kib`: the peak of the run).
    pub after: Memory,
    /// The rows, in the order run.
    pub rows: Vec<Row>,
    /// Refresh latency while `auth-service purge-tokens` deletes a fifth as many expired
    /// records as the database holds (filled databases only).
    pub purge: Option<PurgeRun>,
    /// Query plans on the filled database: (what, plan).
    pub plans: Vec<(String, String)>,
}

/// Refreshes measured while `auth-service purge-tokens` ran on the same database.
#[derive(Debug, Clone)]
pub struct PurgeRun {
    /// Expired refresh records inserted for it to delete.
    pub records: u64,
    /// Spawn to exit of `purge-tokens`.
    pub took: Duration,
    /// Its one line of totals.
    pub said: String,
    /// Rotating refreshes at 1 and at 8 connections, in windows of [`PURGE_WINDOW`] taken in
    /// turn while the purge ran (each from fresh logins, as a chain cannot be reused).
    pub refresh: Vec<(usize, Outcome)>,
}

/// One measuring window during the purge.
pub const PURGE_WINDOW: Duration = Duration::from_secs(2);

/// What [`measure`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// `PostgreSQL` or `SQLite`.
    pub backend: &'static str,
    /// The empty database first (unless only one was asked for), then the filled one.
    pub datasets: Vec<Dataset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A throw-away database and the shell that feeds it SQL (`psql` or `sqlite3`).
struct Database {
    backend: Backend,
    url: String,
    sqlite: Option<(tempfile::TempDir, PathBuf)>,
    pg: Option<PgDatabase>,
}

impl Database {
    async fn create(postgres: Option<&str>) -> anyhow::Result<Self> {
        match postgres {
            Some(admin) => {
                let pg = PgDatabase::create(admin).await?;
                Ok(Self { backend: Backend::Postgres, url: pg.url.clone(), sqlite: None, pg: Some(pg) })
            }
            None => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("auth.db");
                Ok(Self {
                    backend: Backend::Sqlite,
                    url: format!("sqlite://{}", path.display()),
                    sqlite: Some((dir, path)),
                    pg: None,
                })
            }
        }
    }

    async fn drop_now(self) -> anyhow::Result<()> {
        if let Some(pg) = self.pg {
            pg.drop_now().await?;
        }
        Ok(())
    }

    /// Runs `script` through the database's shell; its standard output (unaligned, no headers).
    fn sql(&self, script: &str) -> anyhow::Result<String> {
        let mut cmd = match (&self.backend, &self.sqlite) {
            (Backend::Postgres, _) => {
                let mut c = Command::new("psql");
                c.args([self.url.as_str(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
                c
            }
            (Backend::Sqlite, Some((_, path))) => {
                let mut c = Command::new("sqlite3");
                c.arg("-bail").arg("-batch").arg(path);
                c
            }
            (Backend::Sqlite, None) => anyhow::bail!("no SQLite file"),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {:?} (needed for the bulk data): {e}", cmd.get_program()))?;
        if let Some(mut stdin) = child.stdin.take() {
            if self.backend == Backend::Sqlite {
                // The service may hold the write lock (its housekeeping) while we read.
                writeln!(stdin, ".timeout 30000")?;
            }
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "{:?} failed: {}\nscript: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim(),
            script.chars().take(400).collect::<String>()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn number(&self, query: &str) -> anyhow::Result<i64> {
        let out = self.sql(query)?;
        out.trim().parse().map_err(|e| anyhow::anyhow!("{query}: not a number ({out:?}): {e}"))
    }

    /// A `TIMESTAMP` (UTC, the service's text format on SQLite) from epoch seconds `epoch`.
    fn ts(&self, epoch: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("(to_timestamp(({epoch})::float8) AT TIME ZONE 'UTC')"),
            Backend::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', {epoch}, 'unixepoch')"),
        }
    }

    /// `e` as ten digits with leading zeros (ids that sort as they were made).
    fn pad(&self, e: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("lpad(({e})::text, 10, '0')"),
            Backend::Sqlite => format!("printf('%010d', {e})"),
        }
    }

    fn least(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "LEAST",
            Backend::Sqlite => "min",
        }
    }

    /// `INSERT INTO {into} SELECT {select} ...` for `i` in `0..n`, one statement.
    fn insert_series(&self, into: &str, select: &str, n: u64) -> String {
        match self.backend {
            Backend::Postgres => {
                format!("INSERT INTO {into} SELECT {select} FROM generate_series(0::bigint, {n} - 1) AS g(i);\n")
            }
            Backend::Sqlite => format!(
                "PRAGMA synchronous = OFF;\nPRAGMA cache_size = -262144;\nBEGIN;\n\
                 INSERT INTO {into} WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < {n}) \
                 SELECT {select} FROM g;\nCOMMIT;\n"
            ),
        }
    }

    fn size(&self) -> anyhow::Result<u64> {
        match &self.sqlite {
            Some((_, path)) => {
                let wal = PathBuf::from(format!("{}-wal", path.display()));
                Ok(std::fs::metadata(path)?.len() + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0))
            }
            None => Ok(u64::try_from(self.number("SELECT pg_database_size(current_database());")?)?),
        }
    }
}

fn epoch_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Start (epoch seconds) of refresh family `f`: expired within the last hour and a half for one
/// family in twenty, else between 22.8 h and 2 h ago (its last record still live for hours).
fn family_start(f: &str, now: f64) -> String {
    format!(
        "(CASE WHEN ({f}) % 20 = 0 THEN {now:.3} - 86400.0 - 6000.0 - (({f}) % 60) * 60.0 \
         ELSE {now:.3} - 7200.0 - ((({f}) * 79) % 1000) * 75.0 END)"
    )
}

/// The bulk statements: (table, rows, SQL). Users get ids from `base` on (the pool first).
fn bulk_statements(
    db: &Database,
    sizes: Sizes,
    base: i64,
    admin_id: i64,
    hash: &str,
) -> Vec<(&'static str, u64, String)> {
    let now = epoch_now();
    let people = POOL + sizes.users;
    let user_of = |e: &str| format!("{base} + (({e}) * 7919) % {people}");
    let mut out = Vec::new();

    let year = 365.0 * 86400.0;
    let select = format!(
        "{base} + i, CASE WHEN i < {POOL} THEN 'pool' || i ELSE 'user' || (i - {POOL}) END || '@example.com', '{hash}', \
         'First' || (i % 1000), 'Last' || (i % 5000), {joined}, CASE WHEN i % 3 = 0 THEN NULL ELSE {login} END",
        joined = db.ts(&format!("{now:.3} - {year} + i * ({year} / {people})")),
        login = db.ts(&format!("{now:.3} - (i % 2592000)")),
    );
    let mut users = db.insert_series(
        "users (id, email, password, first_name, last_name, date_joined, last_login)",
        &select,
        people,
    );
    if db.backend == Backend::Postgres {
        users.push_str("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));\n");
    }
    out.push(("users", people, users));

    let r = sizes.refresh_records;
    if r > 0 {
        let f = format!("(i / {CHAIN})");
        let start = family_start(&f, now);
        let created = format!("({start} + (i % {CHAIN}) * 300.0)");
        let rotated = format!("i % {CHAIN} < {CHAIN} - 1 AND i + 1 < {r}");
        let select = format!(
            "'sr' || {jti}, {user}, 'sr' || {family}, {c}, {e}, CASE WHEN {rotated} THEN 'sr' || {next} END, \
             CASE WHEN {rotated} THEN {replaced} END, CASE WHEN {f} % 20 IN (1, 2) THEN {revoked} END",
            jti = db.pad("i"),
            user = user_of(&f),
            family = db.pad(&format!("{f} * {CHAIN}")),
            c = db.ts(&created),
            e = db.ts(&format!("{created} + 86400.0")),
            next = db.pad("i + 1"),
            replaced = db.ts(&format!("{created} + 300.0")),
            revoked = db.ts(&format!("{start} + {} + 60.0", (CHAIN - 1) * 300)),
        );
        out.push((
            "refresh_tokens",
            r,
            db.insert_series(
                "refresh_tokens (jti, user_id, family, created_at, expires_at, replaced_by, replaced_at, revoked_at)",
                &select,
                r,
            ),
        ));
        let families = r.div_ceil(CHAIN);
        let start = family_start("i", now);
        let last = format!("({start} + ({least}({CHAIN}, {r} - i * {CHAIN}) - 1) * 300.0)", least = db.least());
        let select = format!(
            "'sr' || {id}, {user}, {c}, {l}, {e}, '10.' || (i % 250) || '.' || ((i / 250) % 250) || '.1', \
             'Mozilla/5.0 (scale test)'",
            id = db.pad(&format!("i * {CHAIN}")),
            user = user_of("i"),
            c = db.ts(&start),
            l = db.ts(&last),
            e = db.ts(&format!("{last} + 86400.0")),
        );
        out.push((
            "sessions",
            families,
            db.insert_series(
                "sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent)",
                &select,
                families,
            ),
        ));
    }

    let a = sizes.audit_events;
    if a > 0 {
        let span = 89.0 * 86400.0;
        let select = format!(
            "{c}, CASE WHEN i % 20 < 10 THEN 'login_succeeded' WHEN i % 20 < 14 THEN 'login_failed' \
             WHEN i % 20 = 14 THEN 'throttled' WHEN i % 20 = 15 THEN 'session_revoked' \
             WHEN i % 20 = 16 THEN 'logout_all' WHEN i % 20 = 17 THEN 'password_changed' \
             WHEN i % 20 = 18 THEN 'user_updated' ELSE 'refresh_reuse_detected' END, \
             {user}, CASE WHEN i % 20 = 18 THEN {admin_id} WHEN i % 20 < 10 THEN {user} END, \
             '10.' || (i % 250) || '.' || ((i / 250) % 250) || '.7', 'Mozilla/5.0 (scale test)'",
            c = db.ts(&format!("{now:.3} - 60.0 - ({a} - 1 - i) * ({span} / {a})")),
            user = user_of("i"),
        );
        out.push((
            "audit_events",
            a,
            db.insert_series("audit_events (created_at, kind, user_id, actor_id, ip, user_agent)", &select, a),
        ));
    }
    out
}

/// Runs an `auth-service` command that reads a password on stdin.
fn cli_user(bin: &std::path::Path, url: &str, args: &[&str], extra: &[(String, String)]) -> anyhow::Result<()> {
    let mut child =
        command(bin, &[("DATABASE_URL", url.to_owned())], extra).args(args).stdin(Stdio::piped()).spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{PASSWORD}")?;
    }
    anyhow::ensure!(child.wait()?.success(), "auth-service {} failed", args.join(" "));
    Ok(())
}

/// Polls `/readyz` every 5 ms until it answers 200.
async fn wait_ready(addr: SocketAddr, service: &mut Service) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(120);
    let ready = Target::get(addr, "/readyz", None);
    while Instant::now() < until {
        if let Some(status) = service.child.try_wait()? {
            anyhow::bail!("auth-service exited early: {status}");
        }
        if matches!(load::request_once(&ready).await, Ok((s, _)) if s.is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("auth-service did not answer /readyz in 120 s")
}

/// Waits until no expired refresh record or session is left (the housekeeping `serve` runs
/// at start has finished), polling every 100 ms for at most 10 minutes.
async fn wait_housekeeping(db: &Database) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(600);
    while Instant::now() < until {
        let t = db.ts(&format!("{:.3}", epoch_now()));
        let left = db.number(&format!(
            "SELECT (SELECT count(*) FROM refresh_tokens WHERE expires_at < {t}) \
             + (SELECT count(*) FROM sessions WHERE expires_at < {t});"
        ))?;
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("expired records still there 10 minutes after start")
}

fn body(email: &str) -> bytes::Bytes {
    bytes::Bytes::from(json!({"email": email, "password": PASSWORD}).to_string())
}

fn pool(i: u64) -> String {
    format!("pool{i}@example.com")
}

/// Measures the empty database and then one with `full` (only `full` if it is empty itself):
/// each request for `limits.duration` (after `limits.warmup`) at 1 and 8 connections.
pub async fn measure(
    bin_dir: &std::path::Path,
    postgres: Option<&str>,
    full: Sizes,
    limits: Limits,
    extra: &[(String, String)],
) -> anyhow::Result<Report> {
    let bin = bin_dir.join("auth-service");
    anyhow::ensure!(bin.exists(), "{} not found: run `cargo build --release -p auth-service` first", bin.display());
    let backend = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    let list = if full.is_empty() { vec![full] } else { vec![Sizes::default(), full] };
    let mut datasets = Vec::new();
    for sizes in list {
        println!(
            "\n{backend}: {} users, {} refresh records, {} audit events (+{POOL} pool users, an admin, a hash source)",
            sizes.users, sizes.refresh_records, sizes.audit_events
        );
        let db = Database::create(postgres).await?;
        let result = dataset(&bin, &db, sizes, limits, extra).await;
        db.drop_now().await?;
        let d = result?;
        print_dataset(&d);
        datasets.push(d);
    }
    Ok(Report { backend, datasets })
}

async fn dataset(
    bin: &std::path::Path,
    db: &Database,
    sizes: Sizes,
    limits: Limits,
    extra: &[(String, String)],
) -> anyhow::Result<Dataset> {
    let url = db.url.clone();
    let status = command(bin, &[("DATABASE_URL", url.clone())], extra).arg("migrate").status()?;
    anyhow::ensure!(status.success(), "auth-service migrate failed");
    cli_user(bin, &url, &["createsuperuser", "--email", ADMIN, "--password-stdin"], extra)?;
    cli_user(bin, &url, &["users", "add", "--email", HASH_SOURCE, "--password-stdin"], extra)?;
    let hash = db.sql(&format!("SELECT password FROM users WHERE email = '{HASH_SOURCE}';"))?.trim().to_owned();
    anyhow::ensure!(hash.starts_with("$argon2") && !hash.contains('\''), "unexpected stored hash format");
    let admin_id = db.number(&format!("SELECT id FROM users WHERE email = '{ADMIN}';"))?;
    let base = db.number("SELECT max(id) FROM users;")? + 1;

    let mut data_times = Vec::new();
    for (table, rows, sql) in bulk_statements(db, sizes, base, admin_id, &hash) {
        let started = Instant::now();
        db.sql(&sql)?;
        let took = started.elapsed();
        println!("  bulk {table}: {rows} rows in {:.1} s", took.as_secs_f64());
        data_times.push((table, rows, took));
    }
    let analyze_time = if db.backend == Backend::Postgres {
        let started = Instant::now();
        db.sql("ANALYZE;")?;
        Some(started.elapsed())
    } else {
        None
    };
    let db_bytes = db.size()?;

    let addr = free_port()?;
    let env = [
        ("DATABASE_URL", url.clone()),
        ("SIGNING_KEY", signing_key()),
        ("BIND", addr.to_string()),
        ("ROTATE_REFRESH_TOKENS", "true".to_owned()),
        // Long enough for every row of the run; the cost of a check does not depend on it.
        ("ACCESS_TOKEN_LIFETIME", "1h".to_owned()),
    ];
    let spawned = Instant::now();
    let mut auth = Service { child: command(bin, &env, extra).arg("serve").spawn()? };
    wait_ready(addr, &mut auth).await?;
    let startup = spawned.elapsed();
    let housekeeping = if sizes.refresh_records > 0 {
        wait_housekeeping(db).await?;
        Some(spawned.elapsed())
    } else {
        None
    };
    println!(
        "  /readyz after {:.0} ms{}",
        startup.as_secs_f64() * 1e3,
        housekeeping.map(|h| format!(", expired records purged after {:.1} s", h.as_secs_f64())).unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = memory(auth.pid())?;

    let at = |c: usize| Limits { connections: c, ..limits };
    let mut rows = Vec::new();
    let mut push = |name: &str, connections: usize, outcome: Outcome| {
        println!(
            "  {name:<50} {connections:>2} conns {:>8.0} req/s p50 {:>9.1} µs p99 {:>9.1} µs errors {}",
            outcome.rps(),
            outcome.p50_us(),
            outcome.p99_us(),
            outcome.errors
        );
        rows.push(Row { name: name.to_owned(), connections, outcome });
    };

    // Logins first: they open sessions of pool10..15 only, never of the users below.
    let logins: Vec<bytes::Bytes> = (10..POOL).map(|i| body(&pool(i))).collect();
    let login =
        Target { payload: Payload::JsonRotation(logins.into()), ..Target::post_json(addr, "/auth/token/", &json!({})) };
    for c in [1, 8] {
        push("POST /auth/token/ (login, argon2id)", c, load::run(login.clone(), at(c)).await?);
    }

    let (access, _) = load::login(addr, &pool(0), PASSWORD).await?;
    let (admin, _) = load::login(addr, ADMIN, PASSWORD).await?;
    // A fresh chain per connection and per run: a token already rotated would be a reuse.
    let mut chains = Vec::new();
    for users in [1..2, 2..10] {
        let mut tokens = Vec::new();
        for i in users {
            tokens.push(load::login(addr, &pool(i), PASSWORD).await?.1);
        }
        chains.push(tokens);
    }
    for tokens in chains {
        let c = tokens.len();
        let target = Target {
            payload: Payload::RefreshChain(std::sync::Arc::new(tokens)),
            ..Target::post_json(addr, "/auth/token/refresh/", &json!({}))
        };
        push("POST /auth/token/refresh/ (rotating)", c, load::run(target, at(c)).await?);
    }

    let pool0 = base;
    let targets = [
        ("POST /auth/token/verify/", Target::post_json(addr, "/auth/token/verify/", &json!({"token": access}))),
        ("GET /auth/user/", Target::get(addr, "/auth/user/", Some(&access))),
        ("GET /auth/sessions/", Target::get(addr, "/auth/sessions/", Some(&access))),
        (
            "admin users ?search=user12345 (prefix)",
            Target::get(addr, "/auth/admin/users/?search=user12345", Some(&admin)),
        ),
        (
            "admin users ?search=345%40exam (substring)",
            Target::get(addr, "/auth/admin/users/?search=345%40exam", Some(&admin)),
        ),
        ("admin users, no search, page 1", Target::get(addr, "/auth/admin/users/", Some(&admin))),
        ("admin audit ?kind=login_failed", Target::get(addr, "/auth/admin/audit/?kind=login_failed", Some(&admin))),
        ("admin audit ?user=pool0", Target::get(addr, &format!("/auth/admin/audit/?user={pool0}"), Some(&admin))),
        (
            "admin audit ?kind=password_changed&user=pool0",
            Target::get(addr, &format!("/auth/admin/audit/?kind=password_changed&user={pool0}"), Some(&admin)),
        ),
    ];
    for (name, target) in targets {
        let one = load::run(target.clone(), at(1)).await?;
        // A request slower than 50 ms: 8 at once would all still be running when a few seconds
        // end, so that run has no warm-up and lasts long enough for each connection to finish
        // one or two (at most 30 s).
        let eight = if one.ok == 0 || one.p50_us() > 50_000.0 {
            let needed = Duration::from_secs_f64((one.p50_us().max(1e6) * 1e-6 * 8.0 * 1.5).min(30.0));
            Limits { connections: 8, warmup: Duration::ZERO, duration: limits.duration.max(needed), ..limits }
        } else {
            at(8)
        };
        push(name, 1, one);
        push(name, 8, load::run(target, eight).await?);
    }
    let purge = if sizes.refresh_records > 0 {
        Some(purge_under_load(bin, db, sizes, base, addr, extra, limits).await?)
    } else {
        None
    };
    let after = memory(auth.pid())?;
    drop(auth);
    let plans = if sizes.is_empty() { Vec::new() } else { plans(db, pool0)? };
    Ok(Dataset { sizes, data_times, analyze_time, db_bytes, startup, housekeeping, idle, after, rows, purge, plans })
}

/// Inserts `sizes.refresh_records / 5` refresh records that expired a day ago, then runs
/// `auth-service purge-tokens` and measures rotating refreshes (1 and 8 connections in turns of
/// [`PURGE_WINDOW`], fresh logins before each window) until it exits.
async fn purge_under_load(
    bin: &std::path::Path,
    db: &Database,
    sizes: Sizes,
    base: i64,
    addr: SocketAddr,
    extra: &[(String, String)],
    limits: Limits,
) -> anyhow::Result<PurgeRun> {
    let records = sizes.refresh_records / 5;
    let people = POOL + sizes.users;
    let then = epoch_now() - 2.0 * 86400.0;
    let select = format!(
        "'px' || {jti}, {base} + ((i / {CHAIN}) * 7919) % {people}, 'px' || {family}, {c}, {e}",
        jti = db.pad("i"),
        family = db.pad(&format!("(i / {CHAIN}) * {CHAIN}")),
        c = db.ts(&format!("{then:.3} + i * 0.001")),
        e = db.ts(&format!("{then:.3} + 86400.0 + i * 0.001")),
    );
    let started = Instant::now();
    db.sql(&db.insert_series("refresh_tokens (jti, user_id, family, created_at, expires_at)", &select, records))?;
    println!(
        "  bulk expired refresh records for the purge: {records} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let spawned = Instant::now();
    let mut purge = command(bin, &[("DATABASE_URL", db.url.clone())], extra)
        .arg("purge-tokens")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut refresh: Vec<(usize, Outcome)> = Vec::new();
    let mut user = 0;
    'windows: loop {
        for c in [1usize, 8] {
            if purge.try_wait()?.is_some() {
                break 'windows;
            }
            let mut tokens = Vec::new();
            for _ in 0..c {
                tokens.push(load::login(addr, &pool(2 + user % 8), PASSWORD).await?.1);
                user += 1;
            }
            let target = Target {
                payload: Payload::RefreshChain(std::sync::Arc::new(tokens)),
                ..Target::post_json(addr, "/auth/token/refresh/", &json!({}))
            };
            let window = Limits { connections: c, warmup: Duration::ZERO, duration: PURGE_WINDOW, ..limits };
            let outcome = load::run(target, window).await?;
            match refresh.iter_mut().find(|(n, _)| *n == c) {
                Some((_, total)) => {
                    total.ok += outcome.ok;
                    total.errors += outcome.errors;
                    total.elapsed += outcome.elapsed;
                    total.latency.add(&outcome.latency).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
                None => refresh.push((c, outcome)),
            }
        }
    }
    let out = purge.wait_with_output()?;
    let took = spawned.elapsed();
    anyhow::ensure!(out.status.success(), "auth-service purge-tokens failed");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    println!("  purge-tokens took {:.1} s: {said}", took.as_secs_f64());
    for (c, o) in &refresh {
        println!(
            "  {:<50} {c:>2} conns {:>8.0} req/s p50 {:>9.1} µs p99 {:>9.1} µs errors {}",
            "refresh (rotating) during purge-tokens",
            o.rps(),
            o.p50_us(),
            o.p99_us(),
            o.errors
        );
    }
    Ok(PurgeRun { records, took, said, refresh })
}

/// Plans of the queries that grow with the data (hand-written equivalents of what the service
/// sends; PostgreSQL runs them with `EXPLAIN ANALYZE`).
fn plans(db: &Database, user: i64) -> anyhow::Result<Vec<(String, String)>> {
    let t = db.ts(&format!("{:.3}", epoch_now()));
    let like = |p: &str| {
        format!(
            "lower(email) LIKE '{p}' ESCAPE '\\' OR lower(first_name) LIKE '{p}' ESCAPE '\\' \
             OR lower(last_name) LIKE '{p}' ESCAPE '\\'"
        )
    };
    let queries = [
        ("admin search: count", format!("SELECT count(*) FROM users WHERE {}", like("%345@exam%"))),
        (
            "admin search: page",
            format!("SELECT id, email FROM users WHERE {} ORDER BY id LIMIT 25 OFFSET 0", like("%user12345%")),
        ),
        ("admin list: count all", "SELECT count(*) FROM users".to_owned()),
        (
            "admin list: page 20000 (OFFSET)",
            "SELECT id, email FROM users ORDER BY id LIMIT 25 OFFSET 499975".to_owned(),
        ),
        (
            "admin search, capped count (#26 fix; PostgreSQL: trigram index)",
            format!("SELECT id FROM users WHERE {} LIMIT 1001", like("%345@exam%")),
        ),
        (
            "admin search, page (#26 fix; SQLite: FTS5 trigram table)",
            "SELECT rowid FROM users_search WHERE users_search MATCH '\"user12345\"' ORDER BY rowid LIMIT 26"
                .to_owned(),
        ),
        (
            "admin list: a deep page after an id (keyset)",
            "SELECT id, email FROM users WHERE id > 500000 ORDER BY id LIMIT 26".to_owned(),
        ),
        (
            "audit ?kind=password_changed&user=",
            format!(
                "SELECT id FROM audit_events WHERE user_id = {user} AND kind = 'password_changed' \
                 ORDER BY id DESC LIMIT 100"
            ),
        ),
        (
            "audit ?kind=login_failed",
            "SELECT id FROM audit_events WHERE kind = 'login_failed' ORDER BY id DESC LIMIT 100".to_owned(),
        ),
        (
            "live sessions of a user",
            format!(
                "SELECT id FROM sessions WHERE user_id = {user} AND expires_at > {t} AND id IN \
                 (SELECT family FROM refresh_tokens WHERE user_id = {user} AND revoked_at IS NULL \
                 AND replaced_by IS NULL AND expires_at > {t}) ORDER BY created_at DESC"
            ),
        ),
        (
            "housekeeping: expired refresh records",
            format!("SELECT count(*) FROM refresh_tokens WHERE expires_at < {t}"),
        ),
    ];
    let mut out = Vec::new();
    for (name, q) in queries {
        let plan = match db.backend {
            Backend::Postgres => db.sql(&format!("EXPLAIN (ANALYZE, COSTS OFF) {q};")),
            Backend::Sqlite => db.sql(&format!("EXPLAIN QUERY PLAN {q};")),
        };
        // A query of one build's schema fails on the other's (the FTS5 table, say): say so.
        let plan = plan.unwrap_or_else(|e| format!("(not run: {})", e.to_string().lines().next().unwrap_or_default()));
        out.push((name.to_owned(), plan.trim_end().to_owned()));
    }
    Ok(out)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_dataset(d: &Dataset) {
    let data: f64 = d.data_times.iter().map(|(_, _, t)| t.as_secs_f64()).sum();
    println!(
        "  data {:.1} s{}, database {:.0} MiB, start-up to /readyz {:.0} ms, idle RSS {:.1} MiB, after the rows {:.1} MiB (peak {:.1})",
        data,
        d.analyze_time.map(|a| format!(" + ANALYZE {:.1} s", a.as_secs_f64())).unwrap_or_default(),
        d.db_bytes as f64 / (1024.0 * 1024.0),
        d.startup.as_secs_f64() * 1e3,
        mib(d.idle.rss_kib),
        mib(d.after.rss_kib),
        mib(d.after.hwm_kib)
    );
}

/// Prints the empty and the filled database side by side, then the plans.
pub fn print(report: &Report) {
    let [empty, full] = match report.datasets.as_slice() {
        [empty, full] => [empty, full],
        [only] => [only, only],
        _ => return,
    };
    let s = full.sizes;
    println!(
        "\nData scale, {}: empty vs {} users, {} refresh records ({} sessions), {} audit events",
        report.backend,
        s.users,
        s.refresh_records,
        s.refresh_records.div_ceil(CHAIN),
        s.audit_events
    );
    println!(
        "{:<48} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "request", "conns", "e. req/s", "e. p50µs", "e. p99µs", "f. req/s", "f. p50µs", "f. p99µs", "p99 ×"
    );
    for f in &full.rows {
        let Some(e) = empty.rows.iter().find(|e| e.name == f.name && e.connections == f.connections) else {
            continue;
        };
        let (eo, fo) = (&e.outcome, &f.outcome);
        println!(
            "{:<48} {:>5} {:>9.0} {:>9.1} {:>9.1} {:>9.0} {:>9.1} {:>9.1} {:>7}{}",
            f.name,
            f.connections,
            eo.rps(),
            eo.p50_us(),
            eo.p99_us(),
            fo.rps(),
            fo.p50_us(),
            fo.p99_us(),
            if eo.ok > 0 && fo.ok > 0 { format!("{:.2}", fo.p99_us() / eo.p99_us().max(1e-9)) } else { "-".into() },
            if eo.errors + fo.errors > 0 { format!("  errors {}/{}", eo.errors, fo.errors) } else { String::new() }
        );
    }
    for (label, d) in [("empty", empty), ("full", full)] {
        println!(
            "{label:<6} start-up to /readyz {:>7.0} ms   idle RSS {:>6.1} MiB   after {:>6.1} MiB   peak {:>6.1} MiB   database {:>7.0} MiB{}",
            d.startup.as_secs_f64() * 1e3,
            mib(d.idle.rss_kib),
            mib(d.after.rss_kib),
            mib(d.after.hwm_kib),
            d.db_bytes as f64 / (1024.0 * 1024.0),
            d.housekeeping
                .map(|h| format!("   expired records purged {:.1} s after spawn", h.as_secs_f64()))
                .unwrap_or_default()
        );
    }
    if let Some(p) = &full.purge {
        println!("purge-tokens of {} expired refresh records: {:.1} s ({})", p.records, p.took.as_secs_f64(), p.said);
        for (c, o) in &p.refresh {
            let before =
                full.rows.iter().find(|r| r.name.starts_with("POST /auth/token/refresh/") && r.connections == *c);
            println!(
                "  refresh during the purge, {c} conns: {:.0} req/s p50 {:.1} µs p99 {:.1} µs errors {} (without a purge: p99 {})",
                o.rps(),
                o.p50_us(),
                o.p99_us(),
                o.errors,
                before.map(|r| format!("{:.1} µs", r.outcome.p99_us())).unwrap_or_else(|| "-".into())
            );
        }
    }
    let times: Vec<String> =
        full.data_times.iter().map(|(t, n, d)| format!("{t} {n} in {:.1} s", d.as_secs_f64())).collect();
    println!("bulk data: {}", times.join(", "));
    for (name, plan) in &full.plans {
        println!("\nplan: {name}\n{plan}");
    }
}
