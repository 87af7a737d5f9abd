//! `remote-notify`: N threads notify a loop that blocks whenever it has
//! nothing to do; how many wake-ups it gets through per second, and how
//! many doorbell (eventfd) writes each one costs.
//!
//! The home thread turns its loop once per iteration and counts each turn
//! as a wake-up: aio's `poll(true)` (notified by [`Remote::notify`]),
//! mio's `Poll::poll` (a `Waker`), polling's `Poller::wait`
//! (`Poller::notify`), tokio's `Notify::notified` on a current-thread
//! runtime (`notify_one`), and the reference `raw-eventfd`: a blocking
//! `read` of an eventfd that every notification writes. The notifier
//! threads call their notify in a loop while a batch runs (and sleep
//! otherwise), pinned to the CPUs other than the home thread's.
//!
//! Figure: ns per wake-up (its inverse is the wake-up rate, in the
//! summary). Counters per wake-up: `doorbells`, the write system calls of
//! the notifier threads (`syscw` of `/proc/thread-self/io`), so every
//! variant is counted alike; `notify calls`; `home sleeps`, the home
//! thread's voluntary context switches.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aio::prelude::*;

use crate::env::{Env, Monitor};
use crate::measure::{MAX_COUNTERS, Variant};
use crate::peers::tokio_runtime;
use crate::report::{Group, ScenarioReport, Summary};
use crate::sys;

/// The reference.
pub const REFERENCE: &str = "raw-eventfd";

/// Notifier thread counts measured.
pub const THREADS: &[usize] = &[1, 2, 4];
/// Notifier thread counts of a quick run.
pub const QUICK_THREADS: &[usize] = &[1, 2];

/// The scenario's one-line description.
pub const ABOUT: &str = "N threads notify a loop that blocks when idle; figure: ns per wake-up \
    (wake-ups per second in the summary), with doorbell writes per wake-up";

const DOORBELLS: &str = "doorbells";
const CALLS: &str = "notify calls";
const SLEEPS: &str = "home sleeps";

/// How the home side waits for one notification.
trait Waiter {
    /// Returns after a wake-up.
    fn wake_ups(&mut self, n: u64) -> io::Result<()>;
}

struct AioWaiter {
    ctx: AioContext,
}

impl Waiter for AioWaiter {
    fn wake_ups(&mut self, n: u64) -> io::Result<()> {
        for _ in 0..n {
            self.ctx.poll(true)?;
        }
        Ok(())
    }
}

struct RawWaiter {
    fd: Arc<OwnedFd>,
}

impl Waiter for RawWaiter {
    fn wake_ups(&mut self, n: u64) -> io::Result<()> {
        let mut done = 0;
        while done < n {
            let mut buf = [0u8; 8];
            // SAFETY: `buf` is a live, exclusively borrowed 8-byte buffer
            // for the duration of the call; the eventfd is held open by
            // `self.fd`.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
                continue;
            }
            done += 1;
        }
        Ok(())
    }
}

struct MioWaiter {
    poll: mio::Poll,
    events: mio::Events,
}

impl Waiter for MioWaiter {
    fn wake_ups(&mut self, n: u64) -> io::Result<()> {
        let mut done = 0;
        while done < n {
            crate::peers::mio_poll(&mut self.poll, &mut self.events, None)?;
            if !self.events.is_empty() {
                done += 1;
            }
        }
        Ok(())
    }
}

struct PollingWaiter {
    poller: Arc<polling::Poller>,
    events: polling::Events,
}

impl Waiter for PollingWaiter {
    fn wake_ups(&mut self, n: u64) -> io::Result<()> {
        for _ in 0..n {
            self.events.clear();
            self.poller.wait(&mut self.events, None)?;
        }
        Ok(())
    }
}

struct TokioWaiter {
    rt: tokio::runtime::Runtime,
    notify: Arc<tokio::sync::Notify>,
}

impl Waiter for TokioWaiter {
    fn wake_ups(&mut self, n: u64) -> io::Result<()> {
        let notify = &self.notify;
        self.rt.block_on(async {
            for _ in 0..n {
                notify.notified().await;
            }
        });
        Ok(())
    }
}

/// What the home thread and the notifiers share.
#[derive(Debug, Default)]
struct Shared {
    /// The number of the current batch.
    batch: AtomicU64,
    active: AtomicBool,
    stop: AtomicBool,
    /// Notifiers that have finished their part of the current batch.
    rested: AtomicU64,
    calls: AtomicU64,
    writes: AtomicU64,
    failed: AtomicBool,
}

/// A variant: the home side and its notifier threads.
struct Notified {
    name: String,
    waiter: RefCell<Box<dyn Waiter>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    counters: Cell<[u64; MAX_COUNTERS]>,
}

impl Notified {
    fn new(
        env: &Env<'_>,
        name: &str,
        threads: usize,
        waiter: Box<dyn Waiter>,
        notify: impl Fn() -> bool + Send + Sync + 'static,
    ) -> io::Result<Notified> {
        let shared = Arc::new(Shared::default());
        let notify = Arc::new(notify);
        let handles = (0..threads)
            .map(|i| {
                let (shared, notify) = (Arc::clone(&shared), Arc::clone(&notify));
                env.cpus
                    .spawn_partner(i, "notifier", move || notifier(&shared, &*notify))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Notified {
            name: name.to_owned(),
            waiter: RefCell::new(waiter),
            shared,
            threads: handles,
            counters: Cell::new([0; MAX_COUNTERS]),
        })
    }

    /// Starts the notifiers, takes one wake-up untimed, times `n`, then
    /// stops the notifiers and collects their counts.
    fn batch(&self, n: u64) -> io::Result<Duration> {
        let shared = &*self.shared;
        let mut waiter = self.waiter.borrow_mut();
        shared.rested.store(0, Ordering::Release);
        shared.batch.fetch_add(1, Ordering::AcqRel);
        let (calls, writes) = (
            shared.calls.load(Ordering::Acquire),
            shared.writes.load(Ordering::Acquire),
        );
        shared.active.store(true, Ordering::Release);
        for t in &self.threads {
            t.thread().unpark();
        }
        waiter.wake_ups(1)?;
        let sleeps = sys::voluntary_switches();
        let start = Instant::now();
        let result = waiter.wake_ups(n);
        let elapsed = start.elapsed();
        let sleeps = sys::voluntary_switches() - sleeps;
        shared.active.store(false, Ordering::Release);
        result?;
        // The notifiers report once they have stopped; their last
        // notifications are still pending on the home side, harmlessly.
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.rested.load(Ordering::Acquire) < self.threads.len() as u64 {
            if Instant::now() > deadline || shared.failed.load(Ordering::Acquire) {
                return Err(io::Error::other(format!(
                    "{}: a notifier did not stop",
                    self.name
                )));
            }
            thread::yield_now();
        }
        let mut c = self.counters.get();
        c[0] += shared.writes.load(Ordering::Acquire) - writes;
        c[1] += shared.calls.load(Ordering::Acquire) - calls;
        c[2] += sleeps;
        self.counters.set(c);
        Ok(elapsed)
    }

    fn variant(&self) -> Variant<'_> {
        let v = Variant::self_timed(self.name.clone(), move |n| self.batch(n))
            .counters(&[DOORBELLS, CALLS, SLEEPS], move || self.counters.get());
        if self.name.starts_with("aio") {
            v.expect_no_allocs()
        } else {
            v
        }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A notifier thread: in each batch, notify as fast as it can while the
/// batch runs, then report its calls and write system calls (also for a
/// batch it woke up too late for).
fn notifier(shared: &Shared, notify: &dyn Fn() -> bool) {
    let mut reported = 0;
    while !shared.stop.load(Ordering::Acquire) {
        let batch = shared.batch.load(Ordering::Acquire);
        if batch == reported {
            thread::park();
            continue;
        }
        let writes = sys::write_syscalls();
        let mut calls = 0u64;
        while shared.active.load(Ordering::Relaxed) && shared.batch.load(Ordering::Relaxed) == batch
        {
            if !notify() {
                shared.failed.store(true, Ordering::Release);
                break;
            }
            calls += 1;
            std::hint::spin_loop();
        }
        shared.calls.fetch_add(calls, Ordering::AcqRel);
        shared.writes.fetch_add(
            sys::write_syscalls().saturating_sub(writes),
            Ordering::AcqRel,
        );
        reported = batch;
        shared.rested.fetch_add(1, Ordering::AcqRel);
    }
}

/// The variants for `threads` notifiers.
fn variants(env: &Env<'_>, threads: usize) -> io::Result<Vec<Notified>> {
    let mut out = Vec::new();
    {
        let fd = Arc::new(sys::eventfd_with(true)?);
        let writer = Arc::clone(&fd);
        out.push(Notified::new(
            env,
            REFERENCE,
            threads,
            Box::new(RawWaiter { fd }),
            move || sys::write_one(writer.as_raw_fd()).is_ok(),
        )?);
    }
    for monitor in Monitor::ALL {
        if env.wants(monitor.variant()) {
            let ctx = monitor.context(PollParams::OFF)?;
            let remote = ctx.remote();
            out.push(Notified::new(
                env,
                monitor.variant(),
                threads,
                Box::new(AioWaiter { ctx }),
                move || {
                    remote.notify();
                    true
                },
            )?);
        }
    }
    if env.wants("mio") {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), mio::Token(0))?;
        let waiter = MioWaiter {
            poll,
            events: mio::Events::with_capacity(8),
        };
        out.push(Notified::new(
            env,
            "mio",
            threads,
            Box::new(waiter),
            move || waker.wake().is_ok(),
        )?);
    }
    if env.wants("polling") {
        let poller = Arc::new(polling::Poller::new()?);
        let notifier = Arc::clone(&poller);
        let waiter = PollingWaiter {
            poller,
            events: polling::Events::new(),
        };
        out.push(Notified::new(
            env,
            "polling",
            threads,
            Box::new(waiter),
            move || notifier.notify().is_ok(),
        )?);
    }
    if env.wants("tokio") {
        let notify = Arc::new(tokio::sync::Notify::new());
        let waiter = TokioWaiter {
            rt: tokio_runtime()?,
            notify: Arc::clone(&notify),
        };
        out.push(Notified::new(
            env,
            "tokio",
            threads,
            Box::new(waiter),
            move || {
                notify.notify_one();
                true
            },
        )?);
    }
    Ok(out)
}

/// Allocations of notified loops in steady state (one notifier), under
/// `plan`.
pub(crate) fn steady_state(env: &Env<'_>, plan: &crate::measure::Plan) -> io::Result<Group> {
    let notified = variants(env, 1)?;
    let mut variants: Vec<Variant<'_>> = notified.iter().map(Notified::variant).collect();
    let title = "steady state: remote notify, one notifier thread, both threads";
    let rows = env.measure_with(plan, title, &mut variants)?;
    drop(variants);
    Ok(Group::new(
        "allocations/remote-notify",
        title,
        "ns per wake-up",
        REFERENCE,
        rows,
        Vec::new(),
    ))
}

/// Measures one comparison per notifier thread count.
///
/// # Errors
///
/// Setting up a loop or a thread failed, or a notifier failed.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    let counts = if env.plan.is_quick() {
        QUICK_THREADS
    } else {
        THREADS
    };
    env.progress.scenario("remote-notify", counts.len());
    let mut groups = Vec::new();
    for &threads in counts {
        let notified = variants(env, threads)?;
        let mut variants: Vec<Variant<'_>> = notified.iter().map(Notified::variant).collect();
        let title = format!(
            "remote notify, {threads} notifier thread{}",
            if threads == 1 { "" } else { "s" }
        );
        let rows = env.measure(&title, &mut variants)?;
        drop(variants);
        drop(notified);
        groups.push(Group::new(
            format!("remote-notify/{threads}"),
            title,
            "ns per wake-up",
            REFERENCE,
            rows,
            vec![format!(
                "counters per wake-up; {DOORBELLS}: write system calls of the notifier threads; \
                 {SLEEPS}: voluntary context switches of the home thread"
            )],
        ));
    }
    let summary = summary(counts, &groups);
    Ok(ScenarioReport {
        name: "remote-notify".to_owned(),
        about: ABOUT.to_owned(),
        groups,
        summaries: vec![summary],
        targets: Vec::new(),
        seconds: 0.0,
    })
}

/// Wake-ups per second and doorbells per wake-up, by thread count.
fn summary(counts: &[usize], groups: &[Group]) -> Summary {
    let mut names: Vec<String> = Vec::new();
    for row in groups.iter().flat_map(|g| &g.rows) {
        if !names.contains(&row.name) {
            names.push(row.name.clone());
        }
    }
    let rows = counts
        .iter()
        .zip(groups)
        .map(|(n, g)| {
            let mut row = vec![n.to_string()];
            row.extend(names.iter().map(|name| {
                g.row(name).map_or_else(String::new, |m| {
                    format!(
                        "{:.2}M/s, {}",
                        1e3 / m.median_ns,
                        crate::report::per_iter(m.counter(DOORBELLS).unwrap_or(f64::NAN))
                    )
                })
            }));
            row
        })
        .collect();
    let mut headers = vec!["threads".to_owned()];
    headers.extend(names);
    Summary {
        title: "remote notify: wake-ups per second (from the median), doorbell writes per wake-up"
            .to_owned(),
        headers,
        rows,
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_wakes_up() {
        Env::quick(|env| {
            for notified in variants(env, 2).unwrap() {
                notified
                    .batch(50)
                    .unwrap_or_else(|e| panic!("{}: {e}", notified.name));
                notified
                    .batch(10)
                    .unwrap_or_else(|e| panic!("{}: {e}", notified.name));
                let [_, calls, _, _] = notified.counters.get();
                assert!(calls > 0, "{}", notified.name);
            }
        });
    }
}
