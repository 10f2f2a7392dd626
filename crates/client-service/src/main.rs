//! `client-service` binary: a runnable demo microservice mounting the client crate.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use client_service::{ClientSettings, ClientState, Db, demo};
use shared_user::server::{BindError, ClientAuth, Limits, Listener, Tls, TlsFiles, serve_all};

/// The binary allocates with mimalloc: with a million users, glibc's malloc (its arena locks and
/// bin refills) took 15-18 % of the client's CPU per request (BENCHMARKS.md, #26 item 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gatehouse demo client-service: proxies /auth/token* to the auth-service and protects /api/*.
#[derive(Debug, Parser)]
#[command(name = "client-service", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Logging (`RUST_LOG`, `LOG_FORMAT`).
    #[command(flatten)]
    log: shared_user::runtime::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo service (migrates its mirror database first).
    Serve(Box<ServeArgs>),
    /// Apply pending migrations to the mirror database and exit.
    Migrate(DbArgs),
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Mirror database: `sqlite://FILE` (default) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://gatehouse-client.db")]
    database_url: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8001")]
    bind: SocketAddr,
    /// Address of the management listener: `/healthz`, `/readyz`, `/metrics` and
    /// `/openapi.json`. Set, `/metrics` and `/openapi.json` leave the public listener (BIND);
    /// the health checks stay there too, for load balancers. Default: none (all on BIND).
    #[arg(long, env = "MANAGEMENT_BIND")]
    management_bind: Option<SocketAddr>,
    /// PEM certificate chain of the management listener (with MANAGEMENT_TLS_KEY_FILE).
    /// Default: none (the public listener's TLS_CERT_FILE when set, else plain HTTP).
    #[arg(long, env = "MANAGEMENT_TLS_CERT_FILE")]
    management_tls_cert_file: Option<PathBuf>,
    /// PEM private key of the management listener (with MANAGEMENT_TLS_CERT_FILE).
    /// Default: none (the public listener's TLS_KEY_FILE when set).
    #[arg(long, env = "MANAGEMENT_TLS_KEY_FILE")]
    management_tls_key_file: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    client: ClientSettings,
    /// Listener limits (`HEADER_READ_TIMEOUT`, `IDLE_TIMEOUT`, `MAX_CONNECTIONS`,
    /// `MAX_CONNECTIONS_PER_IP`).
    #[command(flatten)]
    limits: Limits,
    /// PEM certificate chain (leaf first) of the listener; with TLS_KEY_FILE it speaks TLS
    /// 1.2/1.3 only (ALPN h2, http/1.1), reloaded on SIGHUP and when the files change. Unset:
    /// plain HTTP.
    #[arg(long, env = "TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
}

impl ServeArgs {
    /// The management listener's settings: TLS files only with `MANAGEMENT_BIND`.
    fn check_listeners(&self) -> anyhow::Result<()> {
        if (self.management_tls_cert_file.is_some() || self.management_tls_key_file.is_some())
            && self.management_bind.is_none()
        {
            anyhow::bail!(
                "MANAGEMENT_TLS_CERT_FILE and MANAGEMENT_TLS_KEY_FILE need MANAGEMENT_BIND (the listener they are for)"
            );
        }
        Ok(())
    }

    /// Each listener's TLS, loaded and watched: the public one from `TLS_CERT_FILE`/`_KEY_FILE`,
    /// the management one from its own files or else the public one's (plain HTTP where `None`).
    fn tls(&self) -> anyhow::Result<ListenerTls> {
        let public = TlsFiles::from_settings(
            "",
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            None,
            ClientAuth::None,
        )?;
        let management = match (&self.management_bind, &self.management_tls_cert_file, &self.management_tls_key_file) {
            (None, ..) => None,
            (Some(_), None, None) => public.clone(),
            (Some(_), cert, key) => {
                TlsFiles::from_settings("MANAGEMENT_", cert.as_deref(), key.as_deref(), None, ClientAuth::None)?
            }
        };
        let load = |files: Option<TlsFiles>| -> anyhow::Result<Option<Tls>> {
            let Some(files) = files else { return Ok(None) };
            let tls = Tls::load(files)?;
            tls.watch(shared_user::server::tls::DEFAULT_POLL_INTERVAL);
            Ok(Some(tls))
        };
        Ok(ListenerTls { public: load(public)?, management: load(management)? })
    }
}

/// The TLS of each listener (plain HTTP where `None`).
struct ListenerTls {
    public: Option<Tls>,
    management: Option<Tls>,
}

/// The listeners, bound, public first: `BIND`, then `MANAGEMENT_BIND` when set. One that cannot
/// be bound stops the start with a line naming its setting.
async fn listeners(
    bind: SocketAddr,
    management: Option<SocketAddr>,
    state: &ClientState,
) -> Result<Vec<Listener>, BindError> {
    let Some(management) = management else {
        return Ok(vec![Listener::bind("public", "BIND", bind, demo::app(state.clone())).await?]);
    };
    Ok(vec![
        Listener::bind("public", "BIND", bind, demo::public_app(state.clone())).await?,
        Listener::bind("management", "MANAGEMENT_BIND", management, demo::management_app(state.clone())).await?,
    ])
}

/// Pooled connections to the mirror database.
const DB_POOL_SIZE: usize = 8;

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate(db) => {
            let db = Db::connect(&db.database_url, 1).await?;
            println!("{} migration(s) applied", client_service::migrate(&db).await?);
        }
        Command::Serve(args) => {
            let limits = args.limits;
            limits.validate()?;
            args.check_listeners()?;
            let tls = args.tls()?;
            let config = args.client.into_config()?;
            shared_user::runtime::raise_fd_limit(limits.max_connections, DB_POOL_SIZE)?;
            let db = Db::connect(&args.db.database_url, DB_POOL_SIZE).await?;
            client_service::migrate(&db).await?;
            let state = ClientState::new(config, db)?;
            let listeners = listeners(args.bind, args.management_bind, &state)
                .await?
                .into_iter()
                .map(|listener| {
                    let tls = if listener.role() == "management" { tls.management.clone() } else { tls.public.clone() };
                    listener.with_tls(tls)
                })
                .collect();
            serve_all("client-service", listeners, limits, client_service::shutdown_signal()).await?;
            // The last users fetched reach the mirror before the process exits.
            state.flush_mirror().await;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli.log.init();
    let outcome = shared_user::runtime::service_runtime(DB_POOL_SIZE)
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
