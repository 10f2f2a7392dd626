//! `auth-service` binary: parse the command line, set up tracing, run the subcommand.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = auth_service::cli::Cli::parse();
    cli.log.init();
    let outcome = shared_user::runtime::service_runtime(cli.command.db_pool_size())
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(auth_service::cli::run(cli.command)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
