//! `client-service` binary: a runnable demo microservice mounting the client crate.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use client_service::{ClientSettings, ClientState, Db};
use shared_user::server::{ClientAuth, Limits, Tls, TlsFiles, serve_tls};

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
    tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE")]
    tls_key_file: Option<std::path::PathBuf>,
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
            let tls = TlsFiles::from_settings(
                "",
                args.tls_cert_file.as_deref(),
                args.tls_key_file.as_deref(),
                None,
                ClientAuth::None,
            )?
            .map(Tls::load)
            .transpose()?;
            let config = args.client.into_config()?;
            shared_user::runtime::raise_fd_limit(limits.max_connections, DB_POOL_SIZE)?;
            let db = Db::connect(&args.db.database_url, DB_POOL_SIZE).await?;
            client_service::migrate(&db).await?;
            let state = ClientState::new(config, db)?;
            let listener = tokio::net::TcpListener::bind(args.bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
            let shutdown = client_service::shutdown_signal();
            if let Some(tls) = &tls {
                tls.watch(shared_user::server::tls::DEFAULT_POLL_INTERVAL);
            }
            tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "client-service listening");
            let app = client_service::demo::app(state.clone());
            serve_tls(listener, app, limits, tls, shutdown).await?;
            // The last users fetched reach the mirror before the process exits.
            state.flush_mirror().await;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli.log.init();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
