//! The `wpsmesh` binary: parses flags and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match wpsmesh::main(wpsmesh::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wpsmesh: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
