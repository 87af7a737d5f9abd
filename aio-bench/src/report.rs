//! The plain-text report: one table per comparison ([`Group`]), with the
//! median and p99 nanoseconds per iteration of each variant, its ratio to
//! the group's reference, and its heap allocations per iteration; then a
//! scenario's [`Summary`] tables, figures across its comparisons.

use std::fmt::Write;

use crate::measure::Measurement;

/// One comparison: variants measured together, interleaved, against a
/// named reference among them.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// What is compared, e.g. `loop-iteration: 64 idle + 1 active eventfd`.
    pub title: String,
    /// The name of the variant that the ratios are taken to.
    pub reference: String,
    /// The variants, in the order measured.
    pub rows: Vec<Measurement>,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
}

impl Group {
    /// The reference's median, if the reference was measured.
    fn reference_median(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|m| m.name == self.reference)
            .map(|m| m.median_ns)
    }
}

/// A compact table of figures already formatted, across a scenario's
/// comparisons: one row per value of a parameter, one column per figure.
#[derive(Clone, Debug, PartialEq)]
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

/// What a scenario reports: its comparisons, then its summaries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// One table per comparison.
    pub groups: Vec<Group>,
    /// Tables across the comparisons.
    pub summaries: Vec<Summary>,
}

impl From<Vec<Group>> for Report {
    fn from(groups: Vec<Group>) -> Report {
        Report {
            groups,
            summaries: Vec::new(),
        }
    }
}

/// Renders a scenario's report: its comparisons, then its summaries.
pub fn render_report(report: &Report) -> String {
    let mut out = render(&report.groups);
    for summary in &report.summaries {
        render_summary(&mut out, summary);
    }
    out
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

const HEADERS: [&str; 5] = ["variant", "median ns", "p99 ns", "ratio", "allocs/iter"];
const NUMBER_WIDTH: usize = 12;

/// Renders `groups` as aligned plain-text tables, one after another.
pub fn render(groups: &[Group]) -> String {
    let name_width = groups
        .iter()
        .flat_map(|g| g.rows.iter().map(|m| m.name.len()))
        .chain([HEADERS[0].len(), 24])
        .max()
        .unwrap_or_default();
    let mut out = String::new();
    for group in groups {
        render_group(&mut out, group, name_width);
    }
    out
}

fn render_group(out: &mut String, group: &Group, name_width: usize) {
    let _ = writeln!(out, "{} (ratio to {})", group.title, group.reference);
    let _ = write!(out, "  {:<name_width$}", HEADERS[0]);
    for header in &HEADERS[1..] {
        let _ = write!(out, " {header:>NUMBER_WIDTH$}");
    }
    out.push('\n');
    let reference = group.reference_median();
    for row in &group.rows {
        let ratio = match reference {
            Some(r) if r > 0.0 => ratio(row.median_ns / r),
            _ => "-".to_owned(),
        };
        let allocs = row.allocs_per_iter.map_or_else(|| "n/a".to_owned(), allocs);
        let flag = if row.allocates_unexpectedly() {
            " !"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<name_width$} {:>NUMBER_WIDTH$.1} {:>NUMBER_WIDTH$.1} {ratio:>NUMBER_WIDTH$} {allocs:>NUMBER_WIDTH$}{flag}",
            row.name, row.median_ns, row.p99_ns,
        );
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

/// A ratio of medians, with enough digits that a small one does not round
/// to zero.
pub fn ratio(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.4}x")
    } else {
        format!("{x:.2}x")
    }
}

/// Allocations per iteration: `0` only when there were none at all, and
/// enough digits that a rare allocation does not round to zero.
fn allocs(per_iter: f64) -> String {
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

    fn row(name: &str, median_ns: f64, allocs: Option<f64>, no_allocs: bool) -> Measurement {
        Measurement {
            name: name.to_owned(),
            median_ns,
            p99_ns: median_ns * 1.5,
            allocs_per_iter: allocs,
            expects_no_allocs: no_allocs,
            batch: 100,
            rounds: 3,
        }
    }

    #[test]
    fn ratios_are_to_the_reference_and_columns_align() {
        let group = Group {
            title: "loop".to_owned(),
            reference: "raw".to_owned(),
            rows: vec![
                row("raw", 200.0, Some(0.0), true),
                row("a-much-longer-variant-name", 300.0, Some(0.0), true),
            ],
            notes: vec!["hello".to_owned()],
        };
        let text = render(&[group]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "loop (ratio to raw)");
        assert!(lines[2].contains("1.00x"), "{text}");
        assert!(lines[3].contains("1.50x"), "{text}");
        assert_eq!(lines[1].len(), lines[2].len(), "{text}");
        assert_eq!(lines[2].len(), lines[3].len(), "{text}");
        assert!(lines[4].contains("note: hello"));
    }

    #[test]
    fn summaries_follow_the_groups_aligned() {
        let report = Report {
            groups: vec![Group {
                title: "loop".to_owned(),
                reference: "raw".to_owned(),
                rows: vec![row("raw", 200.0, Some(0.0), true)],
                notes: Vec::new(),
            }],
            summaries: vec![Summary {
                title: "by K".to_owned(),
                headers: vec!["K".to_owned(), "poll".to_owned()],
                rows: vec![
                    vec!["1".to_owned(), "10.0".to_owned()],
                    vec!["10000".to_owned(), "123456.0".to_owned()],
                ],
                notes: vec!["crossover".to_owned()],
            }],
        };
        let text = render_report(&report);
        let at = text.find("by K").expect("the summary follows the group");
        assert!(at > text.find("loop (ratio to raw)").unwrap(), "{text}");
        let lines: Vec<&str> = text[at..].lines().collect();
        assert_eq!(lines[1].len(), lines[2].len(), "{text}");
        assert_eq!(lines[2].len(), lines[3].len(), "{text}");
        assert!(lines[3].starts_with("  10000"), "{text}");
        assert!(lines[4].contains("note: crossover"), "{text}");
    }

    #[test]
    fn rare_allocations_do_not_round_to_zero() {
        assert_eq!(allocs(0.0), "0");
        assert_eq!(allocs(0.00002), "0.00002");
        assert_eq!(allocs(1.0), "1.00");
        assert_eq!(ratio(0.0044), "0.0044x");
        assert_eq!(ratio(1.5), "1.50x");
    }

    #[test]
    fn unexpected_allocations_are_flagged() {
        let group = Group {
            title: "bh".to_owned(),
            reference: "oneshot".to_owned(),
            rows: vec![
                row("oneshot", 100.0, Some(1.0), false),
                row("reused", 50.0, Some(2.0), true),
                row("uncounted", 50.0, None, true),
            ],
            notes: Vec::new(),
        };
        let text = render(&[group]);
        assert!(text.contains("2.00 !"), "{text}");
        assert!(text.contains("! reused allocates"), "{text}");
        assert!(!text.contains("! oneshot"), "{text}");
        assert!(text.contains("n/a"), "{text}");
    }
}
