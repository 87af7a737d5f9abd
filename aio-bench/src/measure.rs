//! The measuring method: a [`Plan`] (warm-up, rounds, batch length), the
//! [`Variant`]s of one comparison, and [`interleaved`], which warms each
//! variant up, sizes its batches, then times them in rounds (A B A B ...)
//! so that drift of the machine touches every variant alike.
//!
//! Each round times one batch of each variant with [`Instant`] and keeps
//! its nanoseconds per iteration; the median and p99 of those per-round
//! figures come from an HDR histogram. Heap allocations are counted around
//! each timed batch only, so the harness's own bookkeeping is not charged
//! to the variant.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

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
        warmup: Duration::from_millis(20),
        rounds: 5,
        batch_time: Duration::from_millis(1),
        min_batch: 10,
        max_batch: 100_000,
    };

    /// A measurement: about three seconds of timed batches per variant.
    pub const FULL: Plan = Plan {
        name: "full",
        warmup: Duration::from_millis(300),
        rounds: 300,
        batch_time: Duration::from_millis(10),
        min_batch: 100,
        max_batch: 10_000_000,
    };
}

/// A closure that runs a batch of `n` iterations, and may say how much of
/// its time counts.
type Batch<'a> = Box<dyn FnMut(u64) -> io::Result<Option<Duration>> + 'a>;

/// One of the things compared: a name and a closure that runs a batch of
/// iterations.
pub struct Variant<'a> {
    name: String,
    expects_no_allocs: bool,
    batch: Batch<'a>,
}

impl<'a> Variant<'a> {
    /// A variant called `name`; `batch(n)` runs `n` iterations and fails if
    /// they did not do their work.
    pub fn new(
        name: impl Into<String>,
        mut batch: impl FnMut(u64) -> io::Result<()> + 'a,
    ) -> Variant<'a> {
        Variant {
            name: name.into(),
            expects_no_allocs: false,
            batch: Box::new(move |n| batch(n).map(|()| None)),
        }
    }

    /// A variant that times itself: `batch(n)` runs `n` iterations and
    /// returns the part of its time that counts (for a variant that must
    /// pause between iterations, say). Batches are still sized by their
    /// wall-clock time.
    pub fn self_timed(
        name: impl Into<String>,
        mut batch: impl FnMut(u64) -> io::Result<Duration> + 'a,
    ) -> Variant<'a> {
        Variant {
            name: name.into(),
            expects_no_allocs: false,
            batch: Box::new(move |n| batch(n).map(Some)),
        }
    }

    /// Marks the variant as one that must not allocate in steady state; the
    /// report flags it if it does.
    pub fn expect_no_allocs(mut self) -> Variant<'a> {
        self.expects_no_allocs = true;
        self
    }

    /// Runs a batch of `n` iterations.
    fn timed(&mut self, n: u64) -> io::Result<Timing> {
        let allocs = alloc_count::allocations();
        let start = Instant::now();
        let counted = (self.batch)(n)?;
        let wall = start.elapsed();
        let allocs = alloc_count::allocations() - allocs;
        Ok(Timing {
            counted: counted.unwrap_or(wall),
            wall,
            allocs,
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
}

/// What was measured of one variant.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The variant's name.
    pub name: String,
    /// The median over rounds of nanoseconds per iteration.
    pub median_ns: f64,
    /// The 99th percentile over rounds of nanoseconds per iteration.
    pub p99_ns: f64,
    /// Heap allocation calls per iteration over the timed batches, on every
    /// thread; `None` if the counting allocator is not installed.
    pub allocs_per_iter: Option<f64>,
    /// Whether the variant must not allocate in steady state.
    pub expects_no_allocs: bool,
    /// How many iterations each timed batch ran.
    pub batch: u64,
    /// How many batches were timed.
    pub rounds: u32,
}

impl Measurement {
    /// Whether the variant allocated although it must not.
    pub fn allocates_unexpectedly(&self) -> bool {
        self.expects_no_allocs && self.allocs_per_iter.is_some_and(|a| a > 0.0)
    }
}

/// Warms up each variant, sizes its batch, then times `plan.rounds` batches
/// of each, interleaved. Returns one measurement per variant, in order.
///
/// # Errors
///
/// The first error of a variant's batch.
pub fn interleaved(plan: &Plan, variants: &mut [Variant<'_>]) -> io::Result<Vec<Measurement>> {
    let counting = alloc_count::is_installed();
    let batches = variants
        .iter_mut()
        .map(|v| warm_up(plan, v))
        .collect::<io::Result<Vec<u64>>>()?;

    let rounds = plan.rounds.max(1) as usize;
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    let mut allocs = vec![0u64; variants.len()];
    for _ in 0..rounds {
        for (i, variant) in variants.iter_mut().enumerate() {
            let timing = variant.timed(batches[i])?;
            samples[i].push(timing.counted.as_nanos() as f64 / batches[i] as f64);
            allocs[i] += timing.allocs;
        }
    }

    Ok(variants
        .iter()
        .enumerate()
        .map(|(i, variant)| {
            let (median_ns, p99_ns) = percentiles(&samples[i]);
            let iters = batches[i] as f64 * rounds as f64;
            Measurement {
                name: variant.name.clone(),
                median_ns,
                p99_ns,
                allocs_per_iter: counting.then(|| allocs[i] as f64 / iters),
                expects_no_allocs: variant.expects_no_allocs,
                batch: batches[i],
                rounds: rounds as u32,
            }
        })
        .collect())
}

/// Runs batches of growing size for at least `plan.warmup`, so caches,
/// branch predictors and the loop's reusable buffers settle; returns the
/// batch size that lasts about `plan.batch_time`.
fn warm_up(plan: &Plan, variant: &mut Variant<'_>) -> io::Result<u64> {
    let start = Instant::now();
    let mut n = 1u64;
    let mut per_iter = loop {
        let elapsed = variant.timed(n)?.wall;
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

/// The median and 99th percentile of per-round nanoseconds per iteration,
/// recorded in picoseconds so that sub-nanosecond differences survive.
fn percentiles(ns_per_iter: &[f64]) -> (f64, f64) {
    const PS_PER_NS: f64 = 1000.0;
    // One picosecond to one second per iteration, three significant digits.
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 1_000_000_000_000, 3).expect("valid histogram bounds");
    for &ns in ns_per_iter {
        hist.saturating_record((ns * PS_PER_NS).round().max(1.0) as u64);
    }
    let at = |q: f64| hist.value_at_quantile(q) as f64 / PS_PER_NS;
    (at(0.5), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let samples: Vec<f64> = (1..=100).map(|i| i as f64 * 10.0).collect();
        let (median, p99) = percentiles(&samples);
        assert!((median - 500.0).abs() < 1.0, "median {median}");
        assert!((p99 - 990.0).abs() < 1.0, "p99 {p99}");
    }

    #[test]
    fn every_variant_gets_every_round() {
        let plan = Plan {
            warmup: Duration::ZERO,
            rounds: 7,
            ..Plan::QUICK
        };
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
        let measured = interleaved(&plan, &mut variants).unwrap();
        drop(variants);
        assert_eq!(measured.len(), 2);
        assert!(measured.iter().all(|m| m.rounds == 7));
        assert!(counts.iter().all(|&c| c >= 7 * plan.min_batch));
    }

    #[test]
    fn a_self_timed_variant_reports_its_own_time() {
        let plan = Plan {
            warmup: Duration::ZERO,
            ..Plan::QUICK
        };
        let mut variants = [Variant::self_timed("fixed", |n| {
            Ok(Duration::from_nanos(42 * n))
        })];
        let measured = interleaved(&plan, &mut variants).unwrap();
        assert!((measured[0].median_ns - 42.0).abs() < 0.1, "{measured:?}");
    }

    #[test]
    fn warm_up_reaches_the_smallest_batch_even_when_iterations_are_slow() {
        // Eight iterations outlast a batch: the warm-up must still grow to
        // `min_batch` rather than wait for it forever.
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
        let measured = interleaved(&plan, &mut variants).unwrap();
        assert_eq!(measured[0].batch, plan.min_batch);
    }

    #[test]
    fn a_failing_batch_fails_the_measurement() {
        let mut variants = [Variant::new("broken", |_| Err(io::Error::other("no")))];
        assert!(interleaved(&Plan::QUICK, &mut variants).is_err());
    }
}
