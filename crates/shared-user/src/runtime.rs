//! What both service binaries do at start and stop: the runtime, tracing setup, the open-file
//! limit and the shutdown signal.

use std::io;

/// Blocking-pool threads a service keeps besides one per pooled database connection: reading
/// key and certificate files, and the odd blocking call of a library.
pub const BLOCKING_SPARE: usize = 4;

/// The multi-thread runtime of a service binary (one worker per core), whose blocking pool has
/// at most `db_connections` + [`BLOCKING_SPARE`] threads.
///
/// SQLite queries run on the blocking pool, one at a time per pooled connection, so more
/// threads than connections would only wait. Tokio's default cap is 512, and it starts a new
/// thread whenever a blocking call finds none idle at that instant: a burst of a thousand
/// requests that each make one query (the revocation feed's long polls arriving together)
/// started 60 threads for a 10-connection pool, each keeping its stack and its own malloc arena
/// resident (17 MiB in all, measured). Beyond the cap, blocking calls wait in a queue.
pub fn service_runtime(db_connections: usize) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(db_connections.max(1) + BLOCKING_SPARE)
        .build()
}

/// Open files a service keeps besides its client connections and database connections:
/// standard streams, listeners, the runtime's own (epoll, eventfd), key and certificate files,
/// connections to the auth-service, and a connection being refused at the cap.
pub const FD_SPARE: u64 = 64;

/// Open files per pooled database connection: an SQLite connection also holds its WAL and
/// shared-memory files (a PostgreSQL one needs only its socket).
const FD_PER_DB_CONNECTION: u64 = 3;

/// Why the service cannot start with its open-file limit.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// `MAX_CONNECTIONS` and the rest do not fit in the hard limit.
    #[error(
        "MAX_CONNECTIONS={max_connections} needs {needed} open files (connections, database, {FD_SPARE} spare) \
         but this process may open at most {limit} (hard RLIMIT_NOFILE): lower MAX_CONNECTIONS or raise the \
         hard limit (ulimit -Hn, systemd LimitNOFILE=)"
    )]
    TooLow {
        /// The configured `MAX_CONNECTIONS`.
        max_connections: usize,
        /// Open files the process needs at most.
        needed: u64,
        /// The soft limit after raising it as far as allowed.
        limit: u64,
    },
    /// The limit could not be read or raised.
    #[error("cannot raise the open-file limit (RLIMIT_NOFILE): {0}")]
    Raise(#[source] io::Error),
}

/// Raises this process's soft open-file limit (`RLIMIT_NOFILE`) to its hard limit, then checks
/// that `max_connections` client connections fit in it beside `db_connections` pooled database
/// connections and [`FD_SPARE`]. Returns the limit now in force. Call it once at start, before
/// opening the database: a service that would run out of descriptors under load refuses to start
/// instead.
pub fn raise_fd_limit(max_connections: usize, db_connections: usize) -> Result<u64, FdLimitError> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).map_err(FdLimitError::Raise)?;
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(u64::try_from(db_connections).unwrap_or(u64::MAX).saturating_mul(FD_PER_DB_CONNECTION))
        .saturating_add(FD_SPARE);
    if needed > limit {
        return Err(FdLimitError::TooLow { max_connections, needed, limit });
    }
    tracing::debug!(limit, needed, "open-file limit");
    Ok(limit)
}

/// `RUST_LOG`'s default: `info`, with tower-http's per-request lines only from `warn`.
pub const DEFAULT_LOG_FILTER: &str = "info,tower_http=warn";

/// The logging settings of both binaries, flattened into their command lines so `--help`
/// documents them (every subcommand shows them) like every other setting.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter: a level (`debug`) or per-target directives (`info,auth_service=debug`).
    #[arg(long = "log-filter", env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER, global = true)]
    pub rust_log: String,
    /// Log line format: `text`, or `json` for one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
}

impl LogArgs {
    /// Sets up tracing once with these settings (a filter that does not parse falls back to
    /// [`DEFAULT_LOG_FILTER`]).
    pub fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.rust_log)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
        init_with(filter, self.log_format.trim().eq_ignore_ascii_case("json"));
    }
}

/// Sets up tracing once: `RUST_LOG` filter, JSON lines when `LOG_FORMAT=json`.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    init_with(filter, std::env::var("LOG_FORMAT").is_ok_and(|v| v.trim().eq_ignore_ascii_case("json")));
}

fn init_with(filter: tracing_subscriber::EnvFilter, json: bool) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Resolves on Ctrl-C or SIGTERM.
///
/// On Unix the handlers are installed when this is called, not when the future is first polled,
/// so a signal that arrives between "listening" and the server's first poll still stops it
/// cleanly. Call it inside a Tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            async fn recv(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = recv(term) => {},
                () = recv(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
