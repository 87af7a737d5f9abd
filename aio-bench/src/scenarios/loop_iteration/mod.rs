//! `loop-iteration`: the cost of one loop iteration that serves one active
//! eventfd among `K` idle ones.
//!
//! One iteration writes the active eventfd, then asks the loop for what is
//! ready without blocking, and the active fd's handler drains it. For each
//! `K`, measured together:
//!
//! * `raw-epoll`, the reference: a level-triggered epoll set by hand,
//!   `epoll_wait` with a zero timeout, a read of each fd it returns;
//! * `raw-ppoll`: the same with `ppoll` over a `pollfd` array;
//! * `raw-io_uring`: the same with multishot polls on a ring set up as
//!   well as the kernel allows (see `raw_uring.rs`), so that the io_uring
//!   monitor's own cost shows; `raw-io_uring-level`: the same ring with
//!   one-shot polls re-armed after each event, which keeps readiness
//!   level-triggered as the io_uring monitor must;
//! * aio on each monitor (`aio-poll`, `aio-epoll`, `aio-io_uring`,
//!   `aio-auto`): `poll(false)`;
//! * `mio` (`Poll::poll` with a zero timeout, edge-triggered), `polling`
//!   (`Poller::wait` with a zero timeout, level mode), `tokio` (an
//!   `AsyncFd` per fd; the task awaits the active one's readiness, so each
//!   iteration is one turn of the runtime).
//!
//! The `K` idle eventfds are shared by every variant (they are never
//! written); each variant has an active eventfd of its own. A summary puts
//! the medians side by side by `K`, and a last group takes one iteration
//! apart (`breakdown.rs`: a clock reading, an empty pass, a bottom half, a
//! timer check, a poll hit at once and one through the window).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use aio::prelude::*;

use crate::env::{Env, Monitor, io_uring_available};
use crate::measure::{Measurement, Plan, Variant};
use crate::peers::{Fd, polling_add, tokio_recv, tokio_runtime, tokio_watch};
use crate::report::{Group, ScenarioReport, Summary, Target, ratio};
use crate::scenarios::check_done;
use crate::sys;

mod breakdown;
mod raw_uring;

/// The numbers of idle fds measured, `K`.
pub const IDLE_COUNTS: &[usize] = &[1, 64, 1000, 10_000];

/// The numbers of idle fds of a quick run.
pub const QUICK_IDLE_COUNTS: &[usize] = &[1, 1000];

/// The reference.
pub const REFERENCE: &str = "raw-epoll";
/// The hand-written ppoll loop.
pub const RAW_PPOLL: &str = "raw-ppoll";

/// The scenario's one-line description.
pub const ABOUT: &str = "one non-blocking iteration serving one active eventfd among K idle ones; figure: ns per iteration";

/// How much slower the largest K may be than the smallest for a cost to
/// count as flat.
pub const FLAT: f64 = 1.25;

/// One variant's loop.
trait Iterate {
    /// Runs `n` iterations; fails unless each served the active fd once.
    fn run(&mut self, n: u64) -> io::Result<()>;
}

/// Measures one group per `K`, then sums them up.
///
/// # Errors
///
/// Setting up the fds or the loops failed (the fd limit is too low for
/// `K`, say), or an iteration did not serve the active fd exactly once.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    let counts = if env.plan.is_quick() {
        QUICK_IDLE_COUNTS
    } else {
        IDLE_COUNTS
    };
    env.progress.scenario("loop-iteration", counts.len() + 1);
    let mut groups = Vec::new();
    for &idle in counts {
        groups.push(run_one(env, idle)?);
    }
    let mut targets = Vec::new();
    for group in &groups {
        targets.extend(cost_targets(group));
    }
    if let (Some(first), Some(last)) = (groups.first(), groups.last())
        && groups.len() > 1
    {
        for monitor in [Monitor::Epoll, Monitor::Auto] {
            let v = monitor.variant();
            let growth = Some(
                last.row(v)
                    .zip(first.row(v))
                    .map(|(l, f)| l.median_ns / f.median_ns),
            )
            .flatten();
            let mut t = Target::at_most(
                &last.id,
                v,
                format!(
                    "flat in K: K = {} / K = {} <= {FLAT:.2}x",
                    ks(last),
                    ks(first)
                ),
                growth,
                FLAT,
                "x",
            );
            if monitor == Monitor::Auto {
                t = t.note("the automatic choice must not show poll's O(K) curve");
            }
            targets.push(t);
        }
    }
    let summary = summary(counts, &groups);
    groups.push(breakdown::run(env)?);
    Ok(ScenarioReport {
        name: "loop-iteration".to_owned(),
        about: ABOUT.to_owned(),
        groups,
        summaries: vec![summary],
        targets,
        seconds: 0.0,
    })
}

/// How many times the epoll reference an iteration on aio's epoll
/// monitor may take; and the io_uring monitor the same over the ring used
/// the same way by hand (`raw-io_uring-level`).
pub const OVER_RAW: f64 = 1.05;

/// The per-iteration cost targets of one group: epoll within
/// [`OVER_RAW`]x raw epoll; io_uring within raw epoll, or within
/// [`OVER_RAW`]x `raw-io_uring-level`, whichever is the looser here.
/// Level-triggered readiness costs a ring a one-shot poll re-armed per
/// event (the kernel polls the fd and queues a wait entry again each
/// time), which `raw-io_uring-level` shows by itself; the multishot
/// `raw-io_uring` is edge-like, which a monitor may not be.
fn cost_targets(group: &Group) -> Vec<Target> {
    let own_work = "the same system calls as the hand-written loop; the gap is the loop's own work \
                    in user space (the pass, the dispatch through the registry, the handler's callback)";
    let mut targets = Vec::new();
    let epoll = Monitor::Epoll.variant();
    if group.row(epoll).is_some() {
        targets.push(
            Target::at_most(
                &group.id,
                epoll,
                format!("<= {OVER_RAW:.2}x {REFERENCE}"),
                group.ratio(epoll, REFERENCE),
                OVER_RAW,
                "x",
            )
            .note_if_not_met(own_work),
        );
    }
    let uring = Monitor::IoUring.variant();
    if group.row(uring).is_some() {
        let level = group.ratio(raw_uring::LEVEL, REFERENCE);
        let limit = level.map_or(1.0, |level| (OVER_RAW * level).max(1.0));
        let label = match level {
            Some(level) => format!(
                "<= 1.00x {REFERENCE} or <= {OVER_RAW:.2}x {} ({level:.2}x): {limit:.2}x",
                raw_uring::LEVEL
            ),
            None => format!("<= 1.00x {REFERENCE}"),
        };
        targets.push(
            Target::at_most(
                &group.id,
                uring,
                label,
                group.ratio(uring, REFERENCE),
                limit,
                "x",
            )
            .note_if_not_met(own_work),
        );
    }
    targets
}

fn ks(group: &Group) -> &str {
    group.id.rsplit('/').next().unwrap_or("?")
}

/// The loops over `idle_fds` that the filter keeps.
type Loops = Vec<(String, RefCell<Box<dyn Iterate>>)>;

/// The loops over `idle_fds` that the filter keeps, and notes on how they
/// were set up (what `aio-auto` runs on, the raw ring's flags).
fn loops(env: &Env<'_>, idle_fds: &[OwnedFd]) -> io::Result<(Loops, Vec<String>)> {
    let wants = |name: &str| name == REFERENCE || env.wants(name);
    let mut loops: Vec<(String, Box<dyn Iterate>)> = Vec::new();
    let mut notes = Vec::new();
    loops.push((REFERENCE.to_owned(), Box::new(RawEpoll::new(idle_fds)?)));
    if wants(RAW_PPOLL) {
        loops.push((RAW_PPOLL.to_owned(), Box::new(RawPpoll::new(idle_fds)?)));
    }
    for (name, multishot) in [(raw_uring::NAME, true), (raw_uring::LEVEL, false)] {
        if wants(name) && io_uring_available() {
            let ring = raw_uring::RawUring::new(idle_fds, multishot)?;
            notes.push(format!("{name} set up with {}", ring.setup()));
            loops.push((name.to_owned(), Box::new(ring)));
        }
    }
    for monitor in Monitor::ALL {
        if wants(monitor.variant()) {
            let aio = AioLoop::new(monitor, idle_fds)?;
            if monitor == Monitor::Auto {
                notes.push(format!("aio-auto ran on {}", aio.ctx.backend().name));
            }
            loops.push((monitor.variant().to_owned(), Box::new(aio)));
        }
    }
    if wants("mio") {
        loops.push(("mio".to_owned(), Box::new(MioLoop::new(idle_fds)?)));
    }
    if wants("polling") {
        loops.push(("polling".to_owned(), Box::new(PollingLoop::new(idle_fds)?)));
    }
    if wants("tokio") {
        loops.push(("tokio".to_owned(), Box::new(TokioLoop::new(idle_fds)?)));
    }
    let loops = loops
        .into_iter()
        .map(|(name, l)| (name, RefCell::new(l)))
        .collect();
    Ok((loops, notes))
}

fn variants(loops: &Loops) -> Vec<Variant<'_>> {
    loops
        .iter()
        .map(|(name, l)| {
            Variant::new(name.clone(), move |n| l.borrow_mut().run(n)).expect_no_allocs()
        })
        .collect()
}

/// Allocations of each loop in steady state, with 64 idle fds, under
/// `plan`.
pub(crate) fn steady_state(env: &Env<'_>, plan: &Plan) -> io::Result<Group> {
    let idle_fds = idle_eventfds(64)?;
    let (loops, _) = loops(env, &idle_fds)?;
    let title = "steady state: loop iteration, 64 idle + 1 active eventfd";
    let rows = env.measure_with(plan, title, &mut variants(&loops))?;
    Ok(Group::new(
        "allocations/loop-iteration",
        title,
        "ns per iteration",
        REFERENCE,
        rows,
        Vec::new(),
    ))
}

fn run_one(env: &Env<'_>, idle: usize) -> io::Result<Group> {
    // Declared first so they drop last: the loops watch them.
    let idle_fds = idle_eventfds(idle)?;
    let (loops, setup_notes) = loops(env, &idle_fds)?;
    let mut variants = variants(&loops);
    let title = format!("loop iteration, K = {idle} idle + 1 active eventfd");
    let rows = env.measure(&title, &mut variants)?;
    drop(variants);
    let mut notes = vec![format!(
        "the aio loops also watch their context's own notifier: {} fds to {}",
        idle + 2,
        idle + 1
    )];
    notes.extend(setup_notes);
    let mut group = Group::new(
        format!("loop-iteration/{idle}"),
        title,
        "ns per iteration",
        REFERENCE,
        rows,
        notes,
    );
    let uring = Monitor::IoUring.variant();
    if let Some(own) = group.ratio(uring, raw_uring::NAME) {
        group.notes.push(format!(
            "{uring} / {}: {} (the monitor's own cost over the ring's)",
            raw_uring::NAME,
            ratio(own)
        ));
    }
    Ok(group)
}

/// The medians of every group side by side by `K`, with the crossover of
/// aio's poll and epoll monitors.
fn summary(idle_counts: &[usize], groups: &[Group]) -> Summary {
    let mut names: Vec<String> = Vec::new();
    for row in groups.iter().flat_map(|g| &g.rows) {
        if !names.contains(&row.name) {
            names.push(row.name.clone());
        }
    }
    let median = |group: &Group, name: &str| {
        group
            .row(name)
            .map_or(f64::NAN, |m: &Measurement| m.median_ns)
    };
    let rows = idle_counts
        .iter()
        .zip(groups)
        .map(|(&k, group)| {
            let mut row = vec![k.to_string()];
            row.extend(names.iter().map(|n| crate::report::ns(median(group, n))));
            row.push(ratio(
                median(group, "aio-epoll") / median(group, "aio-poll"),
            ));
            row
        })
        .collect();
    let mut headers = vec!["K".to_owned()];
    headers.extend(names.iter().cloned());
    headers.push("aio epoll/poll".to_owned());
    let cheaper: Vec<bool> = groups
        .iter()
        .map(|g| median(g, "aio-epoll") < median(g, "aio-poll"))
        .collect();
    Summary {
        title: "loop iteration: median ns per iteration by idle fds K".to_owned(),
        headers,
        rows,
        notes: vec![format!(
            "aio-epoll vs aio-poll: {}",
            crossover(idle_counts, &cheaper)
        )],
    }
}

/// Says from which `K` on epoll is the cheaper, given whether it was at
/// each `K`: the smallest `K` from which it stays cheaper.
fn crossover(idle_counts: &[usize], epoll_cheaper: &[bool]) -> String {
    let from = epoll_cheaper
        .iter()
        .rposition(|&cheaper| !cheaper)
        .map_or(0, |last_dearer| last_dearer + 1);
    match idle_counts.get(from) {
        None => "epoll is not the cheaper at the largest K measured".to_owned(),
        Some(_) if from == 0 => "epoll is the cheaper at every K measured".to_owned(),
        Some(k) => format!(
            "epoll is the cheaper from K = {k} on (crossover between K = {} and {k})",
            idle_counts[from - 1]
        ),
    }
}

/// `count` idle eventfds, after raising the fd limit if they need it.
fn idle_eventfds(count: usize) -> io::Result<Vec<OwnedFd>> {
    // Every loop's own fds, the contexts' notifiers, stdio, and some room.
    sys::allow_fds(count as u64 + 128)?;
    (0..count).map(|_| sys::eventfd()).collect()
}

/// The event loop on a monitor with handlers on the idle fds and one
/// active one.
struct AioLoop {
    name: &'static str,
    // Declared first so it drops first: the fds must outlive their handlers.
    ctx: AioContext,
    active: Rc<EventNotifier>,
    served: Rc<Cell<u64>>,
    idle_served: Rc<Cell<u64>>,
}

impl AioLoop {
    fn new(monitor: Monitor, idle: &[OwnedFd]) -> io::Result<AioLoop> {
        let ctx = monitor.context(PollParams::OFF)?;
        let idle_served = Rc::new(Cell::new(0));
        for fd in idle {
            let count = Rc::clone(&idle_served);
            ctx.set_fd_handler(
                fd,
                Some(FdHandler::new().on_read(move |_ctx| count.set(count.get() + 1))),
            )?;
        }
        let active = Rc::new(EventNotifier::new()?);
        let served = Rc::new(Cell::new(0));
        let (drain, count) = (Rc::clone(&active), Rc::clone(&served));
        ctx.set_fd_handler(
            &*active,
            Some(FdHandler::new().on_read(move |_ctx| {
                if drain.test_and_clear().unwrap_or(false) {
                    count.set(count.get() + 1);
                }
            })),
        )?;
        Ok(AioLoop {
            name: monitor.variant(),
            ctx,
            active,
            served,
            idle_served,
        })
    }
}

impl Iterate for AioLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.served.get();
        for _ in 0..n {
            self.active.set()?;
            self.ctx.poll(false)?;
        }
        check_done(self.name, n, self.served.get() - before)?;
        check_done(self.name, 0, self.idle_served.get())
    }
}

/// The hand-written ppoll loop: eventfds and a `pollfd` array.
struct RawPpoll {
    pollfds: Vec<libc::pollfd>,
    active: OwnedFd,
}

impl RawPpoll {
    fn new(idle: &[OwnedFd]) -> io::Result<RawPpoll> {
        let active = sys::eventfd()?;
        let pollfds = idle
            .iter()
            .chain([&active])
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLPRI,
                revents: 0,
            })
            .collect();
        Ok(RawPpoll { pollfds, active })
    }
}

impl Iterate for RawPpoll {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut served = 0;
        for _ in 0..n {
            sys::write_one(self.active.as_raw_fd())?;
            // A null signal mask leaves the mask unchanged.
            // SAFETY: `pollfds` is a live, exclusively borrowed array of
            // `pollfds.len()` pollfds; `zero` outlives the call.
            let ready = unsafe {
                libc::ppoll(
                    self.pollfds.as_mut_ptr(),
                    self.pollfds.len() as libc::nfds_t,
                    &zero,
                    std::ptr::null(),
                )
            };
            if ready < 0 {
                return Err(io::Error::last_os_error());
            }
            for pfd in &self.pollfds {
                if pfd.revents & (libc::POLLIN | libc::POLLPRI) != 0 && sys::read_one(pfd.fd)? {
                    served += 1;
                }
            }
        }
        check_done(RAW_PPOLL, n, served)
    }
}

/// The reference: a level-triggered epoll set by hand.
struct RawEpoll {
    epoll: sys::Epoll,
    active: OwnedFd,
}

impl RawEpoll {
    fn new(idle: &[OwnedFd]) -> io::Result<RawEpoll> {
        let epoll = sys::Epoll::new()?;
        let active = sys::eventfd()?;
        for fd in idle.iter().chain([&active]) {
            epoll.add(fd.as_raw_fd(), fd.as_raw_fd() as u64)?;
        }
        Ok(RawEpoll { epoll, active })
    }
}

impl Iterate for RawEpoll {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let mut served = 0;
        for _ in 0..n {
            sys::write_one(self.active.as_raw_fd())?;
            for data in self.epoll.wait(0)? {
                if sys::read_one(data as RawFd)? {
                    served += 1;
                }
            }
        }
        check_done(REFERENCE, n, served)
    }
}

/// mio: `Poll` with every fd as a `SourceFd`, edge-triggered.
struct MioLoop {
    poll: mio::Poll,
    events: mio::Events,
    active: OwnedFd,
    active_token: mio::Token,
}

impl MioLoop {
    fn new(idle: &[OwnedFd]) -> io::Result<MioLoop> {
        let poll = mio::Poll::new()?;
        for (i, fd) in idle.iter().enumerate() {
            poll.registry().register(
                &mut mio::unix::SourceFd(&fd.as_raw_fd()),
                mio::Token(i),
                mio::Interest::READABLE,
            )?;
        }
        let active = sys::eventfd()?;
        let active_token = mio::Token(idle.len());
        poll.registry().register(
            &mut mio::unix::SourceFd(&active.as_raw_fd()),
            active_token,
            mio::Interest::READABLE,
        )?;
        Ok(MioLoop {
            poll,
            events: mio::Events::with_capacity(64),
            active,
            active_token,
        })
    }
}

impl Iterate for MioLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let mut served = 0;
        let fd = self.active.as_raw_fd();
        for _ in 0..n {
            sys::write_one(fd)?;
            crate::peers::mio_poll(&mut self.poll, &mut self.events, Some(Duration::ZERO))?;
            for event in &self.events {
                if event.token() != self.active_token {
                    return Err(io::Error::other("mio: an idle fd fired"));
                }
                if sys::read_one(fd)? {
                    served += 1;
                }
            }
        }
        check_done("mio", n, served)
    }
}

/// polling: a `Poller` with every fd in level mode.
struct PollingLoop {
    poller: polling::Poller,
    events: polling::Events,
    active: OwnedFd,
    active_key: usize,
    watched: Vec<RawFd>,
}

impl PollingLoop {
    fn new(idle: &[OwnedFd]) -> io::Result<PollingLoop> {
        let poller = polling::Poller::new()?;
        let active = sys::eventfd()?;
        let mut watched = Vec::new();
        for (key, fd) in idle.iter().chain([&active]).enumerate() {
            polling_add(&poller, fd.as_raw_fd(), key)?;
            watched.push(fd.as_raw_fd());
        }
        Ok(PollingLoop {
            poller,
            events: polling::Events::with_capacity(std::num::NonZeroUsize::MIN.saturating_add(63)),
            active_key: idle.len(),
            active,
            watched,
        })
    }
}

impl Iterate for PollingLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let mut served = 0;
        let fd = self.active.as_raw_fd();
        for _ in 0..n {
            sys::write_one(fd)?;
            self.events.clear();
            self.poller.wait(&mut self.events, Some(Duration::ZERO))?;
            for event in self.events.iter() {
                if event.key != self.active_key {
                    return Err(io::Error::other("polling: an idle fd fired"));
                }
                if sys::read_one(fd)? {
                    served += 1;
                }
            }
        }
        check_done("polling", n, served)
    }
}

impl Drop for PollingLoop {
    fn drop(&mut self) {
        // The poller must forget the fds before they close.
        for &fd in &self.watched {
            // SAFETY: `fd` is still open: the idle fds outlive every loop,
            // and `active` is dropped after this.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = self.poller.delete(fd);
        }
    }
}

/// tokio: an `AsyncFd` per fd on a current-thread runtime; each iteration
/// writes the active fd and awaits its readiness.
struct TokioLoop {
    // Declared before the runtime: deregistered before it goes.
    _idle: Vec<tokio::io::unix::AsyncFd<Fd>>,
    active_afd: tokio::io::unix::AsyncFd<Fd>,
    rt: tokio::runtime::Runtime,
    active: OwnedFd,
}

impl TokioLoop {
    fn new(idle: &[OwnedFd]) -> io::Result<TokioLoop> {
        let rt = tokio_runtime()?;
        let active = sys::eventfd()?;
        let _guard = rt.enter();
        let idle = idle
            .iter()
            .map(|fd| tokio_watch(fd.as_raw_fd()))
            .collect::<io::Result<Vec<_>>>()?;
        let active_afd = tokio_watch(active.as_raw_fd())?;
        drop(_guard);
        Ok(TokioLoop {
            _idle: idle,
            active_afd,
            rt,
            active,
        })
    }
}

impl Iterate for TokioLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let (afd, fd) = (&self.active_afd, self.active.as_raw_fd());
        self.rt.block_on(async {
            for _ in 0..n {
                sys::write_one(fd)?;
                tokio_recv(afd).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loop_serves_the_active_fd_once_per_iteration() {
        let idle = idle_eventfds(3).unwrap();
        let mut loops: Vec<Box<dyn Iterate>> = vec![
            Box::new(RawPpoll::new(&idle).unwrap()),
            Box::new(RawEpoll::new(&idle).unwrap()),
            Box::new(MioLoop::new(&idle).unwrap()),
            Box::new(PollingLoop::new(&idle).unwrap()),
            Box::new(TokioLoop::new(&idle).unwrap()),
        ];
        for monitor in Monitor::ALL {
            loops.push(Box::new(AioLoop::new(monitor, &idle).unwrap()));
        }
        if io_uring_available() {
            for multishot in [true, false] {
                let ring = raw_uring::RawUring::new(&idle, multishot).unwrap();
                loops.push(Box::new(ring));
            }
        }
        for l in &mut loops {
            l.run(50).unwrap();
        }
    }

    #[test]
    fn an_idle_fd_that_fires_fails_the_batch() {
        let idle = idle_eventfds(2).unwrap();
        let mut aio = AioLoop::new(Monitor::Epoll, &idle).unwrap();
        let mut mio = MioLoop::new(&idle).unwrap();
        let mut polling = PollingLoop::new(&idle).unwrap();
        sys::write_one(idle[1].as_raw_fd()).unwrap();
        assert!(aio.run(1).is_err());
        assert!(mio.run(1).is_err());
        assert!(polling.run(1).is_err());
        if io_uring_available() {
            for multishot in [true, false] {
                let mut ring = raw_uring::RawUring::new(&idle, multishot).unwrap();
                assert!(ring.run(1).is_err(), "{}", ring.name());
            }
        }
        let mut raw = RawEpoll::new(&idle).unwrap();
        assert!(raw.run(1).is_err(), "the raw loop serves it as work done");
    }

    #[test]
    fn the_crossover_is_where_epoll_stays_cheaper() {
        let ks = [1, 16, 64, 256];
        assert_eq!(
            crossover(&ks, &[false, true, false, true]),
            "epoll is the cheaper from K = 256 on (crossover between K = 64 and 256)"
        );
        assert_eq!(
            crossover(&ks, &[true; 4]),
            "epoll is the cheaper at every K measured"
        );
        assert_eq!(
            crossover(&ks, &[true, true, true, false]),
            "epoll is not the cheaper at the largest K measured"
        );
    }
}
