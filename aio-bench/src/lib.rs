//! The aio benchmark: each scenario runs the event loop on every monitor
//! (poll, epoll, io_uring, and the facade's automatic choice) next to the
//! peers a user would pick instead (mio, polling, tokio) and hand-written
//! references, all measured in the same run, interleaved.
//!
//! * [`scenarios`]: what is measured.
//! * [`measure`]: how: warm-up, batches timed in interleaved rounds,
//!   medians, p99s and paired ratios.
//! * [`env`](mod@env): the plan, variant filter, CPU pinning, progress bar and
//!   monitors every scenario runs with.
//! * [`report`]: tables and targets; [`output`]: `report.json` (and its
//!   self-check), `report.md`, the README section; [`plot`]: SVG plots.
//! * [`sys`]: the system calls the hand-written references make.
//! * [`alloc_count`]: the counting allocator that the `aio-bench` binary
//!   installs.
//!
//! Run it with `cargo xtask bench` (`--quick` for a smoke run,
//! `--scenario NAME` and `--variants LIST` to pick).

pub mod alloc_count;
pub mod env;
pub mod measure;
pub mod output;
pub mod peers;
pub mod plot;
pub mod report;
pub mod scenarios;
pub mod sys;

pub use measure::Plan;
pub use scenarios::Scenario;
