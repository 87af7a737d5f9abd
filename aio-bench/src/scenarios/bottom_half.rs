//! `bottom-half`: the cost of deferred work, four ways, on every monitor
//! and on tokio (the reference of each comparison):
//!
//! * **one-shot**: `schedule_oneshot` then `poll(false)`, per pair; tokio:
//!   `spawn_local` of a task that is then awaited. Both box (allocate)
//!   per iteration.
//! * **reused**: one [`BottomHalf`], `schedule` then `poll(false)`; tokio:
//!   a waiting task woken through a `Notify`, which answers through
//!   another.
//! * **chain**: a bottom half that reschedules itself from its callback,
//!   one run per `poll(false)`; tokio: a task that yields
//!   (`yield_now`), one yield per iteration.
//! * **remote**: another thread pauses [`PAUSE`] (so the home thread is
//!   asleep in its blocking wait), schedules a [`RemoteBh`](aio::RemoteBh), and spins until
//!   the home thread has run it: the round trip of waking a sleeping loop
//!   with work (the pause is not counted). References: `raw-eventfd` (the
//!   other thread writes an eventfd that the home thread waits on in a
//!   blocking `read`) and tokio (`Notify::notify_one` to a task awaiting
//!   it on a current-thread runtime).

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aio::prelude::*;

use crate::env::{Cpus, Env, Monitor};
use crate::measure::{MAX_COUNTERS, Variant};
use crate::peers::tokio_runtime;
use crate::report::{Group, ScenarioReport, Target};
use crate::scenarios::check_done;
use crate::sys;

/// The reference of the local comparisons.
pub const TOKIO: &str = "tokio";
/// The reference of the remote comparison.
pub const RAW: &str = "raw-eventfd";

/// How long the other thread pauses before each remote round trip, so
/// that the home thread is asleep when the work comes; not counted.
pub const PAUSE: Duration = Duration::from_micros(20);

/// How long scheduled work may go unrun before the benchmark gives up.
const STALL: Duration = Duration::from_secs(10);

/// The scenario's one-line description.
pub const ABOUT: &str = "deferred work: one-shot, reused, self-rescheduling, and from another thread to a \
    sleeping loop; figure: ns per run (remote: round trip)";

/// A variant that runs bottom halves on the home thread.
trait Local {
    /// Runs `n` of them; fails unless each ran once.
    fn run(&mut self, n: u64) -> io::Result<()>;
}

struct AioOneshot {
    ctx: AioContext,
    ran: Rc<Cell<u64>>,
}

impl Local for AioOneshot {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        for _ in 0..n {
            let ran = Rc::clone(&self.ran);
            self.ctx
                .schedule_oneshot(move |_ctx| ran.set(ran.get() + 1));
            self.ctx.poll(false)?;
        }
        check_done("one-shot", n, self.ran.get() - before)
    }
}

struct AioReused {
    // Declared first so it drops before its context.
    bh: BottomHalf,
    ctx: AioContext,
    ran: Rc<Cell<u64>>,
}

impl Local for AioReused {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        for _ in 0..n {
            self.bh.schedule();
            self.ctx.poll(false)?;
        }
        check_done("reused", n, self.ran.get() - before)
    }
}

/// A bottom half that reschedules itself while `left` is not zero.
struct AioChain {
    ctx: AioContext,
    bh: Rc<OnceCell<BottomHalf>>,
    ran: Rc<Cell<u64>>,
    left: Rc<Cell<u64>>,
}

impl AioChain {
    fn new(ctx: AioContext) -> AioChain {
        let (ran, left) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
        let slot: Rc<OnceCell<BottomHalf>> = Rc::new(OnceCell::new());
        let bh = {
            let (ran, left, slot) = (Rc::clone(&ran), Rc::clone(&left), Rc::downgrade(&slot));
            ctx.bh(move |_ctx| {
                ran.set(ran.get() + 1);
                left.set(left.get().saturating_sub(1));
                if left.get() > 0
                    && let Some(slot) = slot.upgrade()
                    && let Some(me) = slot.get()
                {
                    me.schedule();
                }
            })
        };
        let _ = slot.set(bh);
        AioChain {
            ctx,
            bh: slot,
            ran,
            left,
        }
    }
}

impl Local for AioChain {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        self.left.set(n);
        if let Some(bh) = self.bh.get() {
            bh.schedule();
        }
        for _ in 0..n {
            self.ctx.poll(false)?;
        }
        check_done("chain", n, self.ran.get() - before)
    }
}

/// tokio one-shot: `spawn_local` on a `LocalSet`, then await it.
struct TokioOneshot {
    rt: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
    ran: Rc<Cell<u64>>,
}

impl Local for TokioOneshot {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        let ran = &self.ran;
        self.local.block_on(&self.rt, async {
            for _ in 0..n {
                let ran = Rc::clone(ran);
                let task = tokio::task::spawn_local(async move { ran.set(ran.get() + 1) });
                task.await.map_err(io::Error::other)?;
            }
            Ok::<(), io::Error>(())
        })?;
        check_done("tokio one-shot", n, self.ran.get() - before)
    }
}

/// tokio reused: a task on a `LocalSet` waits on one `Notify` and answers
/// on another.
struct TokioReused {
    rt: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
    wake: Rc<tokio::sync::Notify>,
    answer: Rc<tokio::sync::Notify>,
    ran: Rc<Cell<u64>>,
}

impl TokioReused {
    fn new() -> io::Result<TokioReused> {
        let local = tokio::task::LocalSet::new();
        let (wake, answer) = (
            Rc::new(tokio::sync::Notify::new()),
            Rc::new(tokio::sync::Notify::new()),
        );
        let ran = Rc::new(Cell::new(0));
        {
            let (wake, answer, ran) = (Rc::clone(&wake), Rc::clone(&answer), Rc::clone(&ran));
            local.spawn_local(async move {
                loop {
                    wake.notified().await;
                    ran.set(ran.get() + 1);
                    answer.notify_one();
                }
            });
        }
        Ok(TokioReused {
            rt: tokio_runtime()?,
            local,
            wake,
            answer,
            ran,
        })
    }
}

impl Local for TokioReused {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        let (wake, answer) = (&self.wake, &self.answer);
        self.local.block_on(&self.rt, async {
            for _ in 0..n {
                wake.notify_one();
                answer.notified().await;
            }
        });
        check_done("tokio reused", n, self.ran.get() - before)
    }
}

/// tokio chain: a future that yields to the runtime once per iteration.
struct TokioChain {
    rt: tokio::runtime::Runtime,
}

impl Local for TokioChain {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let ran = self.rt.block_on(async {
            let mut ran = 0;
            for _ in 0..n {
                tokio::task::yield_now().await;
                ran += 1;
            }
            ran
        });
        check_done("tokio chain", n, ran)
    }
}

/// The local forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Oneshot,
    Reused,
    Chain,
}

impl Form {
    fn id(self) -> &'static str {
        match self {
            Form::Oneshot => "bottom-half/one-shot",
            Form::Reused => "bottom-half/reused",
            Form::Chain => "bottom-half/chain",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Form::Oneshot => "bottom half, one-shot: schedule_oneshot + poll(false)",
            Form::Reused => "bottom half, reused: schedule + poll(false)",
            Form::Chain => {
                "bottom half, chain: rescheduled by its own callback, one run per poll(false)"
            }
        }
    }

    fn aio(self, monitor: Monitor) -> io::Result<Box<dyn Local>> {
        let ctx = monitor.context(PollParams::OFF)?;
        let ran = Rc::new(Cell::new(0));
        Ok(match self {
            Form::Oneshot => Box::new(AioOneshot { ctx, ran }),
            Form::Reused => {
                let count = Rc::clone(&ran);
                let bh = ctx.bh(move |_ctx| count.set(count.get() + 1));
                Box::new(AioReused { bh, ctx, ran })
            }
            Form::Chain => Box::new(AioChain::new(ctx)),
        })
    }

    fn tokio(self) -> io::Result<Box<dyn Local>> {
        Ok(match self {
            Form::Oneshot => Box::new(TokioOneshot {
                rt: tokio_runtime()?,
                local: tokio::task::LocalSet::new(),
                ran: Rc::new(Cell::new(0)),
            }),
            Form::Reused => Box::new(TokioReused::new()?),
            Form::Chain => Box::new(TokioChain {
                rt: tokio_runtime()?,
            }),
        })
    }
}

/// The local variants of a form, by name.
type Locals = Vec<(String, RefCell<Box<dyn Local>>)>;

fn locals(env: &Env<'_>, form: Form) -> io::Result<Locals> {
    let mut locals = vec![(TOKIO.to_owned(), RefCell::new(form.tokio()?))];
    for monitor in Monitor::ALL {
        if env.wants(monitor.variant()) {
            locals.push((
                monitor.variant().to_owned(),
                RefCell::new(form.aio(monitor)?),
            ));
        }
    }
    Ok(locals)
}

/// What the home thread and the other thread of a remote variant share.
#[derive(Debug, Default)]
struct Trips {
    /// Round trips asked for so far; raised by the home thread.
    target: AtomicU64,
    /// Round trips whose work has run; raised on the home thread.
    done: AtomicU64,
    /// Round trips timed so far; raised by the other thread after it has
    /// added to `trip_ns`.
    timed: AtomicU64,
    /// The sum of the round trips' durations, in nanoseconds.
    trip_ns: AtomicU64,
    /// Tells the other thread to exit.
    stop: AtomicBool,
    /// Set by the other thread if it could not send work.
    failed: AtomicBool,
}

/// How the home side of a remote variant waits for work.
trait Home {
    /// Serves work until `done` reaches `target`.
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()>;
    /// Doorbell writes so far, if the variant knows them.
    fn doorbells(&self) -> u64 {
        0
    }
}

struct AioHome {
    // Declared first so it drops before its context.
    _bh: BottomHalf,
    ctx: AioContext,
}

impl Home for AioHome {
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()> {
        while trips.done.load(Ordering::Acquire) < target {
            if trips.failed.load(Ordering::Acquire) {
                return Err(io::Error::other("the other thread could not schedule"));
            }
            self.ctx.poll(true)?;
        }
        Ok(())
    }

    fn doorbells(&self) -> u64 {
        self.ctx.stats().doorbell_rings
    }
}

struct RawHome {
    fd: Arc<OwnedFd>,
}

impl Home for RawHome {
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()> {
        while trips.done.load(Ordering::Acquire) < target {
            let mut buf = [0u8; 8];
            // SAFETY: `buf` is a live, exclusively borrowed 8-byte buffer
            // for the duration of the call; the eventfd is open (held by
            // `self.fd`).
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
                continue;
            }
            trips.done.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }
}

struct TokioHome {
    rt: tokio::runtime::Runtime,
    notify: Arc<tokio::sync::Notify>,
}

impl Home for TokioHome {
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()> {
        let notify = &self.notify;
        self.rt.block_on(async {
            while trips.done.load(Ordering::Acquire) < target {
                notify.notified().await;
                trips.done.fetch_add(1, Ordering::AcqRel);
            }
        });
        Ok(())
    }
}

/// A remote variant: its home side, and the other thread that sends it
/// work and times the round trips.
struct Remote {
    name: String,
    home: RefCell<Box<dyn Home>>,
    trips: Arc<Trips>,
    other: Option<JoinHandle<()>>,
    counters: Cell<[u64; MAX_COUNTERS]>,
}

impl Remote {
    /// Starts the other thread, which sends work with `send` (false: it
    /// could not).
    fn new(
        cpus: &Cpus,
        name: &str,
        home: Box<dyn Home>,
        trips: Arc<Trips>,
        send: impl Fn() -> bool + Send + 'static,
    ) -> io::Result<Remote> {
        let other = {
            let trips = Arc::clone(&trips);
            let name = name.to_owned();
            cpus.spawn_partner(0, "remote", move || send_work(&name, &trips, &send))?
        };
        Ok(Remote {
            name: name.to_owned(),
            home: RefCell::new(home),
            trips,
            other: Some(other),
            counters: Cell::new([0; MAX_COUNTERS]),
        })
    }

    /// Runs `n` round trips; returns the sum of their durations.
    fn run(&self, n: u64) -> io::Result<Duration> {
        let trips = &*self.trips;
        let mut home = self.home.borrow_mut();
        let (sleeps, doorbells) = (sys::voluntary_switches(), home.doorbells());
        let ns_before = trips.trip_ns.load(Ordering::Acquire);
        let target = trips.target.fetch_add(n, Ordering::AcqRel) + n;
        if let Some(other) = &self.other {
            other.thread().unpark();
        }
        home.serve(trips, target)?;
        // The last trip's time lands just after its work has run.
        while trips.timed.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
        let mut c = self.counters.get();
        c[0] += sys::voluntary_switches() - sleeps;
        c[1] += home.doorbells() - doorbells;
        self.counters.set(c);
        let ns = trips.trip_ns.load(Ordering::Acquire) - ns_before;
        Ok(Duration::from_nanos(ns))
    }

    fn variant(&self) -> Variant<'_> {
        let labels: &[&str] = if self.name.starts_with("aio") {
            &["home sleeps", "doorbell writes"]
        } else {
            &["home sleeps"]
        };
        let v = Variant::self_timed(self.name.clone(), move |n| self.run(n))
            .counters(labels, move || self.counters.get());
        if self.name.starts_with("aio") {
            v.expect_no_allocs()
        } else {
            v
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.trips.stop.store(true, Ordering::Release);
        if let Some(other) = self.other.take() {
            other.thread().unpark();
            let _ = other.join();
        }
    }
}

/// The other thread: while fewer round trips are done than asked for,
/// pause, then time one: send work and spin until it has run. Else sleep
/// until more are asked for.
fn send_work(name: &str, trips: &Trips, send: &dyn Fn() -> bool) {
    while !trips.stop.load(Ordering::Acquire) {
        let done = trips.done.load(Ordering::Acquire);
        if done >= trips.target.load(Ordering::Acquire) {
            thread::park();
            continue;
        }
        spin_for(PAUSE);
        let start = Instant::now();
        if !send() {
            trips.failed.store(true, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while trips.done.load(Ordering::Acquire) == done && !trips.stop.load(Ordering::Acquire) {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) && start.elapsed() > STALL {
                // A hang here would be a lost wake-up: fail loudly rather
                // than wait forever.
                eprintln!(
                    "aio-bench: {name}: work sent {} s ago has not run; the home thread missed its wake-up",
                    STALL.as_secs()
                );
                std::process::exit(3);
            }
            std::hint::spin_loop();
        }
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        trips.trip_ns.fetch_add(ns, Ordering::AcqRel);
        trips.timed.fetch_add(1, Ordering::AcqRel);
    }
}

/// Busy-waits for `d`: a sleep would put this thread's own wake-up into
/// the next round trip.
fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn remotes(env: &Env<'_>) -> io::Result<Vec<Remote>> {
    let mut remotes = Vec::new();
    {
        let trips = Arc::new(Trips::default());
        let fd = Arc::new(sys::eventfd_with(true)?);
        let raw = fd.as_raw_fd();
        let keep = Arc::clone(&fd);
        remotes.push(Remote::new(
            &env.cpus,
            RAW,
            Box::new(RawHome { fd }),
            trips,
            move || {
                let _ = &keep;
                sys::write_one(raw).is_ok()
            },
        )?);
    }
    for monitor in Monitor::ALL {
        if !env.wants(monitor.variant()) {
            continue;
        }
        let trips = Arc::new(Trips::default());
        let ctx = monitor.context(PollParams::OFF)?;
        let bh = {
            let trips = Arc::clone(&trips);
            ctx.bh(move |_ctx| {
                trips.done.fetch_add(1, Ordering::AcqRel);
            })
        };
        let remote_bh = bh.remote();
        let home = AioHome { _bh: bh, ctx };
        remotes.push(Remote::new(
            &env.cpus,
            monitor.variant(),
            Box::new(home),
            trips,
            move || remote_bh.schedule().is_ok(),
        )?);
    }
    if env.wants(TOKIO) {
        let trips = Arc::new(Trips::default());
        let notify = Arc::new(tokio::sync::Notify::new());
        let home = TokioHome {
            rt: tokio_runtime()?,
            notify: Arc::clone(&notify),
        };
        remotes.push(Remote::new(
            &env.cpus,
            TOKIO,
            Box::new(home),
            trips,
            move || {
                notify.notify_one();
                true
            },
        )?);
    }
    Ok(remotes)
}

/// Allocations of reused and self-rescheduling bottom halves and of the
/// remote round trip in steady state, under `plan`.
pub(crate) fn steady_state(env: &Env<'_>, plan: &crate::measure::Plan) -> io::Result<Vec<Group>> {
    let mut groups = Vec::new();
    for form in [Form::Reused, Form::Chain] {
        let locals = locals(env, form)?;
        let mut variants = local_variants(&locals, form);
        let title = format!("steady state: {}", form.title());
        let rows = env.measure_with(plan, &title, &mut variants)?;
        drop(variants);
        let id = format!(
            "allocations/{}",
            form.id().trim_start_matches("bottom-half/")
        );
        groups.push(Group::new(
            format!("{id}-bottom-half"),
            title,
            "ns per run",
            TOKIO,
            rows,
            Vec::new(),
        ));
    }
    let remotes = remotes(env)?;
    let mut variants: Vec<Variant<'_>> = remotes.iter().map(Remote::variant).collect();
    let title = "steady state: bottom half from another thread, both threads";
    let rows = env.measure_with(plan, title, &mut variants)?;
    drop(variants);
    groups.push(Group::new(
        "allocations/remote-bottom-half",
        title,
        "round trip",
        RAW,
        rows,
        Vec::new(),
    ));
    Ok(groups)
}

fn local_variants(locals: &[(String, RefCell<Box<dyn Local>>)], form: Form) -> Vec<Variant<'_>> {
    locals
        .iter()
        .map(|(name, l)| {
            let v = Variant::new(name.clone(), move |n| l.borrow_mut().run(n));
            if form != Form::Oneshot && name.starts_with("aio") {
                v.expect_no_allocs()
            } else {
                v
            }
        })
        .collect()
}

/// Measures the four comparisons.
///
/// # Errors
///
/// Setting up a context, a runtime or a thread failed, or a batch did not
/// run its work exactly once per iteration.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("bottom-half", 4);
    let mut report = ScenarioReport {
        name: "bottom-half".to_owned(),
        about: ABOUT.to_owned(),
        ..ScenarioReport::default()
    };
    for form in [Form::Oneshot, Form::Reused, Form::Chain] {
        let locals = locals(env, form)?;
        let mut variants = local_variants(&locals, form);
        let rows = env.measure(form.title(), &mut variants)?;
        drop(variants);
        let notes = match form {
            Form::Oneshot => vec![
                "aio boxes the closure (one allocation per iteration); tokio allocates the task"
                    .to_owned(),
            ],
            Form::Reused => {
                vec!["tokio: a task woken through a Notify, answering through another".to_owned()]
            }
            Form::Chain => vec!["tokio: tokio::task::yield_now, one per iteration".to_owned()],
        };
        let group = Group::new(form.id(), form.title(), "ns per run", TOKIO, rows, notes);
        if form == Form::Oneshot {
            for monitor in Monitor::ALL {
                let v = monitor.variant();
                if let Some(row) = group.row(v) {
                    report.targets.push(Target::at_most(
                        form.id(),
                        v,
                        "<= 50 ns",
                        Some(row.median_ns),
                        50.0,
                        "ns",
                    ));
                }
            }
        }
        report.groups.push(group);
    }
    let remotes = remotes(env)?;
    let mut variants: Vec<Variant<'_>> = remotes.iter().map(Remote::variant).collect();
    let title = "bottom half from another thread to a sleeping loop: round trip";
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    drop(remotes);
    report.groups.push(Group::new(
        "bottom-half/remote",
        title,
        "round trip",
        RAW,
        rows,
        vec![
            format!(
                "the other thread pauses {} us before each round trip (not counted) and spins until the work has run",
                PAUSE.as_micros()
            ),
            "aio: a RemoteBh scheduled from the other thread; home sleeps: voluntary context switches of the home thread".to_owned(),
        ],
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Filter, Progress};
    use crate::measure::Plan;

    #[test]
    fn every_variant_runs_its_work() {
        let (filter, progress) = (Filter::default(), Progress::hidden());
        let env = Env {
            plan: Plan::QUICK,
            filter: &filter,
            cpus: Cpus::NONE,
            progress: &progress,
        };
        for form in [Form::Oneshot, Form::Reused, Form::Chain] {
            for (name, local) in locals(&env, form).unwrap() {
                let mut local = local.borrow_mut();
                local.run(20).unwrap_or_else(|e| panic!("{name}: {e}"));
                local.run(5).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        for remote in remotes(&env).unwrap() {
            remote.run(20).unwrap();
            remote.run(5).unwrap();
            assert_eq!(
                remote.trips.done.load(Ordering::Acquire),
                25,
                "{}",
                remote.name
            );
        }
    }
}
