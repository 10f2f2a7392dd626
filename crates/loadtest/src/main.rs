//! `loadtest` binary: parse the options, build the two runtimes, run the scenarios, print.
//!
//! The services run on one tokio runtime (`server-*` threads), the load generator on another
//! (`loadgen-*` threads); both share the machine's cores.

use clap::Parser;
use loadtest::scenarios::{self, Options};

fn runtime(name: &'static str, threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build()
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let servers = runtime("server", options.server_threads.unwrap_or(cores));
    let loadgen = runtime("loadgen", options.load_threads.unwrap_or(cores));
    let (Ok(servers), Ok(loadgen)) = (servers, loadgen) else {
        eprintln!("loadtest: cannot build the tokio runtimes");
        return std::process::ExitCode::FAILURE;
    };
    match scenarios::run(&options, &servers, &loadgen) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
