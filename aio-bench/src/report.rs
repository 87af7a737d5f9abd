//! What a run reports, and how it is shown: one [`ScenarioReport`] per
//! scenario, made of comparisons ([`Group`]: variants measured together
//! against a named reference), [`Summary`] tables across them, and
//! [`Target`]s with their verdicts; the whole run is a [`Run`](crate::output::Run), written
//! as JSON and Markdown (see [`crate::output`]) and printed as plain-text
//! tables.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::measure::Measurement;

/// One comparison: variants measured together, interleaved, against a
/// named reference among them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// A short, stable name, e.g. `ping-pong/c`.
    pub id: String,
    /// What is compared.
    pub title: String,
    /// What the figures are, e.g. `round trip` or `ns per iteration`.
    pub figure: String,
    /// The name of the variant that the ratios are taken to.
    pub reference: String,
    /// The variants, in the order measured; each row's `ratio` is set.
    pub rows: Vec<Measurement>,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
}

impl Group {
    /// A group; sets each row's paired ratio to the reference.
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        figure: impl Into<String>,
        reference: impl Into<String>,
        mut rows: Vec<Measurement>,
        notes: Vec<String>,
    ) -> Group {
        let reference = reference.into();
        if let Some(r) = rows.iter().find(|m| m.name == reference).cloned() {
            for row in &mut rows {
                row.ratio = if row.name == reference {
                    Some(1.0)
                } else {
                    Some(row.paired_ratio(&r)).filter(|x| x.is_finite())
                };
            }
        }
        Group {
            id: id.into(),
            title: title.into(),
            figure: figure.into(),
            reference,
            rows,
            notes,
        }
    }

    /// The row of the variant called `name`.
    pub fn row(&self, name: &str) -> Option<&Measurement> {
        self.rows.iter().find(|m| m.name == name)
    }

    /// The paired ratio of variant `a` to variant `b`, if both ran.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.row(a)?.paired_ratio(self.row(b)?))
    }
}

/// A compact table of figures already formatted, across a scenario's
/// comparisons: one row per value of a parameter, one column per figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What the table shows.
    pub title: String,
    /// The column headers; the first column is the parameter.
    pub headers: Vec<String>,
    /// The cells, row by row, as many as there are headers.
    pub rows: Vec<Vec<String>>,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
}

/// Whether a target was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The figure is within the limit.
    Met,
    /// The figure is over the limit.
    NotMet,
    /// A figure it needs was not measured (filtered out, or failed).
    NotMeasured,
}

impl Verdict {
    /// How the tables spell it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT MET",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// A figure the project aims for, and what this run measured of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The id of the group whose row it is about.
    pub group: String,
    /// The variant it is about.
    pub variant: String,
    /// What is aimed for, e.g. `round trip <= 1.30x spin-floor`.
    pub what: String,
    /// The figure measured, in `unit`.
    pub measured: Option<f64>,
    /// The largest figure that meets the target.
    pub limit: f64,
    /// The unit of `measured` and `limit`: `x` for a ratio, `ns`, or
    /// `allocs/iter`.
    pub unit: String,
    /// Whether it was met.
    pub verdict: Verdict,
    /// Why it was not met, or how it was measured.
    pub note: Option<String>,
}

impl Target {
    /// A target met when `measured <= limit`.
    pub fn at_most(
        group: &str,
        variant: &str,
        what: impl Into<String>,
        measured: Option<f64>,
        limit: f64,
        unit: &str,
    ) -> Target {
        let measured = measured.filter(|m| m.is_finite());
        let verdict = match measured {
            None => Verdict::NotMeasured,
            Some(m) if m <= limit => Verdict::Met,
            Some(_) => Verdict::NotMet,
        };
        Target {
            group: group.to_owned(),
            variant: variant.to_owned(),
            what: what.into(),
            measured,
            limit,
            unit: unit.to_owned(),
            verdict,
            note: None,
        }
    }

    /// Adds a note, shown with the verdict.
    pub fn note(mut self, note: impl Into<String>) -> Target {
        self.note = Some(note.into());
        self
    }

    /// This target with `reason` as its note if it is not met: why, as
    /// measured when the target was looked into.
    #[must_use]
    pub fn note_if_not_met(self, reason: impl Into<String>) -> Target {
        if self.verdict == Verdict::NotMet {
            self.note(reason)
        } else {
            self
        }
    }

    /// The measured figure with its unit.
    pub fn measured_text(&self) -> String {
        self.measured
            .map_or_else(|| "-".to_owned(), |m| value(m, &self.unit))
    }

    /// The limit with its unit.
    pub fn limit_text(&self) -> String {
        value(self.limit, &self.unit)
    }
}

fn value(x: f64, unit: &str) -> String {
    match unit {
        "x" => ratio(x),
        "ns" => format!("{} ns", ns(x)),
        other => format!("{} {other}", allocs(x)),
    }
}

/// What one scenario reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// The scenario's command-line name.
    pub name: String,
    /// What it measures, in a sentence.
    pub about: String,
    /// One table per comparison.
    pub groups: Vec<Group>,
    /// Tables across the comparisons.
    pub summaries: Vec<Summary>,
    /// The targets about this scenario's figures.
    pub targets: Vec<Target>,
    /// How long the scenario took, in seconds.
    #[serde(default)]
    pub seconds: f64,
}

impl ScenarioReport {
    /// The group called `id`.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }
}

/// Renders a scenario: its comparisons, its summaries, its targets.
pub fn render_scenario(report: &ScenarioReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== {}: {} ({:.0} s)",
        report.name, report.about, report.seconds
    );
    out.push('\n');
    let name_width = report
        .groups
        .iter()
        .flat_map(|g| g.rows.iter().map(|m| m.name.len()))
        .chain([HEADERS[0].len(), 16])
        .max()
        .unwrap_or_default();
    for group in &report.groups {
        render_group(&mut out, group, &report.targets, name_width);
    }
    for summary in &report.summaries {
        render_summary(&mut out, summary);
    }
    out
}

const HEADERS: [&str; 5] = ["variant", "median ns", "p99 ns", "ratio", "allocs/iter"];
const NUMBER_WIDTH: usize = 11;

fn render_group(out: &mut String, group: &Group, targets: &[Target], name_width: usize) {
    let _ = writeln!(
        out,
        "{} [{}; ratio to {}]",
        group.title, group.figure, group.reference
    );
    let counters = counter_names(group);
    let _ = write!(out, "  {:<name_width$}", HEADERS[0]);
    for header in &HEADERS[1..] {
        let _ = write!(out, " {header:>NUMBER_WIDTH$}");
    }
    for name in &counters {
        let _ = write!(out, " {name:>w$}", w = name.len().max(NUMBER_WIDTH));
    }
    let _ = writeln!(out, "  target");
    for row in &group.rows {
        let ratio = row.ratio.map_or_else(|| "-".to_owned(), ratio);
        let mut allocs = row.allocs_per_iter.map_or_else(|| "n/a".to_owned(), allocs);
        if row.allocates_unexpectedly() {
            allocs.push_str(" !");
        }
        let _ = write!(
            out,
            "  {:<name_width$} {:>NUMBER_WIDTH$} {:>NUMBER_WIDTH$} {ratio:>NUMBER_WIDTH$} {allocs:>NUMBER_WIDTH$}",
            row.name,
            ns(row.median_ns),
            ns(row.p99_ns),
        );
        for name in &counters {
            let cell = row.counter(name).map_or_else(|| "-".to_owned(), per_iter);
            let _ = write!(out, " {cell:>w$}", w = name.len().max(NUMBER_WIDTH));
        }
        let _ = writeln!(out, "  {}", target_cell(targets, &group.id, &row.name));
    }
    for row in group.rows.iter().filter(|m| m.allocates_unexpectedly()) {
        let _ = writeln!(
            out,
            "  ! {} allocates in steady state; it should not",
            row.name
        );
    }
    for note in &group.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out.push('\n');
}

/// The names of the counters any row of `group` has, in order of first
/// appearance.
fn counter_names(group: &Group) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for c in group.rows.iter().flat_map(|r| &r.counters) {
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    names
}

/// The verdicts of the targets about one row, e.g. `met <=1.05x raw-epoll`.
pub fn target_cell(targets: &[Target], group: &str, variant: &str) -> String {
    targets
        .iter()
        .filter(|t| t.group == group && t.variant == variant)
        .map(|t| format!("{}: {}", t.verdict.label(), t.what))
        .collect::<Vec<_>>()
        .join("; ")
}

fn render_summary(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "{}", summary.title);
    let width = |col: usize| {
        summary
            .rows
            .iter()
            .filter_map(|row| row.get(col))
            .chain(summary.headers.get(col))
            .map(String::len)
            .max()
            .unwrap_or_default()
    };
    for row in std::iter::once(&summary.headers).chain(&summary.rows) {
        let _ = write!(
            out,
            "  {:>w$}",
            row.first().map_or("", String::as_str),
            w = width(0)
        );
        for (col, cell) in row.iter().enumerate().skip(1) {
            let _ = write!(out, " {cell:>w$}", w = width(col).max(NUMBER_WIDTH));
        }
        out.push('\n');
    }
    for note in &summary.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out.push('\n');
}

/// Renders every target of a run with its verdict, as a plain-text table.
pub fn render_targets(scenarios: &[ScenarioReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== targets (measured in this run)");
    let rows: Vec<[String; 5]> = scenarios
        .iter()
        .flat_map(|s| &s.targets)
        .map(|t| {
            [
                t.verdict.label().to_owned(),
                format!("{} {}", t.group, t.variant),
                t.what.clone(),
                t.measured_text(),
                t.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let width = |col: usize| rows.iter().map(|r| r[col].len()).max().unwrap_or(0);
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    for r in &rows {
        let _ = writeln!(
            out,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
            r[0], r[1], r[2], r[3], r[4]
        );
    }
    let count = |v: Verdict| {
        scenarios
            .iter()
            .flat_map(|s| &s.targets)
            .filter(|t| t.verdict == v)
            .count()
    };
    let _ = writeln!(
        out,
        "  {} met, {} not met, {} not measured",
        count(Verdict::Met),
        count(Verdict::NotMet),
        count(Verdict::NotMeasured)
    );
    out
}

/// Nanoseconds: one decimal below 100, whole numbers above.
pub fn ns(x: f64) -> String {
    if !x.is_finite() {
        "-".to_owned()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// A ratio, with enough digits that a small one does not round to zero.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        "-".to_owned()
    } else if x < 0.1 {
        format!("{x:.4}x")
    } else {
        format!("{x:.2}x")
    }
}

/// A counter per iteration.
pub fn per_iter(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if x < 0.01 {
        format!("{x:.4}")
    } else {
        format!("{x:.2}")
    }
}

/// Allocations per iteration: `0` only when there were none at all, and
/// enough digits that a rare allocation does not round to zero.
pub fn allocs(per_iter: f64) -> String {
    if per_iter == 0.0 {
        "0".to_owned()
    } else if per_iter < 0.01 {
        format!("{per_iter:.5}")
    } else {
        format!("{per_iter:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Counter, Figure};

    pub(crate) fn row(
        name: &str,
        median_ns: f64,
        allocs: Option<f64>,
        no_allocs: bool,
    ) -> Measurement {
        Measurement {
            name: name.to_owned(),
            figure: Figure::BatchMean,
            median_ns,
            p99_ns: median_ns * 1.5,
            rounds_ns: vec![median_ns; 3],
            ratio: None,
            allocs_per_iter: allocs,
            expects_no_allocs: no_allocs,
            batch: 100,
            rounds: 3,
            counters: Vec::new(),
        }
    }

    fn scenario(groups: Vec<Group>, targets: Vec<Target>) -> ScenarioReport {
        ScenarioReport {
            name: "loop".to_owned(),
            about: "a test".to_owned(),
            groups,
            summaries: Vec::new(),
            targets,
            seconds: 0.0,
        }
    }

    #[test]
    fn ratios_are_to_the_reference_and_columns_align() {
        let mut counted = row("a-much-longer-variant-name", 300.0, Some(0.0), true);
        counted.counters.push(Counter {
            name: "waits".to_owned(),
            per_iter: 2.0,
        });
        let group = Group::new(
            "loop/1",
            "loop",
            "ns per iteration",
            "raw",
            vec![row("raw", 200.0, Some(0.0), true), counted],
            vec!["hello".to_owned()],
        );
        assert_eq!(group.rows[0].ratio, Some(1.0));
        assert_eq!(group.rows[1].ratio, Some(1.5));
        assert_eq!(
            group.ratio("raw", "a-much-longer-variant-name"),
            Some(200.0 / 300.0)
        );
        let target = Target::at_most("loop/1", "raw", "<= 1.05x raw", Some(1.0), 1.05, "x");
        let text = render_scenario(&scenario(vec![group], vec![target]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "== loop: a test (0 s)");
        assert_eq!(lines[2], "loop [ns per iteration; ratio to raw]");
        assert!(lines[3].contains("waits"), "{text}");
        assert!(lines[4].contains("1.00x"), "{text}");
        assert!(lines[4].ends_with("met: <= 1.05x raw"), "{text}");
        assert!(lines[5].contains("1.50x"), "{text}");
        assert!(lines[5].contains(" 2.00"), "{text}");
        assert_eq!(lines[4].find("1.00x"), lines[5].find("1.50x"), "{text}");
        assert!(lines[6].contains("note: hello"));
    }

    #[test]
    fn verdicts_follow_the_limit() {
        let t = |m| Target::at_most("g", "v", "w", m, 1.0, "x").verdict;
        assert_eq!(t(Some(0.5)), Verdict::Met);
        assert_eq!(t(Some(1.0)), Verdict::Met);
        assert_eq!(t(Some(1.01)), Verdict::NotMet);
        assert_eq!(t(None), Verdict::NotMeasured);
        assert_eq!(t(Some(f64::NAN)), Verdict::NotMeasured);
        let text = render_targets(&[scenario(
            Vec::new(),
            vec![Target::at_most("g", "v", "fast", Some(2.0), 1.0, "x").note("slow VM")],
        )]);
        assert!(
            text.contains("NOT MET  g v  fast  2.00x  slow VM"),
            "{text}"
        );
        assert!(text.contains("0 met, 1 not met, 0 not measured"), "{text}");
    }

    #[test]
    fn summaries_follow_the_groups_aligned() {
        let mut report = scenario(
            vec![Group::new(
                "l",
                "loop",
                "ns",
                "raw",
                vec![row("raw", 200.0, Some(0.0), true)],
                Vec::new(),
            )],
            Vec::new(),
        );
        report.summaries.push(Summary {
            title: "by K".to_owned(),
            headers: vec!["K".to_owned(), "poll".to_owned()],
            rows: vec![
                vec!["1".to_owned(), "10.0".to_owned()],
                vec!["10000".to_owned(), "123456".to_owned()],
            ],
            notes: vec!["crossover".to_owned()],
        });
        let text = render_scenario(&report);
        let at = text.find("by K").expect("the summary follows the group");
        assert!(at > text.find("loop [ns").unwrap(), "{text}");
        let lines: Vec<&str> = text[at..].lines().collect();
        assert_eq!(lines[1].len(), lines[2].len(), "{text}");
        assert_eq!(lines[2].len(), lines[3].len(), "{text}");
        assert!(lines[3].starts_with("  10000"), "{text}");
        assert!(lines[4].contains("note: crossover"), "{text}");
    }

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(allocs(0.0), "0");
        assert_eq!(allocs(0.00002), "0.00002");
        assert_eq!(allocs(1.0), "1.00");
        assert_eq!(ratio(0.0044), "0.0044x");
        assert_eq!(ratio(1.5), "1.50x");
        assert_eq!(ns(42.25), "42.2");
        assert_eq!(ns(1234.4), "1234");
        assert_eq!(ns(f64::NAN), "-");
        assert_eq!(per_iter(0.5), "0.50");
    }

    #[test]
    fn unexpected_allocations_are_flagged() {
        let group = Group::new(
            "bh",
            "bh",
            "ns",
            "oneshot",
            vec![
                row("oneshot", 100.0, Some(1.0), false),
                row("reused", 50.0, Some(2.0), true),
                row("uncounted", 50.0, None, true),
            ],
            Vec::new(),
        );
        let text = render_scenario(&scenario(vec![group], Vec::new()));
        assert!(text.contains("2.00 !"), "{text}");
        assert!(text.contains("! reused allocates"), "{text}");
        assert!(!text.contains("! oneshot"), "{text}");
        assert!(text.contains("n/a"), "{text}");
    }
}
