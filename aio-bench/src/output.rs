//! The files a run writes: `report.json` (everything measured, and the
//! self-check that reads it back), `report.md` (the same as Markdown
//! tables), `readme-section.md` (the compact form the README shows), and
//! the SVG plots of [`crate::plot`].

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::measure::Plan;
use crate::report::{self, ScenarioReport, Verdict};

/// The version of the JSON layout.
pub const SCHEMA: u32 = 1;

/// A whole run, as `report.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// [`SCHEMA`].
    pub schema: u32,
    /// How the run was started, e.g. `cargo xtask bench --quick`.
    pub command: String,
    /// How long and how often each variant was measured.
    pub plan: PlanInfo,
    /// What the figures depend on beyond the code.
    pub machine: Machine,
    /// How long the run took, in seconds.
    pub seconds: f64,
    /// The scenarios that ran, in order.
    pub scenarios: Vec<ScenarioReport>,
    /// The scenarios that failed, with their errors.
    pub failures: Vec<Failure>,
}

/// The measuring plan, as reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanInfo {
    /// `full` or `quick`.
    pub name: String,
    /// Warm-up per variant, in milliseconds.
    pub warmup_ms: f64,
    /// Timed batches per variant.
    pub rounds: u32,
    /// The length a batch is sized for, in milliseconds.
    pub batch_ms: f64,
}

impl From<&Plan> for PlanInfo {
    fn from(plan: &Plan) -> PlanInfo {
        PlanInfo {
            name: plan.name.to_owned(),
            warmup_ms: plan.warmup.as_secs_f64() * 1e3,
            rounds: plan.rounds,
            batch_ms: plan.batch_time.as_secs_f64() * 1e3,
        }
    }
}

/// The machine a run was made on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPUs the process could run on.
    pub cpus: usize,
    /// The processor, as `/proc/cpuinfo` names it.
    pub cpu_model: String,
    /// The kernel release.
    pub kernel: String,
    /// The load average before the run.
    pub load_before: String,
    /// The load average after the run.
    pub load_after: String,
    /// How threads were placed.
    pub pinning: String,
    /// What `Backend::Auto` chose, and why.
    pub auto_backend: String,
    /// What one blocking round trip between two threads costs here, from
    /// ping-pong (a)'s hand-written epoll row, and how it compares with
    /// `PollParams::IOTHREAD`'s ceiling (empty when ping-pong did not run).
    #[serde(default)]
    pub wake_up: String,
}

/// A scenario that did not run to the end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The scenario's name.
    pub scenario: String,
    /// Its error.
    pub error: String,
}

/// Where the files go: `DIR` if given, else `target/aio-bench` under the
/// workspace (or `CARGO_TARGET_DIR`).
pub fn out_dir(dir: Option<&Path>) -> PathBuf {
    if let Some(dir) = dir {
        return dir.to_owned();
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir.parent().unwrap_or(crate_dir);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    target.join("aio-bench")
}

/// Writes `report.json`, `report.md`, `readme-section.md` and the plots
/// into `dir`; returns the paths written.
///
/// # Errors
///
/// The directory or a file could not be written.
pub fn write_all(run: &Run, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = serde_json::to_string_pretty(run).map_err(io::Error::other)?;
    let path = dir.join("report.json");
    fs::write(&path, json)?;
    written.push(path);
    let path = dir.join("report.md");
    fs::write(&path, markdown(run))?;
    written.push(path);
    let path = dir.join("readme-section.md");
    fs::write(&path, readme_section(run))?;
    written.push(path);
    written.extend(crate::plot::write_plots(run, dir)?);
    Ok(written)
}

/// Reads `report.json` back and checks that it is well formed: the
/// scenarios asked for are there in order (or listed as failed), every
/// group has its reference among its rows with a ratio of 1, every figure
/// is a positive finite number, every row has one figure per round, and
/// every verdict agrees with its figure and limit. Returns the run, or
/// every problem found.
pub fn check_report(json: &str, expected: &[&str]) -> Result<Run, Vec<String>> {
    let run: Run = serde_json::from_str(json).map_err(|e| vec![format!("report.json: {e}")])?;
    let mut problems = Vec::new();
    if run.schema != SCHEMA {
        problems.push(format!("schema {} (expected {SCHEMA})", run.schema));
    }
    let ran: Vec<&str> = run
        .scenarios
        .iter()
        .map(|s| s.name.as_str())
        .chain(run.failures.iter().map(|f| f.scenario.as_str()))
        .collect();
    for name in expected {
        if !ran.contains(name) {
            problems.push(format!("scenario {name} is missing"));
        }
    }
    for failure in &run.failures {
        problems.push(format!(
            "scenario {} failed: {}",
            failure.scenario, failure.error
        ));
    }
    for scenario in &run.scenarios {
        let at = |what: &str| format!("{}: {what}", scenario.name);
        if scenario.groups.is_empty() {
            problems.push(at("no comparison"));
        }
        for group in &scenario.groups {
            let at = |what: &str| at(&format!("{}: {what}", group.id));
            match group.row(&group.reference) {
                None => problems.push(at(&format!("reference {} is not a row", group.reference))),
                Some(r) if r.ratio != Some(1.0) => problems.push(at("reference ratio is not 1")),
                Some(_) => {}
            }
            for row in &group.rows {
                let at = |what: &str| at(&format!("{}: {what}", row.name));
                let positive = |x: f64| x.is_finite() && x > 0.0;
                if !positive(row.median_ns) || !positive(row.p99_ns) {
                    problems.push(at("median or p99 is not a positive number"));
                }
                if row.rounds_ns.len() != row.rounds as usize || row.rounds == 0 {
                    problems.push(at("not one figure per round"));
                }
                if !row.ratio.is_some_and(positive) {
                    problems.push(at("no ratio"));
                }
                if row
                    .counters
                    .iter()
                    .any(|c| !c.per_iter.is_finite() || c.per_iter < 0.0)
                {
                    problems.push(at("a counter is not a number"));
                }
            }
        }
        for target in &scenario.targets {
            let expected = match target.measured {
                None => Verdict::NotMeasured,
                Some(m) if m <= target.limit => Verdict::Met,
                Some(_) => Verdict::NotMet,
            };
            if target.verdict != expected {
                problems.push(at(&format!(
                    "target {} {}: verdict {:?} for {:?} against {}",
                    target.group, target.variant, target.verdict, target.measured, target.limit
                )));
            }
            if scenario.group(&target.group).is_none() {
                problems.push(at(&format!("target about unknown group {}", target.group)));
            }
        }
    }
    if problems.is_empty() {
        Ok(run)
    } else {
        Err(problems)
    }
}

/// The whole report as Markdown.
pub fn markdown(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# aio-bench report\n");
    let _ = writeln!(out, "{}\n", header(run));
    let _ = writeln!(out, "## Targets\n");
    targets_table(&mut out, &run.scenarios);
    for scenario in &run.scenarios {
        let _ = writeln!(out, "\n## {}\n\n{}\n", scenario.name, scenario.about);
        for group in &scenario.groups {
            let _ = writeln!(
                out,
                "### {}\n\n{}; ratio: paired to `{}`.\n",
                group.title, group.figure, group.reference
            );
            let counters: Vec<String> = {
                let mut names: Vec<String> = Vec::new();
                for c in group.rows.iter().flat_map(|r| &r.counters) {
                    if !names.contains(&c.name) {
                        names.push(c.name.clone());
                    }
                }
                names
            };
            let _ = write!(
                out,
                "| variant | median ns | p99 ns | ratio | allocs/iter |"
            );
            for c in &counters {
                let _ = write!(out, " {c} |");
            }
            let _ = writeln!(out, " target |");
            let _ = write!(out, "| --- | ---: | ---: | ---: | ---: |");
            for _ in &counters {
                let _ = write!(out, " ---: |");
            }
            let _ = writeln!(out, " --- |");
            for row in &group.rows {
                let _ = write!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    row.name,
                    report::ns(row.median_ns),
                    report::ns(row.p99_ns),
                    row.ratio.map_or_else(|| "-".to_owned(), report::ratio),
                    row.allocs_per_iter
                        .map_or_else(|| "n/a".to_owned(), report::allocs),
                );
                for c in &counters {
                    let cell = row
                        .counter(c)
                        .map_or_else(|| "-".to_owned(), report::per_iter);
                    let _ = write!(out, " {cell} |");
                }
                let _ = writeln!(
                    out,
                    " {} |",
                    report::target_cell(&scenario.targets, &group.id, &row.name)
                );
            }
            for note in &group.notes {
                let _ = writeln!(out, "\n- {note}");
            }
            out.push('\n');
        }
        for summary in &scenario.summaries {
            let _ = writeln!(out, "### {}\n", summary.title);
            summary_table(&mut out, &summary.headers, &summary.rows);
            for note in &summary.notes {
                let _ = writeln!(out, "\n- {note}");
            }
            out.push('\n');
        }
    }
    if !run.failures.is_empty() {
        let _ = writeln!(out, "## Failures\n");
        for f in &run.failures {
            let _ = writeln!(out, "- {}: {}", f.scenario, f.error);
        }
    }
    out
}

fn header(run: &Run) -> String {
    let m = &run.machine;
    format!(
        "`{}`: {} plan ({} rounds of ~{} ms batches per variant, {} ms warm-up), {:.0} s. \
         Machine: {} CPUs ({}), Linux {}, load {} before and {} after; {}. \
         `aio-auto` ran on {}.{}",
        run.command,
        run.plan.name,
        run.plan.rounds,
        run.plan.batch_ms,
        run.plan.warmup_ms,
        run.seconds,
        m.cpus,
        m.cpu_model,
        m.kernel,
        m.load_before,
        m.load_after,
        m.pinning,
        m.auto_backend,
        if m.wake_up.is_empty() {
            String::new()
        } else {
            format!(" {}.", m.wake_up)
        },
    )
}

fn targets_table(out: &mut String, scenarios: &[ScenarioReport]) {
    targets_rows(out, scenarios, false);
}

/// The targets as a Markdown table; with `fold_allocations`, the
/// zero-allocation targets that were met are folded into one row.
fn targets_rows(out: &mut String, scenarios: &[ScenarioReport], fold_allocations: bool) {
    let _ = writeln!(
        out,
        "| verdict | comparison | variant | target | measured | why |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | ---: | --- |");
    let is_folded = |t: &&crate::report::Target| {
        fold_allocations && t.unit == "allocs/iter" && t.verdict == Verdict::Met
    };
    for t in scenarios.iter().flat_map(|s| &s.targets) {
        if is_folded(&t) {
            continue;
        }
        let verdict = match t.verdict {
            Verdict::NotMet => "**NOT MET**",
            other => other.label(),
        };
        let _ = writeln!(
            out,
            "| {verdict} | {} | `{}` | {} | {} | {} |",
            t.group,
            t.variant,
            t.what,
            t.measured_text(),
            t.note.as_deref().unwrap_or("")
        );
    }
    let folded = scenarios
        .iter()
        .flat_map(|s| &s.targets)
        .filter(|t| is_folded(t))
        .count();
    if folded > 0 {
        let _ = writeln!(
            out,
            "| met | allocations/* | every aio row | 0 allocations per iteration | 0 ({folded} paths x monitors) | |"
        );
    }
}

fn summary_table(out: &mut String, headers: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        headers.iter().map(|_| " ---: |").collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
}

/// The README's benchmark section (what goes between its markers): how to
/// reproduce, the targets, and one compact table per scenario (medians by
/// comparison and variant).
pub fn readme_section(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "`cargo xtask bench` runs every scenario on every aio monitor (`aio-poll`, \
         `aio-epoll`, `aio-io_uring`, and `aio-auto`, the facade's automatic choice) \
         and on the peers a user would pick instead (`mio`, `polling`, `tokio` on a \
         current-thread runtime), with the spin floor and hand-written loops as \
         references. Variants are measured interleaved, round by round (A B C, C B A, \
         ...), with the two threads of a ping-pong pinned to distinct CPUs; ratios are \
         paired: the median over rounds of a variant's figure divided by its \
         reference's figure in the same round. It prints the tables and writes \
         `target/aio-bench/report.md`, `report.json` and SVG plots \
         (`target/aio-bench/ping-pong.svg`, `loop-iteration.svg`, `timers.svg`, and one \
         per other scenario). `--quick` is the smoke run CI uses (every scenario, few \
         rounds, and a check that `report.json` reads back well formed); \
         `--scenario NAME` (repeatable) and `--variants LIST` pick what runs.\n"
    );
    let _ = writeln!(out, "Latest full run: {}\n", header(run));
    let _ = writeln!(out, "#### Targets\n");
    targets_rows(&mut out, &run.scenarios, true);
    // Allocations are in the targets; their figures are the other
    // scenarios' again.
    for scenario in run.scenarios.iter().filter(|s| s.name != "allocations") {
        let _ = writeln!(out, "\n#### {}: median ns\n", scenario.name);
        let mut variants: Vec<&str> = Vec::new();
        for row in scenario.groups.iter().flat_map(|g| &g.rows) {
            if !variants.contains(&row.name.as_str()) {
                variants.push(&row.name);
            }
        }
        let mut headers = vec!["comparison (reference)".to_owned()];
        headers.extend(variants.iter().map(|v| format!("`{v}`")));
        let rows: Vec<Vec<String>> = scenario
            .groups
            .iter()
            .map(|g| {
                let mut row = vec![format!("{} (`{}`)", g.title, g.reference)];
                row.extend(variants.iter().map(|v| {
                    g.row(v).map_or_else(
                        || "".to_owned(),
                        |m| {
                            let r = m
                                .ratio
                                .map_or_else(String::new, |r| format!(" ({})", report::ratio(r)));
                            format!("{}{r}", report::ns(m.median_ns))
                        },
                    )
                }));
                row
            })
            .collect();
        summary_table(&mut out, &headers, &rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Figure, Measurement};
    use crate::report::{Group, Target};

    fn row(name: &str, median_ns: f64) -> Measurement {
        Measurement {
            name: name.to_owned(),
            figure: Figure::BatchMean,
            median_ns,
            p99_ns: median_ns * 1.2,
            rounds_ns: vec![median_ns; 2],
            ratio: None,
            allocs_per_iter: Some(0.0),
            expects_no_allocs: true,
            batch: 10,
            rounds: 2,
            counters: Vec::new(),
        }
    }

    pub(crate) fn sample_run() -> Run {
        let group = Group::new(
            "loop-iteration/1",
            "loop iteration, K = 1",
            "ns per iteration",
            "raw-epoll",
            vec![row("raw-epoll", 100.0), row("aio-epoll", 104.0)],
            vec!["a note".to_owned()],
        );
        let target = Target::at_most(
            "loop-iteration/1",
            "aio-epoll",
            "<= 1.05x raw-epoll",
            group.ratio("aio-epoll", "raw-epoll"),
            1.05,
            "x",
        );
        Run {
            schema: SCHEMA,
            command: "cargo xtask bench".to_owned(),
            plan: PlanInfo::from(&Plan::QUICK),
            machine: Machine::default(),
            seconds: 1.0,
            scenarios: vec![ScenarioReport {
                name: "loop-iteration".to_owned(),
                about: "one iteration".to_owned(),
                groups: vec![group],
                summaries: Vec::new(),
                targets: vec![target],
                seconds: 0.0,
            }],
            failures: Vec::new(),
        }
    }

    #[test]
    fn a_written_report_reads_back_well_formed() {
        let run = sample_run();
        let json = serde_json::to_string_pretty(&run).unwrap();
        let back = check_report(&json, &["loop-iteration"]).unwrap();
        assert_eq!(back, run);
        let md = markdown(&run);
        assert!(
            md.contains("| `aio-epoll` | 104 | 125 | 1.04x | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| met | loop-iteration/1 | `aio-epoll` |"),
            "{md}"
        );
        let section = readme_section(&run);
        assert!(
            section.contains("| loop iteration, K = 1 (`raw-epoll`) | 100 (1.00x) | 104 (1.04x) |"),
            "{section}"
        );
    }

    #[test]
    fn the_check_finds_what_is_wrong() {
        let mut run = sample_run();
        run.scenarios[0].groups[0].rows[1].median_ns = -1.0;
        run.scenarios[0].groups[0].rows[0].rounds_ns.pop();
        run.scenarios[0].targets[0].verdict = Verdict::NotMet;
        run.scenarios[0].groups[0].reference = "nobody".to_owned();
        let json = serde_json::to_string(&run).unwrap();
        let problems = check_report(&json, &["loop-iteration", "timers"]).unwrap_err();
        let all = problems.join("\n");
        assert!(all.contains("scenario timers is missing"), "{all}");
        assert!(all.contains("reference nobody is not a row"), "{all}");
        assert!(all.contains("aio-epoll: median or p99"), "{all}");
        assert!(all.contains("raw-epoll: not one figure per round"), "{all}");
        assert!(all.contains("verdict NotMet"), "{all}");
        assert!(check_report("{", &[]).is_err());
    }
}
