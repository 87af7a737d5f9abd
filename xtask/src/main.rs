//! `cargo xtask`: the project's chore runner (the `xtask` alias lives in
//! `.cargo/config.toml`). Each task is a subcommand; this file holds them
//! all while they stay small.

use std::env;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

/// Chores of the aio workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build and run the benchmarks (`aio-bench`) in release mode; every
    /// argument, `--help` included, goes to `aio-bench`.
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments for `aio-bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::Bench { args } => cargo(&["run", "--release", "--package", "aio-bench", "--"], &args),
    }
}

/// Runs the cargo that runs us (or `cargo` from `PATH`) at the workspace
/// root, and exits as it did.
fn cargo(cargo_args: &[&str], extra: &[OsString]) -> ExitCode {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."));
    let status = Command::new(&cargo)
        .args(cargo_args)
        .args(extra)
        .current_dir(root)
        .status();
    match status {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => {
                eprintln!("xtask: {} was killed ({status})", cargo.to_string_lossy());
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("xtask: cannot run {}: {e}", cargo.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
