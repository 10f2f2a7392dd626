//! `auth-service` binary: parse the command line, set up tracing, run the subcommand.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = auth_service::cli::Cli::parse();
    cli.log.init();
    match auth_service::cli::run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
