//! What both service binaries do at start and stop: tracing setup and the shutdown signal.

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
