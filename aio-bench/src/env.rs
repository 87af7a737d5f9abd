//! What every scenario runs with: the [`Plan`], the variant [`Filter`], the
//! CPUs threads are pinned to ([`Cpus`]), the [`Progress`] bar, and the
//! aio [`Monitor`]s measured.

use std::cell::Cell;
use std::io;
use std::io::IsTerminal;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};

use aio::PoolOptions;
use aio::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::measure::{Measurement, Plan, Variant, interleaved};
use crate::sys;

/// Which variants run: those whose name contains one of the strings given
/// (all if none is); the reference of a comparison always runs, so that
/// ratios exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    items: Vec<String>,
}

impl Filter {
    /// A filter from comma-separated lists of name parts.
    pub fn new<S: AsRef<str>>(lists: &[S]) -> Filter {
        Filter {
            items: lists
                .iter()
                .flat_map(|l| l.as_ref().split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Whether the variant called `name` runs.
    pub fn keeps(&self, name: &str) -> bool {
        self.items.is_empty() || self.items.iter().any(|i| name.contains(i.as_str()))
    }
}

/// The CPUs the benchmark threads are pinned to: the home thread (the one
/// that measures) to one, its partner (the other side of a ping-pong, a
/// notifier) to another, when the machine has two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpus {
    /// The home thread's CPU.
    pub home: Option<usize>,
    /// The partner threads' CPUs (all but the home one).
    pub partners: Vec<usize>,
}

impl Cpus {
    /// No pinning at all.
    pub const NONE: Cpus = Cpus {
        home: None,
        partners: Vec::new(),
    };

    /// The first allowed CPU for the home thread and the others for
    /// partners, if there are at least two; no pinning otherwise.
    pub fn detect() -> Cpus {
        let cpus = sys::allowed_cpus();
        match cpus.split_first() {
            Some((&home, rest)) if !rest.is_empty() => Cpus {
                home: Some(home),
                partners: rest.to_vec(),
            },
            _ => Cpus::NONE,
        }
    }

    /// Pins the calling thread to the home CPU.
    pub fn pin_home(&self) -> io::Result<()> {
        self.home.map_or(Ok(()), sys::pin_to)
    }

    /// Pins the calling thread to the `i`-th partner CPU (round robin).
    pub fn pin_partner(&self, i: usize) -> io::Result<()> {
        match self.partners.len() {
            0 => Ok(()),
            n => sys::pin_to(self.partners[i % n]),
        }
    }

    /// A hook that pins each thread it runs on to the next partner CPU,
    /// round robin: for a pool's workers (aio's, tokio's blocking pool),
    /// which would otherwise inherit the home thread's CPU and take turns
    /// with it.
    pub fn partner_hook(&self) -> impl Fn() + Send + Sync + 'static {
        let (cpus, next) = (self.clone(), AtomicUsize::new(0));
        move || {
            let _ = cpus.pin_partner(next.fetch_add(1, Ordering::Relaxed));
        }
    }

    /// How threads are placed, for the report.
    pub fn describe(&self) -> String {
        match self.home {
            Some(home) => format!(
                "home thread pinned to CPU {home}, partner threads to CPU {}",
                self.partners
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => "threads not pinned (fewer than two CPUs)".to_owned(),
        }
    }

    /// Spawns a partner thread pinned to the `i`-th partner CPU.
    pub fn spawn_partner<T: Send + 'static>(
        &self,
        i: usize,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<JoinHandle<T>> {
        let cpus = self.clone();
        thread::Builder::new()
            .name(format!("aio-bench-{name}"))
            .spawn(move || {
                // Unpinned is still correct, only noisier.
                let _ = cpus.pin_partner(i);
                f()
            })
    }
}

/// The progress bar on stderr: hidden when stderr is not a terminal or
/// `CI` is set (to anything but `false` or `0`). It is only redrawn between
/// batches, and never from a thread of its own, so it does not disturb
/// what it reports on.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar shown only if `visible`.
    pub fn new(visible: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(
            None,
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        let style = ProgressStyle::with_template(
            "{prefix:>15} [{bar:30}] {pos}/{len} comparisons, {elapsed} | {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar }
    }

    /// Shown on an interactive terminal, unless `CI` says otherwise.
    pub fn for_terminal() -> Progress {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        Progress::new(std::io::stderr().is_terminal() && !ci)
    }

    /// Hidden.
    pub fn hidden() -> Progress {
        Progress::new(false)
    }

    /// A scenario with `groups` comparisons begins.
    pub fn scenario(&self, name: &str, groups: usize) {
        self.bar.set_prefix(name.to_owned());
        self.bar.set_length(groups as u64);
        self.bar.set_position(0);
    }

    /// Shows what a scenario that measures on its own (not through
    /// [`Env::measure`]) is doing; `done` moves the bar one comparison on.
    pub fn message(&self, message: impl Into<String>, done: bool) {
        self.bar.set_message(message.into());
        if done {
            self.bar.inc(1);
        }
    }

    /// Runs `f` with the bar cleared, for printing.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// What a scenario runs with.
#[derive(Debug)]
pub struct Env<'a> {
    /// How long and how often to measure.
    pub plan: Plan,
    /// Which variants run.
    pub filter: &'a Filter,
    /// Where threads go.
    pub cpus: Cpus,
    /// The progress bar.
    pub progress: &'a Progress,
}

#[cfg(test)]
impl Env<'_> {
    /// Runs `test` with a quick environment: the quick plan, every
    /// variant, no pinning, no progress bar.
    pub(crate) fn quick<R>(test: impl FnOnce(&Env<'_>) -> R) -> R {
        let (filter, progress) = (Filter::default(), Progress::hidden());
        test(&Env {
            plan: Plan::QUICK,
            filter: &filter,
            cpus: Cpus::NONE,
            progress: &progress,
        })
    }
}

impl Env<'_> {
    /// Whether the variant called `name` runs: the filter keeps it, and if
    /// it is an io_uring variant, the machine allows io_uring.
    pub fn wants(&self, name: &str) -> bool {
        if name.starts_with(Monitor::IoUring.variant()) && !io_uring_available() {
            return false;
        }
        self.filter.keeps(name)
    }

    /// Measures `variants` interleaved under the plan, showing `title` on
    /// the progress bar.
    ///
    /// # Errors
    ///
    /// The first error of a variant's batch.
    pub fn measure(
        &self,
        title: &str,
        variants: &mut [Variant<'_>],
    ) -> io::Result<Vec<Measurement>> {
        self.measure_with(&self.plan, title, variants)
    }

    /// As [`measure`](Env::measure), under another plan.
    ///
    /// # Errors
    ///
    /// The first error of a variant's batch.
    pub fn measure_with(
        &self,
        plan: &Plan,
        title: &str,
        variants: &mut [Variant<'_>],
    ) -> io::Result<Vec<Measurement>> {
        self.progress.bar.set_message(format!("{title}: warm-up"));
        let bar = &self.progress.bar;
        let result = interleaved(plan, variants, |round, rounds| {
            if round % 10 == 0 || round == rounds {
                bar.set_message(format!("{title}: round {round}/{rounds}"));
            }
        });
        bar.inc(1);
        result
    }
}

/// An aio monitor, as the benchmark names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Monitor {
    /// `ppoll(2)`, forced.
    Poll,
    /// epoll, forced.
    Epoll,
    /// io_uring (default task-running mode), forced.
    IoUring,
    /// The facade's automatic choice (`Backend::Auto`).
    Auto,
}

impl Monitor {
    /// Every monitor, in the order of the tables.
    pub const ALL: [Monitor; 4] = [
        Monitor::Poll,
        Monitor::Epoll,
        Monitor::IoUring,
        Monitor::Auto,
    ];

    /// The variant name, e.g. `aio-epoll`.
    pub fn variant(self) -> &'static str {
        match self {
            Monitor::Poll => "aio-poll",
            Monitor::Epoll => "aio-epoll",
            Monitor::IoUring => "aio-io_uring",
            Monitor::Auto => "aio-auto",
        }
    }

    /// The facade's backend.
    pub fn backend(self) -> Backend {
        match self {
            Monitor::Poll => Backend::Poll,
            Monitor::Epoll => Backend::Epoll,
            Monitor::IoUring => Backend::IoUring,
            Monitor::Auto => Backend::Auto,
        }
    }

    /// A context on this monitor with `params`, built through the facade
    /// with the backend forced (or `Auto`), so `AIO_BACKEND` has no say;
    /// default timer slack (1 ns) on the calling thread.
    ///
    /// # Errors
    ///
    /// The backend is refused or not compiled in.
    pub fn context(self, params: PollParams) -> io::Result<AioContext> {
        AioContext::builder()
            .backend(self.backend())
            .poll_params(params)
            .build()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.variant())))
    }

    /// [`context`](Monitor::context), with the thread pool's workers on
    /// the partner CPUs and every worker it may have started already: a
    /// pool starts a worker whenever a job finds none idle (a worker that
    /// just finished a job is not idle yet), so under a steady queue depth
    /// it grows to its maximum, and no such start (a thread, its
    /// allocations) must fall in a measurement.
    ///
    /// # Errors
    ///
    /// The backend is refused or not compiled in, or the workers did not
    /// start.
    pub fn pooled_context(self, params: PollParams, cpus: &Cpus) -> io::Result<AioContext> {
        let options = PoolOptions::default().on_worker_start(cpus.partner_hook());
        let workers = options.max_workers.max(1);
        let ctx = AioContext::builder()
            .backend(self.backend())
            .poll_params(params)
            .pool_options(options)
            .build()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.variant())))?;
        start_workers(&ctx, workers)?;
        Ok(ctx)
    }
}

/// Has `n` of the pool's workers running: `n` closures that wait for each
/// other, so that each holds a worker of its own.
fn start_workers(ctx: &AioContext, n: usize) -> io::Result<()> {
    let all_met = Arc::new(Barrier::new(n));
    let done = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(false));
    for _ in 0..n {
        let (all_met, done, failed) = (Arc::clone(&all_met), Rc::clone(&done), Rc::clone(&failed));
        ctx.run_blocking(
            move || {
                all_met.wait();
            },
            move |_, result| {
                failed.set(failed.get() || result.is_err());
                done.set(done.get() + 1);
            },
        );
    }
    ctx.run_until(|| done.get() == n)?;
    if failed.get() {
        return Err(io::Error::other("a pool worker did not start"));
    }
    Ok(())
}

/// Whether this machine allows io_uring (checked once); where it does not,
/// the io_uring variants are left out and their targets are reported as
/// not measured.
pub fn io_uring_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Backend::IoUring.open().is_ok())
}

/// What the automatic choice picks on this machine, and why.
pub fn auto_backend() -> String {
    Monitor::Auto.context(PollParams::OFF).map_or_else(
        |e| format!("nothing ({e})"),
        |ctx| ctx.backend().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_matches_name_parts() {
        let all = Filter::new::<&str>(&[]);
        assert!(all.keeps("aio-epoll"));
        let some = Filter::new(&["io_uring, mio", "raw"]);
        assert!(some.keeps("aio-io_uring"));
        assert!(some.keeps("mio"));
        assert!(some.keeps("raw-epoll"));
        assert!(!some.keeps("aio-epoll"));
        assert!(!some.keeps("tokio"));
    }

    #[test]
    fn every_monitor_builds_a_context() {
        for monitor in Monitor::ALL {
            let ctx = std::thread::spawn(move || {
                monitor
                    .context(PollParams::IOTHREAD)
                    .map(|c| c.backend().name)
            })
            .join()
            .unwrap();
            match (monitor, ctx) {
                (_, Ok(_)) => {}
                // A machine without io_uring refuses the forced backend.
                (Monitor::IoUring, Err(_)) => {}
                (m, Err(e)) => panic!("{m:?}: {e}"),
            }
        }
    }

    #[test]
    fn placement_is_described() {
        assert!(Cpus::NONE.describe().contains("not pinned"));
        let two = Cpus {
            home: Some(0),
            partners: vec![1],
        };
        assert!(two.describe().contains("CPU 0"));
        assert!(Cpus::NONE.pin_home().is_ok());
    }
}
