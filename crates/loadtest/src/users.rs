//! Many distinct users against the real binaries: `auth-service serve` and `client-service
//! serve` (local HS256 verification) as child processes, N users created in the auth database
//! in bulk, one access token minted per user, and `GET /api/test/` sent with those tokens in
//! turn. The cold pass sends each user once (each request is that user's first: a fetch from
//! the auth-service and a mirror write); the steady pass then cycles through all of them again
//! (every user mirrored, each seen again only after the N − 1 others). The reference is the
//! same client process's `GET /healthz` (same server stack, no authentication).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use hyper::header::HeaderValue;
use shared_user::{Db, TokenType};

use crate::load::{self, Limits, Outcome, Target};
use crate::rss::{self, Memory, Service};
use crate::setup::{self, PgDatabase};

/// Ids of the generated users start here.
const FIRST_ID: i64 = 1_000_000;
/// Rows per INSERT statement of the bulk load.
const CHUNK: usize = 500;

/// What one population measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Distinct users.
    pub users: usize,
    /// `SQLite` or `PostgreSQL` (both services' databases).
    pub backend: &'static str,
    /// `GET /healthz` on the client, the reference.
    pub healthz: Outcome,
    /// Each user's first request.
    pub cold: Outcome,
    /// Every user again, in turn.
    pub steady: Outcome,
    /// Client memory after the cold pass.
    pub rss_cold: Memory,
    /// Client memory after the steady pass (`hwm_kib`: peak since start).
    pub rss_steady: Memory,
    /// CPU time of (auth-service, client-service) during the cold pass.
    pub cpu_cold: (Duration, Duration),
    /// CPU time of (auth-service, client-service) during the steady pass (warm-up included).
    pub cpu_steady: (Duration, Duration),
    /// Where a cold request's time went, from both services' `/metrics` after the cold pass.
    pub cold_breakdown: Breakdown,
}

/// Means over the cold pass, read from the services' Prometheus histograms (`_sum / _count`);
/// `None` when a histogram is absent.
#[derive(Debug, Clone, Default)]
pub struct Breakdown {
    /// The client's call to the auth-service (`GET /auth/user/`), µs.
    pub fetch_us: Option<f64>,
    /// The auth-service's own time for `GET /auth/user/`, µs.
    pub auth_user_us: Option<f64>,
    /// One group-committed mirror write, µs.
    pub write_us: Option<f64>,
    /// Users per mirror write.
    pub write_users: Option<f64>,
}

impl std::fmt::Display for Breakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        write!(
            f,
            "fetch {} µs (auth-service {} µs), mirror write {} µs per batch of {} users",
            show(self.fetch_us),
            show(self.auth_user_us),
            show(self.write_us),
            self.write_users.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")),
        )
    }
}

/// `sum / count` of the histogram `name` whose label set contains `labels` (all of them),
/// summed over matching series, from Prometheus text.
fn mean(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let total = |suffix: &str| -> Option<f64> {
        let series = format!("{name}_{suffix}");
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&series) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    };
    let (sum, count) = (total("sum")?, total("count")?);
    (count > 0.0).then(|| sum / count)
}

async fn metrics_text(addr: std::net::SocketAddr) -> String {
    match load::request_once(&Target::get(addr, "/metrics", None)).await {
        Ok((status, body)) if status.is_success() => String::from_utf8_lossy(&body).into_owned(),
        _ => String::new(),
    }
}

async fn breakdown(auth: std::net::SocketAddr, client: std::net::SocketAddr) -> Breakdown {
    let (auth, client) = (metrics_text(auth).await, metrics_text(client).await);
    Breakdown {
        fetch_us: mean(&client, "gatehouse_upstream_request_duration_seconds", &[]).map(|s| s * 1e6),
        auth_user_us: mean(&auth, "gatehouse_http_request_duration_seconds", &["route=\"/auth/user/\""])
            .map(|s| s * 1e6),
        write_us: mean(&client, "gatehouse_mirror_write_duration_seconds", &[]).map(|s| s * 1e6),
        write_users: mean(&client, "gatehouse_mirror_write_users", &[]),
    }
}

impl Report {
    /// CPU µs per request of (auth-service, client-service) in the cold pass.
    pub fn cold_cpu_us(&self) -> (f64, f64) {
        per_request(self.cpu_cold, self.cold.ok + self.cold.errors)
    }

    /// CPU µs per request of (auth-service, client-service) in the steady pass (the warm-up
    /// second counted too, at the measured rate).
    pub fn steady_cpu_us(&self) -> (f64, f64) {
        let requests = self.steady.rps() * (self.steady.elapsed.as_secs_f64() + 1.0);
        per_request(self.cpu_steady, requests as u64)
    }
}

fn per_request((auth, client): (Duration, Duration), requests: u64) -> (f64, f64) {
    let n = requests.max(1) as f64;
    (auth.as_secs_f64() * 1e6 / n, client.as_secs_f64() * 1e6 / n)
}

/// Inserts `count` users (ids from [`FIRST_ID`], one access group each, an unusable password)
/// into a migrated auth database, in chunks inside one transaction.
async fn create_users(db: &Db, count: usize) -> anyhow::Result<()> {
    let mut statements = String::from("BEGIN;\n");
    for start in (0..count).step_by(CHUNK) {
        let end = (start + CHUNK).min(count);
        let users: Vec<String> = (start..end)
            .map(|i| {
                let id = FIRST_ID + i as i64;
                format!(
                    "({id}, 'user{i}@load.example', '!', 'User', '{i}', '2026-01-01 00:00:00', NULL, TRUE, FALSE, FALSE)"
                )
            })
            .collect();
        statements.push_str(&format!(
            "INSERT INTO users (id, email, password, first_name, last_name, date_joined, last_login, is_active, \
             is_staff, is_superuser) VALUES {};\n",
            users.join(",")
        ));
        let groups: Vec<String> = (start..end)
            .map(|i| format!("({}, 'billing', '{}')", FIRST_ID + i as i64, ["admin", "user"][i % 2]))
            .collect();
        statements
            .push_str(&format!("INSERT INTO access_groups (user_id, name, level) VALUES {};\n", groups.join(",")));
    }
    statements.push_str("COMMIT;");
    shared_user::with_conn!(db, |conn| {
        conn.batch_execute(&statements).await.map_err(shared_user::DbError::from)?;
        anyhow::Ok(())
    })
}

/// `Bearer <access>` for each generated user, minted with the auth-service's own code.
async fn mint_tokens(settings: &auth_service::Settings, db: Db, count: usize) -> anyhow::Result<Arc<[HeaderValue]>> {
    let state = auth_service::AppState::build(settings.clone(), db).await.map_err(anyhow::Error::msg)?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let token = state.keys.mint(TokenType::Access, FIRST_ID + i as i64)?.token;
        out.push(HeaderValue::from_str(&format!("Bearer {token}"))?);
    }
    Ok(out.into())
}

/// The databases of one run: SQLite files in `dir`, or two fresh PostgreSQL databases.
struct Databases {
    auth: String,
    mirror: String,
    pg: Vec<PgDatabase>,
}

impl Databases {
    async fn new(dir: &Path, postgres: Option<&str>, auth_on_sqlite: bool) -> anyhow::Result<Self> {
        let sqlite = |name: &str| format!("sqlite://{}", dir.join(name).display());
        match postgres {
            None => Ok(Self { auth: sqlite("auth.db"), mirror: sqlite("mirror.db"), pg: Vec::new() }),
            Some(admin) if auth_on_sqlite => {
                let mirror = PgDatabase::create(admin).await?;
                Ok(Self { auth: sqlite("auth.db"), mirror: mirror.url.clone(), pg: vec![mirror] })
            }
            Some(admin) => {
                let auth = PgDatabase::create(admin).await?;
                let mirror = PgDatabase::create(admin).await?;
                Ok(Self { auth: auth.url.clone(), mirror: mirror.url.clone(), pg: vec![auth, mirror] })
            }
        }
    }

    async fn drop_now(self) {
        for pg in self.pg {
            if let Err(e) = pg.drop_now().await {
                eprintln!("loadtest: could not drop a PostgreSQL database: {e:#}");
            }
        }
    }
}

/// Runs the cold and steady passes for `users` distinct users with `connections` connections
/// (`seconds` measured for the reference and the steady pass), binaries from `bin_dir`; with
/// `postgres`, the mirror (and the auth database unless `auth_on_sqlite`) on that server.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    bin_dir: &Path,
    users: usize,
    postgres: Option<&str>,
    auth_on_sqlite: bool,
    connections: usize,
    seconds: u64,
    extra: &[(String, String)],
) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let dbs = Databases::new(dir.path(), postgres, auth_on_sqlite).await?;
    let result = passes(bin_dir, users, &dbs, connections, seconds, extra).await;
    dbs.drop_now().await;
    result.map(|p| Report {
        users,
        backend: if postgres.is_some() { "PostgreSQL" } else { "SQLite" },
        healthz: p.healthz,
        cold: p.cold,
        steady: p.steady,
        rss_cold: p.rss_cold,
        rss_steady: p.rss_steady,
        cpu_cold: p.cpu_cold,
        cpu_steady: p.cpu_steady,
        cold_breakdown: p.cold_breakdown,
    })
}

/// What [`passes`] measured.
struct Passes {
    healthz: Outcome,
    cold: Outcome,
    steady: Outcome,
    rss_cold: Memory,
    rss_steady: Memory,
    cpu_cold: (Duration, Duration),
    cpu_steady: (Duration, Duration),
    cold_breakdown: Breakdown,
}

/// CPU used so far by (auth-service, client-service).
fn cpu_of(auth: &Service, client: &Service) -> anyhow::Result<(Duration, Duration)> {
    Ok((rss::cpu_time(auth.pid())?, rss::cpu_time(client.pid())?))
}

fn spent(before: (Duration, Duration), after: (Duration, Duration)) -> (Duration, Duration) {
    (after.0.saturating_sub(before.0), after.1.saturating_sub(before.1))
}

async fn passes(
    bin_dir: &Path,
    users: usize,
    dbs: &Databases,
    connections: usize,
    seconds: u64,
    extra: &[(String, String)],
) -> anyhow::Result<Passes> {
    let auth_bin = bin_dir.join("auth-service");
    let client_bin = bin_dir.join("client-service");
    for bin in [&auth_bin, &client_bin] {
        anyhow::ensure!(bin.exists(), "{} not found: run `cargo build --release --workspace` first", bin.display());
    }
    let key = setup::signing_key();
    let settings = setup::auth_settings(&key);
    let db = Db::connect(&dbs.auth, 2).await?;
    auth_service::migrate(&db).await?;
    create_users(&db, users).await?;
    let tokens = mint_tokens(&settings, db, users).await?;

    let auth_addr = rss::free_port()?;
    let auth_env = [
        ("DATABASE_URL", dbs.auth.clone()),
        ("SIGNING_KEY", key.clone()),
        ("BIND", auth_addr.to_string()),
        ("ACCESS_TOKEN_LIFETIME", "1h".to_owned()),
    ];
    let mut auth = Service { child: rss::command(&auth_bin, &auth_env, extra).arg("serve").spawn()? };
    rss::wait_healthy(auth_addr, &mut auth).await?;
    let client_addr = rss::free_port()?;
    let client_env = [
        ("DATABASE_URL", dbs.mirror.clone()),
        ("SIGNING_KEY", key),
        ("BIND", client_addr.to_string()),
        ("REMOTE_AUTH_SERVICE_URL", format!("http://{auth_addr}")),
        ("VERIFY_MODE", "local".to_owned()),
    ];
    let mut client = Service { child: rss::command(&client_bin, &client_env, extra).arg("serve").spawn()? };
    rss::wait_healthy(client_addr, &mut client).await?;

    let measured = |warmup: f64| Limits {
        connections,
        duration: Duration::from_secs(seconds.max(1)),
        max_requests: 50_000_000,
        warmup: Duration::from_secs_f64(warmup),
        pace: None,
    };
    let healthz = load::run(Target::get(client_addr, "/healthz", None), measured(1.0)).await?;
    let api = Target { rotation: Some(tokens), ..Target::get(client_addr, "/api/test/", None) };
    // Exactly one request per user, however long it takes (bounded at 10 minutes).
    let cold_limits = Limits {
        duration: Duration::from_secs(600),
        max_requests: users as u64,
        warmup: Duration::ZERO,
        ..measured(0.0)
    };
    let before = cpu_of(&auth, &client)?;
    let cold = load::run(api.clone(), cold_limits).await?;
    let after_cold = cpu_of(&auth, &client)?;
    let rss_cold = rss::memory(client.pid())?;
    let cold_breakdown = breakdown(auth_addr, client_addr).await;
    let steady = load::run(api, measured(1.0)).await?;
    let cpu_steady = spent(after_cold, cpu_of(&auth, &client)?);
    let rss_steady = rss::memory(client.pid())?;
    drop(client);
    drop(auth);
    Ok(Passes {
        healthz,
        cold,
        steady,
        rss_cold,
        rss_steady,
        cpu_cold: spent(before, after_cold),
        cpu_steady,
        cold_breakdown,
    })
}
