//! `client-service` binary: a runnable demo microservice mounting the client crate.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use client_service::{ClientArgs, ClientState, shared_user::Db};

/// Gatehouse demo client-service: proxies /auth/token* to the auth-service and protects /api/*.
#[derive(Debug, Parser)]
#[command(name = "client-service", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    client: ClientArgs,
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate(db) => {
            let db = Db::connect(&db.database_url, 1).await?;
            println!("{} migration(s) applied", db.migrate().await?);
        }
        Command::Serve(args) => {
            let config = args.client.into_config().map_err(anyhow::Error::msg)?;
            let db = Db::connect(&args.db.database_url, 8).await?;
            db.migrate().await?;
            let state = ClientState::new(config, db).map_err(anyhow::Error::msg)?;
            let listener = tokio::net::TcpListener::bind(args.bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
            tracing::info!(addr = %listener.local_addr()?, "client-service listening");
            let app = client_service::demo::app(state).into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app).with_graceful_shutdown(client_service::shutdown_signal()).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    client_service::init_tracing();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
