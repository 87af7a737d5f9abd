//! The measuring method: a [`Plan`] (warm-up, rounds, batch length), the
//! [`Variant`]s of one comparison, and [`interleaved`], which warms each
//! variant up, sizes its batches, then times them in rounds (A B C, C B A,
//! ...) so that drift of the machine touches every variant alike.
//!
//! Each round times one batch of each variant and keeps one figure per
//! variant: the mean nanoseconds per iteration of the batch, or, for a
//! variant that records a sample per iteration ([`Variant::sampled`]), the
//! median of the round's samples. The median and p99 reported come from an
//! HDR histogram of the per-round figures (of every sample, for a sampled
//! variant). Ratios are *paired*: the median over rounds of a variant's
//! figure divided by the reference's figure of the same round, which
//! cancels the slow swings of a shared machine.
//!
//! Heap allocations and a variant's own counters (waits, doorbell writes,
//! ...) are read around each timed batch only, so the harness's
//! bookkeeping is not charged to the variant.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::alloc_count;

/// How long and how often to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// What the plan is called in the report.
    pub name: &'static str,
    /// How long each variant runs before it is measured.
    pub warmup: Duration,
    /// How many timed batches each variant gets.
    pub rounds: u32,
    /// How long one batch should last; its iteration count is sized from
    /// the warm-up.
    pub batch_time: Duration,
    /// The fewest iterations a batch may have.
    pub min_batch: u64,
    /// The most iterations a batch may have.
    pub max_batch: u64,
}

impl Plan {
    /// Enough to check that every scenario runs; not a measurement.
    pub const QUICK: Plan = Plan {
        name: "quick",
        warmup: Duration::from_millis(5),
        rounds: 4,
        batch_time: Duration::from_micros(500),
        min_batch: 2,
        max_batch: 100_000,
    };

    /// A measurement: many short batches, so that each round's figures are
    /// taken close together in time.
    pub const FULL: Plan = Plan {
        name: "full",
        warmup: Duration::from_millis(120),
        rounds: 200,
        batch_time: Duration::from_millis(2),
        min_batch: 8,
        max_batch: 10_000_000,
    };

    /// Whether this is the smoke-test plan.
    pub fn is_quick(&self) -> bool {
        self.name == Plan::QUICK.name
    }
}

/// The most counters one variant may keep.
pub const MAX_COUNTERS: usize = 4;

/// Where a sampled variant records one figure per iteration, in
/// nanoseconds. Its room is reserved before the batch is timed, so
/// recording never allocates inside the batch.
#[derive(Debug, Default)]
pub struct Samples {
    values: Vec<f64>,
}

impl Samples {
    /// Records one iteration's figure.
    pub fn record(&mut self, ns: f64) {
        self.values.push(ns);
    }

    /// How many figures are recorded.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The figures recorded, in order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    fn clear_for(&mut self, n: u64) {
        self.values.clear();
        self.values.reserve(n as usize);
    }
}

/// A closure that runs a batch of `n` iterations, and may say how much of
/// its time counts.
type Batch<'a> = Box<dyn FnMut(u64, &mut Samples) -> io::Result<Option<Duration>> + 'a>;

/// Cumulative counters of a variant, read before and after each batch.
type CounterFn<'a> = Box<dyn FnMut() -> [u64; MAX_COUNTERS] + 'a>;

/// What a variant's per-round figure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Figure {
    /// The mean nanoseconds per iteration of a batch.
    BatchMean,
    /// One sample per iteration; the round's figure is their median.
    Sampled,
}

/// One of the things compared: a name and a closure that runs a batch of
/// iterations.
pub struct Variant<'a> {
    name: String,
    expects_no_allocs: bool,
    figure: Figure,
    fixed_batch: Option<u64>,
    batch: Batch<'a>,
    counters: Option<(Vec<&'static str>, CounterFn<'a>)>,
}

impl<'a> Variant<'a> {
    /// A variant called `name`; `batch(n)` runs `n` iterations and fails if
    /// they did not do their work. Its wall-clock time counts.
    pub fn new(
        name: impl Into<String>,
        mut batch: impl FnMut(u64) -> io::Result<()> + 'a,
    ) -> Variant<'a> {
        Variant::with_batch(name, Figure::BatchMean, move |n, _| batch(n).map(|()| None))
    }

    /// A variant that times itself: `batch(n)` runs `n` iterations and
    /// returns the part of its time that counts (leaving out a hand-over to
    /// another thread, or pauses between iterations). Batches are still
    /// sized by their wall-clock time.
    pub fn self_timed(
        name: impl Into<String>,
        mut batch: impl FnMut(u64) -> io::Result<Duration> + 'a,
    ) -> Variant<'a> {
        Variant::with_batch(name, Figure::BatchMean, move |n, _| batch(n).map(Some))
    }

    /// A variant that records one figure per iteration (a timer's lateness,
    /// say): `batch(n, samples)` runs `n` iterations and records `n`
    /// samples.
    pub fn sampled(
        name: impl Into<String>,
        mut batch: impl FnMut(u64, &mut Samples) -> io::Result<()> + 'a,
    ) -> Variant<'a> {
        Variant::with_batch(name, Figure::Sampled, move |n, samples| {
            batch(n, samples).map(|()| None)
        })
    }

    fn with_batch(
        name: impl Into<String>,
        figure: Figure,
        batch: impl FnMut(u64, &mut Samples) -> io::Result<Option<Duration>> + 'a,
    ) -> Variant<'a> {
        Variant {
            name: name.into(),
            expects_no_allocs: false,
            figure,
            fixed_batch: None,
            batch: Box::new(batch),
            counters: None,
        }
    }

    /// Marks the variant as one that must not allocate in steady state; the
    /// report flags it if it does.
    pub fn expect_no_allocs(mut self) -> Variant<'a> {
        self.expects_no_allocs = true;
        self
    }

    /// Runs every batch with exactly `n` iterations instead of sizing them
    /// from the warm-up.
    pub fn fixed_batch(mut self, n: u64) -> Variant<'a> {
        self.fixed_batch = Some(n.max(1));
        self
    }

    /// Counters the report divides by the iterations timed: `read` returns
    /// their cumulative values (up to [`MAX_COUNTERS`], named by `labels`),
    /// and is called before and after each timed batch.
    pub fn counters(
        mut self,
        labels: &[&'static str],
        read: impl FnMut() -> [u64; MAX_COUNTERS] + 'a,
    ) -> Variant<'a> {
        assert!(labels.len() <= MAX_COUNTERS, "too many counters");
        self.counters = Some((labels.to_vec(), Box::new(read)));
        self
    }

    /// The variant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a batch of `n` iterations.
    fn timed(&mut self, n: u64, samples: &mut Samples) -> io::Result<Timing> {
        samples.clear_for(n);
        let before = self.counters.as_mut().map(|(_, read)| read());
        let allocs = alloc_count::allocations();
        let start = Instant::now();
        let counted = (self.batch)(n, samples)?;
        let wall = start.elapsed();
        let allocs = alloc_count::allocations() - allocs;
        let mut counters = [0u64; MAX_COUNTERS];
        if let (Some((_, read)), Some(before)) = (self.counters.as_mut(), before) {
            let after = read();
            for (c, (a, b)) in counters.iter_mut().zip(after.iter().zip(before)) {
                *c = a.saturating_sub(b);
            }
        }
        if self.figure == Figure::Sampled && samples.values.len() as u64 != n {
            return Err(io::Error::other(format!(
                "{}: {} samples recorded for {n} iterations",
                self.name,
                samples.values.len()
            )));
        }
        Ok(Timing {
            counted: counted.unwrap_or(wall),
            wall,
            allocs,
            counters,
        })
    }
}

/// What one batch took.
struct Timing {
    /// The time that counts: the wall-clock time, unless the variant times
    /// itself.
    counted: Duration,
    /// The wall-clock time, which sizes batches.
    wall: Duration,
    /// Allocation calls, on every thread.
    allocs: u64,
    /// How much each of the variant's counters moved.
    counters: [u64; MAX_COUNTERS],
}

/// A counter of a variant, per iteration timed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    /// What is counted, e.g. `blocking waits`.
    pub name: String,
    /// How many per iteration, over every timed batch.
    pub per_iter: f64,
}

/// What was measured of one variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The variant's name.
    pub name: String,
    /// What the per-round figures are.
    pub figure: Figure,
    /// The median, in nanoseconds: over rounds of the per-iteration mean,
    /// or over every sample for a sampled variant.
    pub median_ns: f64,
    /// The 99th percentile, in nanoseconds, of the same.
    pub p99_ns: f64,
    /// Each round's figure, in the order of the rounds.
    pub rounds_ns: Vec<f64>,
    /// The median over rounds of this variant's figure divided by the
    /// reference's in the same round; set by the group.
    pub ratio: Option<f64>,
    /// Heap allocation calls per iteration over the timed batches, on every
    /// thread; `None` if the counting allocator is not installed.
    pub allocs_per_iter: Option<f64>,
    /// Whether the variant must not allocate in steady state.
    pub expects_no_allocs: bool,
    /// How many iterations each timed batch ran.
    pub batch: u64,
    /// How many batches were timed.
    pub rounds: u32,
    /// The variant's counters, per iteration.
    pub counters: Vec<Counter>,
}

impl Measurement {
    /// Whether the variant allocated although it must not.
    pub fn allocates_unexpectedly(&self) -> bool {
        self.expects_no_allocs && self.allocs_per_iter.is_some_and(|a| a > 0.0)
    }

    /// The value of the counter called `name`, per iteration.
    pub fn counter(&self, name: &str) -> Option<f64> {
        self.counters
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.per_iter)
    }

    /// The median over rounds of this variant's figure divided by
    /// `other`'s figure of the same round; the ratio of medians if the two
    /// were not measured in the same rounds.
    pub fn paired_ratio(&self, other: &Measurement) -> f64 {
        if self.rounds_ns.len() == other.rounds_ns.len() && !self.rounds_ns.is_empty() {
            let mut ratios: Vec<f64> = self
                .rounds_ns
                .iter()
                .zip(&other.rounds_ns)
                .filter(|(_, r)| **r > 0.0)
                .map(|(v, r)| v / r)
                .collect();
            if !ratios.is_empty() {
                return median(&mut ratios);
            }
        }
        self.median_ns / other.median_ns
    }
}

/// The median of `values` (sorted in place); NaN if empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Warms up each variant, sizes its batch, then times `plan.rounds` batches
/// of each, interleaved, the order reversed every other round. Returns one
/// measurement per variant, in order; `on_round` is called after each
/// round.
///
/// # Errors
///
/// The first error of a variant's batch.
pub fn interleaved(
    plan: &Plan,
    variants: &mut [Variant<'_>],
    mut on_round: impl FnMut(u32, u32),
) -> io::Result<Vec<Measurement>> {
    let counting = alloc_count::is_installed();
    let mut samples = Samples::default();
    let batches = variants
        .iter_mut()
        .map(|v| warm_up(plan, v, &mut samples))
        .collect::<io::Result<Vec<u64>>>()?;

    let rounds = plan.rounds.max(1) as usize;
    let mut per_round = vec![Vec::with_capacity(rounds); variants.len()];
    let mut histograms = vec![new_histogram(); variants.len()];
    let mut allocs = vec![0u64; variants.len()];
    let mut counters = vec![[0u64; MAX_COUNTERS]; variants.len()];
    let order: Vec<usize> = (0..variants.len()).collect();
    for round in 0..rounds {
        let forward = round % 2 == 0;
        let mut step = |i: usize| -> io::Result<()> {
            let variant = &mut variants[i];
            let timing = variant.timed(batches[i], &mut samples)?;
            let figure = match variant.figure {
                Figure::BatchMean => {
                    let ns = timing.counted.as_nanos() as f64 / batches[i] as f64;
                    record(&mut histograms[i], ns);
                    ns
                }
                Figure::Sampled => {
                    for &ns in &samples.values {
                        record(&mut histograms[i], ns);
                    }
                    median(&mut samples.values)
                }
            };
            per_round[i].push(figure);
            allocs[i] += timing.allocs;
            for (total, c) in counters[i].iter_mut().zip(timing.counters) {
                *total += c;
            }
            Ok(())
        };
        if forward {
            order.iter().try_for_each(|&i| step(i))?;
        } else {
            order.iter().rev().try_for_each(|&i| step(i))?;
        }
        on_round(round as u32 + 1, rounds as u32);
    }

    Ok(variants
        .iter()
        .enumerate()
        .map(|(i, variant)| {
            let at = |q: f64| histograms[i].value_at_quantile(q) as f64 / PS_PER_NS;
            let iters = batches[i] as f64 * rounds as f64;
            let labels = variant
                .counters
                .as_ref()
                .map(|(labels, _)| labels.as_slice())
                .unwrap_or_default();
            Measurement {
                name: variant.name.clone(),
                figure: variant.figure,
                median_ns: at(0.5),
                p99_ns: at(0.99),
                rounds_ns: per_round[i].clone(),
                ratio: None,
                allocs_per_iter: counting.then(|| allocs[i] as f64 / iters),
                expects_no_allocs: variant.expects_no_allocs,
                batch: batches[i],
                rounds: rounds as u32,
                counters: labels
                    .iter()
                    .zip(counters[i])
                    .map(|(name, total)| Counter {
                        name: (*name).to_owned(),
                        per_iter: total as f64 / iters,
                    })
                    .collect(),
            }
        })
        .collect())
}

/// Runs batches of growing size for at least `plan.warmup`, so caches,
/// branch predictors and the loop's reusable buffers settle; returns the
/// batch size that lasts about `plan.batch_time` (or the fixed one).
fn warm_up(plan: &Plan, variant: &mut Variant<'_>, samples: &mut Samples) -> io::Result<u64> {
    let start = Instant::now();
    if let Some(n) = variant.fixed_batch {
        while start.elapsed() < plan.warmup {
            variant.timed(n.min(plan.min_batch.max(1)), samples)?;
        }
        return Ok(n);
    }
    let mut n = 1u64;
    let mut per_iter = loop {
        let elapsed = variant.timed(n, samples)?.wall;
        let per_iter = elapsed.as_secs_f64() / n as f64;
        if start.elapsed() >= plan.warmup && n >= plan.min_batch {
            break per_iter;
        }
        if (elapsed < plan.batch_time || n < plan.min_batch) && n < plan.max_batch {
            n = (n * 2).min(plan.max_batch);
        }
    };
    if per_iter <= 0.0 {
        per_iter = f64::MIN_POSITIVE;
    }
    let sized = (plan.batch_time.as_secs_f64() / per_iter) as u64;
    Ok(sized.clamp(plan.min_batch, plan.max_batch))
}

/// Figures are recorded in picoseconds so that sub-nanosecond differences
/// survive.
const PS_PER_NS: f64 = 1000.0;

/// One picosecond to 100 seconds, three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 100_000_000_000_000, 3).expect("valid histogram bounds")
}

fn record(hist: &mut Histogram<u64>, ns: f64) {
    hist.saturating_record((ns * PS_PER_NS).round().max(1.0) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rounds: u32) -> Plan {
        Plan {
            warmup: Duration::ZERO,
            rounds,
            ..Plan::QUICK
        }
    }

    #[test]
    fn median_and_p99_of_a_known_set() {
        let mut hist = new_histogram();
        for i in 1..=100 {
            record(&mut hist, i as f64 * 10.0);
        }
        let at = |q| hist.value_at_quantile(q) as f64 / PS_PER_NS;
        assert!((at(0.5) - 500.0).abs() < 1.0, "median {}", at(0.5));
        assert!((at(0.99) - 990.0).abs() < 1.0, "p99 {}", at(0.99));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn every_variant_gets_every_round() {
        let plan = plan(7);
        let mut counts = [0u64; 2];
        let (a, b) = counts.split_at_mut(1);
        let mut variants = [
            Variant::new("a", |n| {
                a[0] += n;
                Ok(())
            }),
            Variant::new("b", |n| {
                b[0] += n;
                Ok(())
            }),
        ];
        let mut rounds_seen = 0;
        let measured = interleaved(&plan, &mut variants, |r, _| rounds_seen = r).unwrap();
        drop(variants);
        assert_eq!(rounds_seen, 7);
        assert_eq!(measured.len(), 2);
        assert!(
            measured
                .iter()
                .all(|m| m.rounds == 7 && m.rounds_ns.len() == 7)
        );
        assert!(counts.iter().all(|&c| c >= 7 * plan.min_batch));
    }

    #[test]
    fn a_self_timed_variant_reports_its_own_time() {
        let mut variants = [Variant::self_timed("fixed", |n| {
            Ok(Duration::from_nanos(42 * n))
        })];
        let measured = interleaved(&plan(5), &mut variants, |_, _| {}).unwrap();
        assert!((measured[0].median_ns - 42.0).abs() < 0.1, "{measured:?}");
    }

    #[test]
    fn a_sampled_variant_reports_its_samples() {
        let mut variants = [Variant::sampled("samples", |n, samples| {
            for i in 0..n {
                samples.record(if i == 0 { 1000.0 } else { 10.0 });
            }
            Ok(())
        })
        .fixed_batch(100)];
        let measured = interleaved(&plan(3), &mut variants, |_, _| {}).unwrap();
        let m = &measured[0];
        assert_eq!(m.batch, 100);
        assert!((m.median_ns - 10.0).abs() < 0.1, "{m:?}");
        assert!(m.p99_ns >= 10.0, "{m:?}");
        assert_eq!(m.rounds_ns, [10.0; 3]);
    }

    #[test]
    fn a_sampled_variant_must_record_every_iteration() {
        let mut variants = [Variant::sampled("short", |_, samples| {
            samples.record(1.0);
            Ok(())
        })
        .fixed_batch(3)];
        assert!(interleaved(&plan(1), &mut variants, |_, _| {}).is_err());
    }

    #[test]
    fn counters_are_per_iteration() {
        let mut total = 0u64;
        let ticks = std::cell::Cell::new(0u64);
        let mut variants = [Variant::new("counted", |n| {
            total += n;
            ticks.set(ticks.get() + 2 * n);
            Ok(())
        })
        .counters(&["ticks"], || [ticks.get(), 0, 0, 0])];
        let measured = interleaved(&plan(4), &mut variants, |_, _| {}).unwrap();
        assert_eq!(measured[0].counter("ticks"), Some(2.0));
        assert_eq!(measured[0].counter("nope"), None);
    }

    #[test]
    fn ratios_are_paired_by_round() {
        let m = |rounds_ns: Vec<f64>| Measurement {
            name: String::new(),
            figure: Figure::BatchMean,
            median_ns: 0.0,
            p99_ns: 0.0,
            rounds_ns,
            ratio: None,
            allocs_per_iter: None,
            expects_no_allocs: false,
            batch: 1,
            rounds: 3,
            counters: Vec::new(),
        };
        // The machine slows down by 10x in the last round: the pairs stay
        // at 2x.
        let reference = m(vec![100.0, 110.0, 1000.0]);
        let variant = m(vec![200.0, 220.0, 2000.0]);
        assert!((variant.paired_ratio(&reference) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn warm_up_reaches_the_smallest_batch_even_when_iterations_are_slow() {
        let plan = Plan {
            warmup: Duration::ZERO,
            rounds: 1,
            batch_time: Duration::from_millis(1),
            min_batch: 10,
            max_batch: 1_000,
            ..Plan::QUICK
        };
        let mut variants = [Variant::new("slow", |n| {
            std::thread::sleep(Duration::from_micros(200) * n as u32);
            Ok(())
        })];
        let measured = interleaved(&plan, &mut variants, |_, _| {}).unwrap();
        assert_eq!(measured[0].batch, plan.min_batch);
    }

    #[test]
    fn a_failing_batch_fails_the_measurement() {
        let mut variants = [Variant::new("broken", |_| Err(io::Error::other("no")))];
        assert!(interleaved(&Plan::QUICK, &mut variants, |_, _| {}).is_err());
    }
}
