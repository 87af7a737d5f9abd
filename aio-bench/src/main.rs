//! `aio-bench`: runs the benchmark scenarios and prints one table per
//! comparison. This file holds the command line and the counting global
//! allocator; the rest is in the library.

use std::io::{self, Write};
use std::process::ExitCode;

use aio_bench::alloc_count::{self, CountingAlloc};
use aio_bench::report;
use aio_bench::{Plan, Scenario};
use clap::Parser;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

/// Benchmarks of the aio event loop on the poll and epoll monitors, each
/// against a reference measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "aio-bench")]
struct Args {
    /// Few rounds of small batches: checks that every scenario runs, in a
    /// few seconds; the figures mean little.
    #[arg(long)]
    quick: bool,

    /// Run only this scenario (repeatable; default: all).
    #[arg(long = "scenario", value_name = "NAME", value_enum)]
    scenarios: Vec<Scenario>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args, &mut io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // The reader went away (`| head`): nothing left to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aio-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenarios asked for, printing each one's tables as it ends.
/// Returns whether every scenario ran.
fn run(args: &Args, out: &mut impl Write) -> io::Result<bool> {
    let plan = if args.quick { Plan::QUICK } else { Plan::FULL };
    writeln!(
        out,
        "aio-bench, {} run: {} rounds per variant, batches of ~{} ms, {} ms warm-up; \
         variants interleaved round by round",
        plan.name,
        plan.rounds,
        plan.batch_time.as_millis(),
        plan.warmup.as_millis(),
    )?;
    writeln!(
        out,
        "figures: ns per iteration, median and p99 over rounds; allocs/iter: {}",
        if alloc_count::is_installed() {
            "heap allocation calls per iteration, all threads, timed batches only"
        } else {
            "not counted (the counting allocator is not installed)"
        }
    )?;
    writeln!(out, "machine: {}", machine())?;
    writeln!(out)?;
    out.flush()?;

    let mut all_ran = true;
    // In the canonical order, each once, however they were named.
    let scenarios = Scenario::ALL
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.contains(s));
    for scenario in scenarios {
        match scenario.run(&plan) {
            Ok(report) => write!(out, "{}", report::render_report(&report))?,
            Err(e) => {
                eprintln!("aio-bench: {}: {e}", scenario.name());
                all_ran = false;
            }
        }
        out.flush()?;
    }
    Ok(all_ran)
}

/// What the figures depend on beyond the code: CPUs and how busy they are.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned());
    format!(
        "{cpus} CPUs, load average {load} \
         (other work skews the figures, the remote round trip most)"
    )
}
