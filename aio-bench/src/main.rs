//! `aio-bench`: runs the benchmark scenarios, prints their tables and the
//! targets, writes `report.json`, `report.md`, the README section and the
//! plots, then reads `report.json` back to check it. This file holds the
//! command line and the counting global allocator; the rest is in the
//! library.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use aio_bench::alloc_count::{self, CountingAlloc};
use aio_bench::env::{self, Cpus, Env, Filter, Progress};
use aio_bench::output::{self, Failure, Machine, Run};
use aio_bench::report;
use aio_bench::{Plan, Scenario};
use clap::Parser;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

/// The aio benchmark: ping-pong, loop iteration, registration churn, bottom
/// halves, remote notify, timer lateness and steady-state allocations, on
/// every aio monitor and on mio, polling and tokio, each against references
/// measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "aio-bench")]
struct Args {
    /// Few rounds of small batches: checks that every scenario runs and
    /// that the report is well formed, in under a minute; the figures mean
    /// little.
    #[arg(long)]
    quick: bool,

    /// Run only this scenario (repeatable; default: all).
    #[arg(long = "scenario", value_name = "NAME", value_enum)]
    scenarios: Vec<Scenario>,

    /// Run only the variants whose name contains one of these
    /// comma-separated strings (e.g. `io_uring,tokio`); each comparison's
    /// reference always runs.
    #[arg(long = "variants", value_name = "LIST")]
    variants: Vec<String>,

    /// Where to write the report and plots (default: target/aio-bench).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Do not pin threads to CPUs.
    #[arg(long)]
    no_pin: bool,
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

/// Runs the scenarios asked for, printing each one's tables as it ends,
/// then writes and checks the report. Returns whether everything ran and
/// the report is well formed.
fn run(args: &Args, out: &mut impl Write) -> io::Result<bool> {
    let started = Instant::now();
    let plan = if args.quick { Plan::QUICK } else { Plan::FULL };
    let cpus = if args.no_pin {
        Cpus::NONE
    } else {
        Cpus::detect()
    };
    // Before pinning, which narrows what the thread may see.
    let mut machine = machine(&cpus);
    cpus.pin_home()?;
    let filter = Filter::new(&args.variants);
    let progress = Progress::for_terminal();

    writeln!(
        out,
        "aio-bench, {} run: {} rounds per variant, batches of ~{} us, {} ms warm-up; \
         variants interleaved round by round (A B C, C B A, ...)",
        plan.name,
        plan.rounds,
        plan.batch_time.as_micros(),
        plan.warmup.as_millis(),
    )?;
    writeln!(
        out,
        "figures: median and p99 over rounds of the mean per iteration (over every sample for \
         timers); ratio: median over rounds of the variant's figure / its reference's in the \
         same round; allocs/iter: {}",
        if alloc_count::is_installed() {
            "heap allocation calls per iteration, all threads, timed batches only"
        } else {
            "not counted (the counting allocator is not installed)"
        }
    )?;
    writeln!(
        out,
        "machine: {} CPUs ({}), Linux {}, load {}; {}; aio-auto runs on {}",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        machine.load_before,
        machine.pinning,
        machine.auto_backend
    )?;
    writeln!(out)?;
    out.flush()?;

    let env = Env {
        plan,
        filter: &filter,
        cpus,
        progress: &progress,
    };
    // In the canonical order, each once, however they were named.
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.contains(s))
        .collect();
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for &scenario in &scenarios {
        let start = Instant::now();
        match scenario.run(&env) {
            Ok(mut report) => {
                report.seconds = start.elapsed().as_secs_f64();
                progress.suspend(|| write!(out, "{}", report::render_scenario(&report)))?;
                reports.push(report);
            }
            Err(e) => {
                progress.suspend(|| eprintln!("aio-bench: {}: {e}", scenario.name()));
                failures.push(Failure {
                    scenario: scenario.name().to_owned(),
                    error: e.to_string(),
                });
            }
        }
        out.flush()?;
    }
    progress.finish();
    write!(out, "{}", report::render_targets(&reports))?;

    machine.load_after = load_average();
    if let Some(wake_up) = reports
        .iter()
        .find_map(aio_bench::scenarios::ping_pong::wake_up)
    {
        writeln!(out, "\n{wake_up}")?;
        machine.wake_up = wake_up;
    }
    let command = std::iter::once("cargo xtask bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let run = Run {
        schema: output::SCHEMA,
        command,
        plan: (&plan).into(),
        machine,
        seconds: started.elapsed().as_secs_f64(),
        scenarios: reports,
        failures,
    };
    let dir = output::out_dir(args.out.as_deref());
    let written = output::write_all(&run, &dir)?;
    let json = std::fs::read_to_string(dir.join("report.json"))?;
    let expected: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
    let checked = output::check_report(&json, &expected);
    writeln!(out)?;
    for path in &written {
        writeln!(out, "wrote {}", path.display())?;
    }
    match &checked {
        Ok(_) => writeln!(
            out,
            "report.json reads back well formed ({} scenarios); {:.0} s",
            expected.len(),
            run.seconds
        )?,
        Err(problems) => {
            for problem in problems {
                eprintln!("aio-bench: report check: {problem}");
            }
        }
    }
    Ok(run.failures.is_empty() && checked.is_ok())
}

/// What the figures depend on beyond the code.
fn machine(cpus: &Cpus) -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    // The release's major and minor numbers: the rest names a build.
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().split('.').take(2).collect::<Vec<_>>().join("."))
        .unwrap_or_else(|_| "unknown".to_owned());
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        kernel,
        load_before: load_average(),
        load_after: String::new(),
        pinning: cpus.describe(),
        auto_backend: env::auto_backend(),
        wake_up: String::new(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}
