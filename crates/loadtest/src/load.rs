//! A bounded closed-loop HTTP/1.1 load generator: `connections` workers, each on its own
//! keep-alive connection (hyper's low-level client, no pool, no TLS), sending one request at a
//! time until a deadline or a shared request budget runs out. Latencies go to per-worker HDR
//! histograms merged at the end. Targets are loopback addresses only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// What each request carries.
#[derive(Debug, Clone)]
pub enum Payload {
    /// No body (GET).
    Empty,
    /// The same JSON body every time.
    Json(Bytes),
    /// `{"refresh": ...}` with a rotating chain per worker: worker `i` starts from
    /// `tokens[i % len]` and continues with the `refresh` of each answer.
    RefreshChain(Arc<Vec<String>>),
    /// JSON bodies taken in turn, one per request, all workers sharing one cursor (a new
    /// email per request, say).
    JsonRotation(Arc<[Bytes]>),
}

/// One kind of request against one server.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server address (must be loopback).
    pub addr: SocketAddr,
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// `Authorization` header value, if any.
    pub authorization: Option<HeaderValue>,
    /// `Authorization` header values taken in turn, one per request, all workers sharing one
    /// cursor from the first (many distinct users); overrides `authorization`.
    pub rotation: Option<Arc<[HeaderValue]>>,
    /// Body.
    pub payload: Payload,
    /// Status counted as success.
    pub expect: StatusCode,
}

impl Target {
    /// `GET path`, optionally with a bearer token.
    pub fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Self {
        let authorization = bearer.map(|t| HeaderValue::from_str(&format!("Bearer {t}")).expect("token is ASCII"));
        Self {
            addr,
            method: Method::GET,
            path: path.to_owned(),
            authorization,
            rotation: None,
            payload: Payload::Empty,
            expect: StatusCode::OK,
        }
    }

    /// `POST path` with a JSON body.
    pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Self {
        Self {
            addr,
            method: Method::POST,
            path: path.to_owned(),
            authorization: None,
            rotation: None,
            payload: Payload::Json(Bytes::from(body.to_string())),
            expect: StatusCode::OK,
        }
    }
}

/// Bounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Concurrent workers (= connections).
    pub connections: usize,
    /// Measured duration.
    pub duration: Duration,
    /// Requests at most (all workers together).
    pub max_requests: u64,
    /// Unmeasured warm-up before the measured duration (same connections).
    pub warmup: Duration,
    /// Each worker sends at most one request per `pace` (latency sampling at a fixed rate;
    /// the histogram is corrected for coordinated omission). `None`: as fast as possible.
    pub pace: Option<Duration>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Successful requests (status as expected) in the measured window.
    pub ok: u64,
    /// Requests answered with another status, or failed on the connection.
    pub errors: u64,
    /// Measured wall time (from the end of warm-up until the last worker stopped).
    pub elapsed: Duration,
    /// Latency of successful requests, nanoseconds.
    pub latency: Histogram<u64>,
    /// CPU time this process spent in the measured window outside the load generator's
    /// threads (the in-process services, their blocking pools), when it could be read.
    pub server_cpu: Option<Duration>,
    /// CPU time of the load generator's threads (`loadgen`) in the measured window.
    pub load_cpu: Option<Duration>,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency quantile in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// Median latency, µs.
    pub fn p50_us(&self) -> f64 {
        self.quantile_us(0.50)
    }

    /// 99th percentile latency, µs.
    pub fn p99_us(&self) -> f64 {
        self.quantile_us(0.99)
    }

    /// Server-side CPU per successful request, µs (less sensitive to other processes on the
    /// machine than req/s).
    pub fn server_cpu_us_per_request(&self) -> Option<f64> {
        self.server_cpu.map(|c| c.as_secs_f64() * 1e6 / self.ok.max(1) as f64)
    }
}

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

pub(crate) fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    // `pid (comm) state ...`: comm may contain spaces, so split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After comm: state(0) ... utime(11) stime(12).
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// `(whole process, threads named loadgen*)` CPU ticks so far. Exited threads still count in
/// the process total; the load generator's threads live as long as its runtime.
fn cpu_ticks() -> Option<(u64, u64)> {
    let (_, total) = stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let mut load = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Ok(stat) = std::fs::read_to_string(task.path().join("stat"))
            && let Some((comm, ticks)) = stat_ticks(&stat)
            && comm.starts_with("loadgen")
        {
            load += ticks;
        }
    }
    Some((total, load))
}

pub(crate) fn ticks(t: u64) -> Duration {
    Duration::from_millis(t * 1000 / USER_HZ)
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Opens a keep-alive HTTP/1.1 connection to `addr`; the connection task runs on the current
/// runtime.
async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    anyhow::ensure!(addr.ip().is_loopback(), "load targets must be loopback addresses, not {addr}");
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn build(target: &Target, host: &HeaderValue, refresh: Option<&str>, turn: usize) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(target.method.clone()).uri(target.path.as_str()).header(HOST, host);
    if let Some(rotation) = target.rotation.as_ref().filter(|r| !r.is_empty()) {
        builder = builder.header(AUTHORIZATION, &rotation[turn % rotation.len()]);
    } else if let Some(auth) = &target.authorization {
        builder = builder.header(AUTHORIZATION, auth);
    }
    let body = match (&target.payload, refresh) {
        (Payload::Empty, _) => Bytes::new(),
        (Payload::Json(b), _) => b.clone(),
        (Payload::RefreshChain(_), Some(token)) => Bytes::from(serde_json::json!({"refresh": token}).to_string()),
        (Payload::RefreshChain(_), None) => Bytes::from_static(b"{}"),
        (Payload::JsonRotation(bodies), _) => bodies.get(turn % bodies.len().max(1)).cloned().unwrap_or_default(),
    };
    if !body.is_empty() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    builder.body(Full::new(body)).expect("valid request")
}

/// Sends one request on a fresh connection: `(status, body)`. For setup calls (login, health).
pub async fn request_once(target: &Target) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut sender = connect(target.addr).await?;
    let host = HeaderValue::from_str(&target.addr.to_string())?;
    let resp = sender.send_request(build(target, &host, None, 0)).await?;
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// `POST /auth/token/` with the given credentials: `(access, refresh)`.
pub async fn login(addr: SocketAddr, email: &str, password: &str) -> anyhow::Result<(String, String)> {
    let target = Target::post_json(addr, "/auth/token/", &serde_json::json!({"email": email, "password": password}));
    let (status, body) = request_once(&target).await?;
    anyhow::ensure!(status == StatusCode::OK, "login answered {status}: {}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let field = |name: &str| v[name].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no {name} in login"));
    Ok((field("access")?, field("refresh")?))
}

struct Shared {
    target: Target,
    limits: Limits,
    budget: AtomicU64,
    /// Next entry of `target.rotation`.
    turn: AtomicUsize,
    measure_from: Instant,
    deadline: Instant,
}

struct WorkerResult {
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    finished: Instant,
}

async fn worker(shared: Arc<Shared>, index: usize) -> WorkerResult {
    let mut result = WorkerResult { ok: 0, errors: 0, latency: histogram(), finished: Instant::now() };
    let host = HeaderValue::from_str(&shared.target.addr.to_string()).expect("address is ASCII");
    let mut refresh = match &shared.target.payload {
        Payload::RefreshChain(tokens) if !tokens.is_empty() => Some(tokens[index % tokens.len()].clone()),
        _ => None,
    };
    let mut pacer = shared.limits.pace.map(|p| {
        let mut i = tokio::time::interval(p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let pace_ns = shared.limits.pace.map(|p| u64::try_from(p.as_nanos()).unwrap_or(u64::MAX));
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        if Instant::now() >= shared.deadline {
            break;
        }
        if let Some(p) = pacer.as_mut() {
            p.tick().await;
        }
        let measured = Instant::now() >= shared.measure_from;
        if measured && shared.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
            break;
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(shared.target.addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    result.errors += u64::from(measured);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if s.ready().await.is_err() {
            sender = None;
            result.errors += u64::from(measured);
            continue;
        }
        let rotates = shared.target.rotation.is_some() || matches!(shared.target.payload, Payload::JsonRotation(_));
        let turn = if rotates { shared.turn.fetch_add(1, Ordering::Relaxed) } else { 0 };
        let request = build(&shared.target, &host, refresh.as_deref(), turn);
        let start = Instant::now();
        let answer = match s.send_request(request).await {
            Ok(resp) => {
                let status = resp.status();
                resp.into_body().collect().await.map(|b| (status, b.to_bytes())).ok()
            }
            Err(_) => None,
        };
        let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        match answer {
            Some((status, body)) if status == shared.target.expect => {
                if refresh.is_some()
                    && let Some(next) = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["refresh"].as_str().map(str::to_owned))
                {
                    refresh = Some(next);
                }
                if measured {
                    result.ok += 1;
                    let _ = match pace_ns {
                        Some(interval) => result.latency.record_correct(took, interval),
                        None => result.latency.record(took),
                    };
                }
            }
            Some(_) => result.errors += u64::from(measured),
            None => {
                sender = None;
                result.errors += u64::from(measured);
            }
        }
    }
    result.finished = Instant::now();
    result
}

/// Runs `target` under `limits` on the current runtime and waits for every worker.
pub async fn run(target: Target, limits: Limits) -> anyhow::Result<Outcome> {
    anyhow::ensure!(target.addr.ip().is_loopback(), "load targets must be loopback addresses, not {}", target.addr);
    anyhow::ensure!(limits.connections > 0, "at least one connection");
    let now = Instant::now();
    let measure_from = now + limits.warmup;
    let shared = Arc::new(Shared {
        target,
        limits,
        budget: AtomicU64::new(limits.max_requests),
        turn: AtomicUsize::new(0),
        measure_from,
        deadline: measure_from + limits.duration,
    });
    let workers: Vec<_> = (0..limits.connections).map(|i| tokio::spawn(worker(shared.clone(), i))).collect();
    let cpu_at_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        cpu_ticks()
    });
    let mut outcome =
        Outcome { ok: 0, errors: 0, elapsed: Duration::ZERO, latency: histogram(), server_cpu: None, load_cpu: None };
    let mut last = measure_from;
    for w in workers {
        let r = w.await?;
        outcome.ok += r.ok;
        outcome.errors += r.errors;
        outcome.latency.add(&r.latency)?;
        last = last.max(r.finished);
    }
    outcome.elapsed = last.saturating_duration_since(measure_from);
    if let (Some((total0, load0)), Some((total1, load1))) = (cpu_at_start.await?, cpu_ticks()) {
        let load = load1.saturating_sub(load0);
        outcome.load_cpu = Some(ticks(load));
        outcome.server_cpu = Some(ticks(total1.saturating_sub(total0).saturating_sub(load)));
    }
    Ok(outcome)
}

/// The `p`-th percentile (nearest rank) of `sorted` durations; zero when there are none.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `d` in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
