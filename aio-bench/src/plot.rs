//! SVG plots of a run, drawn with plotters' SVG backend (text is left to
//! the SVG viewer, so no font is needed here):
//!
//! * `loop-iteration.svg`: the cost of one iteration against the number of
//!   idle fds K, one line per variant, log-log;
//! * one chart per other scenario (`ping-pong.svg`, `timers.svg`, ...): a
//!   panel per comparison, a bar per variant up to its median, and a
//!   whisker from the median to the p99, on a log scale.

use std::io;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::output::Run;
use crate::report::{Group, ScenarioReport};

/// Draws the plots of `run` into `dir`; returns the files written.
///
/// # Errors
///
/// A file could not be written.
pub fn write_plots(run: &Run, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for scenario in &run.scenarios {
        if scenario.groups.is_empty() {
            continue;
        }
        let path = dir.join(format!("{}.svg", scenario.name));
        if scenario.name == "loop-iteration" {
            by_k(scenario, &path)
        } else {
            bars(scenario, &path)
        }
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// The number of idle fds of a loop-iteration group, from its id
/// (`loop-iteration/64`).
fn idle_count(group: &Group) -> Option<f64> {
    group.id.rsplit('/').next()?.parse().ok()
}

fn by_k(scenario: &ScenarioReport, path: &Path) -> PlotResult {
    let mut variants: Vec<&str> = Vec::new();
    for row in scenario.groups.iter().flat_map(|g| &g.rows) {
        if !variants.contains(&row.name.as_str()) {
            variants.push(&row.name);
        }
    }
    let points: Vec<(f64, &Group)> = scenario
        .groups
        .iter()
        .filter_map(|g| Some((idle_count(g)?, g)))
        .collect();
    let ks = points.iter().map(|(k, _)| *k);
    let (k_lo, k_hi) = (ks.clone().fold(f64::MAX, f64::min), ks.fold(1.0, f64::max));
    let ns = points
        .iter()
        .flat_map(|(_, g)| g.rows.iter().map(|r| r.median_ns));
    let (y_lo, y_hi) = (ns.clone().fold(f64::MAX, f64::min), ns.fold(1.0, f64::max));

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "loop iteration: ns per iteration against idle fds K (log-log)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (k_lo.min(1.0)..k_hi * 1.5).log_scale(),
            (y_lo / 1.5..y_hi * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("idle fds K")
        .y_desc("median ns per iteration")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, name) in variants.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|(k, g)| Some((*k, g.row(name)?.median_ns)))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(series.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn bars(scenario: &ScenarioReport, path: &Path) -> PlotResult {
    let heights: Vec<u32> = scenario
        .groups
        .iter()
        .map(|g| 70 + 22 * g.rows.len() as u32)
        .collect();
    let root = SVGBackend::new(path, (900, heights.iter().sum())).into_drawing_area();
    root.fill(&WHITE)?;
    let mut rest = root.clone();
    for (group, &h) in scenario.groups.iter().zip(&heights) {
        let (panel, below) = rest.split_vertically(h);
        panel_bars(&panel, group)?;
        rest = below;
    }
    root.present()?;
    Ok(())
}

fn panel_bars(area: &DrawingArea<SVGBackend<'_>, Shift>, group: &Group) -> PlotResult {
    let n = group.rows.len();
    let lo = group
        .rows
        .iter()
        .map(|r| r.median_ns)
        .fold(f64::MAX, f64::min)
        / 2.0;
    let hi = group.rows.iter().map(|r| r.p99_ns).fold(1.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{} ({}: bar median, whisker p99)",
                group.title, group.figure
            ),
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(190)
        .build_cartesian_2d((lo.max(0.1)..hi).log_scale(), (0..n).into_segmented())?;
    let names: Vec<String> = group.rows.iter().map(|r| r.name.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .x_labels(6)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("ns (log)")
        .draw()?;
    for (i, row) in group.rows.iter().enumerate() {
        let color = if row.name == group.reference {
            RGBColor(120, 120, 120).to_rgba()
        } else {
            Palette99::pick(i).to_rgba()
        };
        let mut bar = Rectangle::new(
            [
                (lo.max(0.1), SegmentValue::Exact(i)),
                (row.median_ns, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        chart.draw_series(std::iter::once(bar))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (row.median_ns, SegmentValue::CenterOf(i)),
                (row.p99_ns.max(row.median_ns), SegmentValue::CenterOf(i)),
            ],
            BLACK.stroke_width(2),
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Figure, Measurement};

    fn group(id: &str, rows: &[(&str, f64)]) -> Group {
        let rows = rows
            .iter()
            .map(|&(name, median_ns)| Measurement {
                name: name.to_owned(),
                figure: Figure::BatchMean,
                median_ns,
                p99_ns: median_ns * 2.0,
                rounds_ns: vec![median_ns],
                ratio: None,
                allocs_per_iter: None,
                expects_no_allocs: false,
                batch: 1,
                rounds: 1,
                counters: Vec::new(),
            })
            .collect();
        Group::new(id, id, "ns", "raw", rows, Vec::new())
    }

    #[test]
    fn plots_are_svg_files() {
        let dir = std::env::temp_dir().join(format!("aio-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scenarios = vec![
            ScenarioReport {
                name: "loop-iteration".to_owned(),
                about: String::new(),
                groups: vec![
                    group("loop-iteration/1", &[("raw", 100.0), ("aio", 120.0)]),
                    group("loop-iteration/1000", &[("raw", 110.0), ("aio", 25000.0)]),
                ],
                summaries: Vec::new(),
                targets: Vec::new(),
                seconds: 0.0,
            },
            ScenarioReport {
                name: "timers".to_owned(),
                about: String::new(),
                groups: vec![group("timers/100us", &[("raw", 5000.0), ("aio", 6000.0)])],
                summaries: Vec::new(),
                targets: Vec::new(),
                seconds: 0.0,
            },
        ];
        let run = Run {
            schema: crate::output::SCHEMA,
            command: String::new(),
            plan: (&crate::Plan::QUICK).into(),
            machine: Default::default(),
            seconds: 0.0,
            scenarios,
            failures: Vec::new(),
        };
        let written = write_plots(&run, &dir).unwrap();
        assert_eq!(written.len(), 2);
        for path in &written {
            let svg = std::fs::read_to_string(path).unwrap();
            assert!(svg.starts_with("<svg"), "{}", path.display());
            assert!(svg.contains("aio"), "{}", path.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
