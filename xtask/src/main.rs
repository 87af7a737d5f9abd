//! `cargo xtask`: the project's chore runner (the `xtask` alias lives in
//! `.cargo/config.toml`). Each task is a subcommand; this file holds them
//! all while they stay small.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

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
    /// Run the whole test suite under AddressSanitizer: the stable
    /// toolchain with `RUSTC_BOOTSTRAP=1` and `-Zsanitizer=address`, for the
    /// host target (so build scripts and proc macros stay uninstrumented),
    /// in `target/asan` (the normal build is left alone). Fails on any
    /// report, leaks included. Extra arguments go to `cargo test`.
    Asan {
        /// Arguments for `cargo test` (a filter, `-- --nocapture`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Build the facade with every subset of its cargo features as a
    /// user's crate gets it: crate `feature-check`, built on its own with
    /// `--no-default-features --features ...`, so that only the subset
    /// reaches `aio` (the facade's dev-dependency on itself turns the
    /// defaults back on in `cargo test -p aio`). Clippy (`-D warnings`, all
    /// targets) on each set of backends with and without `tokio`; the tests
    /// on each set without `tokio`, and with it on one backend or none.
    /// One target dir, so the builds share their dependencies.
    Features,
    /// Check that every `unsafe` block, impl and extern block in the
    /// workspace's sources carries a `// SAFETY:` comment (clippy checks
    /// the code it compiles; this also reads what no target builds).
    UnsafeAudit,
}

/// The target AddressSanitizer runs on: the host's.
const ASAN_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Tests skipped under AddressSanitizer: they time the loop against a
/// wall clock (a poll time that a slow iteration resets, a completion
/// expected within a busy-poll window), and instrumented code is slow
/// enough to fail or hang them without any memory error. The normal test
/// step runs them.
const ASAN_SKIP: &[&str] = &[
    // fdmon-uring: a completion expected within a 32 us window.
    "a_plain_fd_made_ready_in_the_window_is_served_without_blocking",
];

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::Bench { args } => cargo(&["run", "--release", "--package", "aio-bench", "--"], &args),
        Task::Asan { args } => asan(&args),
        Task::UnsafeAudit => unsafe_audit(),
        Task::Features => features(),
    }
}

/// The facade's backend features, best first.
const BACKEND_FEATURES: [&str; 3] = ["io-uring", "epoll", "poll"];

/// Every subset of the backend features, with and without `tokio`, each
/// linted, and whether its tests run: every set of backends without
/// `tokio` (the single-backend ones run the conformance suite), and each
/// backend alone and none with `tokio`.
fn feature_subsets() -> Vec<(String, bool)> {
    let mut subsets = Vec::new();
    for mask in 0..1u8 << BACKEND_FEATURES.len() {
        let backends: Vec<&str> = (0..BACKEND_FEATURES.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| BACKEND_FEATURES[i])
            .collect();
        for tokio in [false, true] {
            let mut features = backends.clone();
            if tokio {
                features.push("tokio");
            }
            subsets.push((features.join(","), !tokio || backends.len() <= 1));
        }
    }
    subsets
}

fn features() -> ExitCode {
    let started = Instant::now();
    let mut steps = Vec::new();
    for (features, test) in feature_subsets() {
        let shown = if features.is_empty() {
            "(none)"
        } else {
            &features
        };
        let mut commands = vec![vec!["clippy", "--all-targets"]];
        if test {
            commands.push(vec!["test"]);
        }
        for mut args in commands {
            let lint = args[0] == "clippy";
            args.extend(["--package", "feature-check", "--no-default-features"]);
            if !features.is_empty() {
                args.extend(["--features", &features]);
            }
            if lint {
                args.extend(["--", "-D", "warnings"]);
            }
            println!("xtask features: cargo {}", args.join(" "));
            let step = Instant::now();
            let code = run_cargo(&args, &[], &[]);
            steps.push((format!("{:6} {shown}", args[0]), step.elapsed()));
            if code != ExitCode::SUCCESS {
                eprintln!(
                    "xtask features: failed with features {shown}: cargo {}",
                    args.join(" ")
                );
                return code;
            }
        }
    }
    println!("\nxtask features: every subset passed");
    for (step, took) in &steps {
        println!("  {:>6.1} s  {step}", took.as_secs_f64());
    }
    println!("  {:>6.1} s  in all", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

fn asan(args: &[OsString]) -> ExitCode {
    let flags = "-Zsanitizer=address -Cforce-frame-pointers=yes";
    let target_dir = root().join("target").join("asan");
    let target_dir = target_dir.to_string_lossy();
    let env = [
        ("RUSTC_BOOTSTRAP", "1"),
        ("RUSTFLAGS", flags),
        ("RUSTDOCFLAGS", flags),
        // Instrumented code at opt-level 0 is slow enough to upset tests
        // that time the loop (a poll time reset by a slow iteration); 1
        // keeps debug assertions and ASan's reports, at about the speed of
        // a normal debug build.
        ("CARGO_PROFILE_DEV_OPT_LEVEL", "1"),
        // Abort on the first report, and report leaks at exit.
        (
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1",
        ),
    ];
    let cargo_args = [
        "test",
        "--workspace",
        "--target",
        ASAN_TARGET,
        "--target-dir",
        &target_dir,
    ];
    let mut args = args.to_vec();
    if !args.iter().any(|a| a == "--") {
        args.push("--".into());
    }
    for test in ASAN_SKIP {
        args.extend(["--skip".into(), OsString::from(test)]);
    }
    run_cargo(&cargo_args, &args, &env)
}

/// Lines with an `unsafe` block, impl or extern block whose comment (on the
/// line or in the fifteen lines above, within the same statement) does not
/// say `SAFETY:`.
fn unsafe_audit() -> ExitCode {
    let (root, mut files) = (root(), Vec::new());
    collect_rust_files(&root, &mut files);
    let (mut sites, mut missing) = (0, Vec::new());
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !is_unsafe_site(code) {
                continue;
            }
            sites += 1;
            let documented = (i.saturating_sub(15)..=i)
                .rev()
                .any(|j| lines[j].contains("SAFETY:"))
                && !ends_statement_between(&lines, i);
            if !documented {
                let shown = file.strip_prefix(&root).unwrap_or(file);
                missing.push(format!("{}:{}: {}", shown.display(), i + 1, line.trim()));
            }
        }
    }
    println!(
        "{sites} unsafe blocks, impls and extern blocks in {} files",
        files.len()
    );
    if missing.is_empty() {
        println!("every one carries a SAFETY comment");
        return ExitCode::SUCCESS;
    }
    println!("without a SAFETY comment:");
    for m in &missing {
        println!("  {m}");
    }
    ExitCode::FAILURE
}

fn is_unsafe_site(code: &str) -> bool {
    code.match_indices("unsafe").any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + "unsafe".len()..].trim_start();
        before.is_none_or(|c| !c.is_alphanumeric() && c != '_')
            && (after.starts_with('{') || after.starts_with("impl") || after.starts_with("extern"))
    })
}

/// Whether a statement ends between the nearest `SAFETY:` comment above
/// line `i` and line `i` (the comment then belongs to something else).
fn ends_statement_between(lines: &[&str], i: usize) -> bool {
    let Some(comment) = (i.saturating_sub(15)..=i)
        .rev()
        .find(|&j| lines[j].contains("SAFETY:"))
    else {
        return true;
    };
    lines[comment + 1..i].iter().any(|l| {
        let l = l.trim();
        !(l.starts_with("//") || l.starts_with("#[")) && (l.ends_with(';') || l == "}")
    })
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                collect_rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf()
}

/// Runs the cargo that runs us (or `cargo` from `PATH`) at the workspace
/// root, and exits as it did.
fn cargo(cargo_args: &[&str], extra: &[OsString]) -> ExitCode {
    run_cargo(cargo_args, extra, &[])
}

/// [`cargo`], with environment variables set for it.
fn run_cargo(cargo_args: &[&str], extra: &[OsString], env: &[(&str, &str)]) -> ExitCode {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(cargo_args)
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(root())
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
