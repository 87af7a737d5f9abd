//! Benchmarks of the `aio` event loop, each against a hand-written or
//! simpler reference measured in the same run, with the steady-state heap
//! allocations of every variant.
//!
//! * [`scenarios`]: what is measured (`loop-iteration`, `bottom-half`).
//! * [`measure`]: how: warm-up, batches timed in interleaved rounds, median
//!   and p99 over rounds.
//! * [`report`]: the plain-text tables.
//! * [`alloc_count`]: the counting allocator that the `aio-bench` binary
//!   installs.
//!
//! Run it with `cargo xtask bench` (add `--quick` for a smoke run, and
//! `--scenario NAME` to pick scenarios).

pub mod alloc_count;
pub mod measure;
pub mod report;
pub mod scenarios;

pub use measure::Plan;
pub use scenarios::Scenario;
