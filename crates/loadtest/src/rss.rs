//! Resident memory of the real binaries: `auth-service serve` and `client-service serve` as
//! child processes on loopback ports with SQLite files in a temp dir, `VmRSS`/`VmHWM` read from
//! `/proc/PID/status` when idle after start and after a short load burst.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::{self, Limits, Target};
use crate::setup::{EMAIL, PASSWORD, signing_key};

/// `VmRSS` and `VmHWM` of a process, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident set size now.
    pub rss_kib: u64,
    /// Peak resident set size since start.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/PID/status`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow::anyhow!("{name} missing in /proc/{pid}/status"))?;
        let kib = line.split_whitespace().nth(1).ok_or_else(|| anyhow::anyhow!("bad {name} line"))?;
        Ok(kib.parse()?)
    };
    Ok(Memory { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

/// CPU time (user + system, all threads) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, ticks) = load::stat_ticks(&stat).ok_or_else(|| anyhow::anyhow!("unreadable /proc/{pid}/stat"))?;
    Ok(load::ticks(ticks))
}

/// Memory of one service at the three moments measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceMemory {
    /// 1 s after it answered `/healthz`.
    pub idle: Memory,
    /// Right after the burst (`hwm_kib` is the peak).
    pub loaded: Memory,
    /// 2 s after the burst ended.
    pub settled: Memory,
}

/// Result of [`measure`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// auth-service.
    pub auth: ServiceMemory,
    /// client-service (demo binary, local verification).
    pub client: ServiceMemory,
    /// Requests completed during the burst (client `/api/test/`, auth verify, logins).
    pub burst: (u64, u64, u64),
    /// Extra environment given to both children, `KEY=VALUE`.
    pub child_env: Vec<String>,
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Service {
    pub(crate) child: Child,
}

impl Service {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

pub(crate) fn command(bin: &Path, env: &[(&str, String)], extra: &[(String, String)]) -> Command {
    let mut c = Command::new(bin);
    // Only what we set: no DATABASE_URL or SIGNING_KEY of the caller leaks in.
    c.env_clear().env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

pub(crate) async fn wait_healthy(addr: SocketAddr, service: &mut Service) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(20);
    let health = Target::get(addr, "/healthz", None);
    while Instant::now() < until {
        if let Some(status) = service.child.try_wait()? {
            anyhow::bail!("service on {addr} exited early: {status}");
        }
        if matches!(load::request_once(&health).await, Ok((s, _)) if s.is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("service on {addr} did not become healthy in 20 s")
}

/// `auth-service serve` and a local-mode `client-service serve` in front of it, both healthy.
pub(crate) struct Pair {
    pub(crate) auth: Service,
    pub(crate) auth_addr: SocketAddr,
    pub(crate) client: Service,
    pub(crate) client_addr: SocketAddr,
}

impl Pair {
    /// Starts `auth_bin` on the first of `dbs` and `client_bin` (local mode, HMAC `key`) on the
    /// second, on free loopback ports; `both` is more environment for both, `extra` too.
    pub(crate) async fn start(
        auth_bin: &Path,
        client_bin: &Path,
        dbs: (String, String),
        key: &str,
        both: &[(&str, String)],
        extra: &[(String, String)],
    ) -> anyhow::Result<Pair> {
        let auth_addr = free_port()?;
        let mut env = vec![("DATABASE_URL", dbs.0), ("SIGNING_KEY", key.to_owned()), ("BIND", auth_addr.to_string())];
        env.extend_from_slice(both);
        let mut auth = Service { child: command(auth_bin, &env, extra).arg("serve").spawn()? };
        wait_healthy(auth_addr, &mut auth).await?;
        let client_addr = free_port()?;
        let mut env = vec![
            ("DATABASE_URL", dbs.1),
            ("SIGNING_KEY", key.to_owned()),
            ("BIND", client_addr.to_string()),
            ("REMOTE_AUTH_SERVICE_URL", format!("http://{auth_addr}")),
            ("VERIFY_MODE", "local".into()),
        ];
        env.extend_from_slice(both);
        let mut client = Service { child: command(client_bin, &env, extra).arg("serve").spawn()? };
        wait_healthy(client_addr, &mut client).await?;
        Ok(Pair { auth, auth_addr, client, client_addr })
    }
}

/// Where the release binaries are: next to the running executable (`target/release/`).
pub fn default_bin_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from("."))
}

/// Starts both binaries from `bin_dir` (with `extra` environment), measures idle memory,
/// drives a burst of `burst` with `connections` connections (client `/api/test/`, auth verify
/// and logins at once), measures again, stops both.
pub async fn measure(
    bin_dir: &Path,
    burst: Duration,
    connections: usize,
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

    let mut add = command(&auth_bin, &[("DATABASE_URL", auth_db.clone())], extra)
        .args(["users", "add", "--email", EMAIL, "--group", "billing:admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = add.stdin.take() {
        writeln!(stdin, "{PASSWORD}")?;
    }
    anyhow::ensure!(add.wait()?.success(), "auth-service users add failed");

    let Pair { auth, auth_addr, client, client_addr } =
        Pair::start(&auth_bin, &client_bin, (auth_db, client_db), &key, &[], extra).await?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut report = Report { child_env: extra.iter().map(|(k, v)| format!("{k}={v}")).collect(), ..Report::default() };
    report.auth.idle = memory(auth.pid())?;
    report.client.idle = memory(client.pid())?;

    // Log in through the client's proxy: the client mirrors the user on the way.
    let (access, _) = load::login(client_addr, EMAIL, PASSWORD).await?;
    let limits = |connections: usize| Limits {
        connections,
        duration: burst,
        max_requests: 2_000_000,
        warmup: Duration::ZERO,
        pace: None,
    };
    let api = Target::get(client_addr, "/api/test/", Some(&access));
    let verify = Target::post_json(auth_addr, "/auth/token/verify/", &serde_json::json!({"token": access}));
    let logins =
        Target::post_json(auth_addr, "/auth/token/", &serde_json::json!({"email": EMAIL, "password": PASSWORD}));
    let half = connections.div_ceil(2).max(1);
    let (a, v, l) =
        tokio::join!(load::run(api, limits(half)), load::run(verify, limits(half)), load::run(logins, limits(4)));
    let (a, v, l) = (a?, v?, l?);
    report.burst = (a.ok, v.ok, l.ok);
    report.auth.loaded = memory(auth.pid())?;
    report.client.loaded = memory(client.pid())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.auth.settled = memory(auth.pid())?;
    report.client.settled = memory(client.pid())?;
    drop(client);
    drop(auth);
    Ok(report)
}
