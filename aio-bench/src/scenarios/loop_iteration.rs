//! `loop-iteration`: the cost of one loop iteration that serves one active
//! eventfd among `K` idle ones, on poll and on epoll.
//!
//! One iteration writes the active eventfd, then polls without blocking,
//! and the active fd's read handler drains it. Four variants, measured
//! together for each `K`:
//!
//! * `raw-ppoll`, the reference: the same work by hand, `ppoll` with a zero
//!   timeout over the eventfds, a scan of the `pollfd` array, a read of the
//!   ready one;
//! * `aio-poll`: the event loop on the poll monitor;
//! * `raw-epoll`: by hand on a level-triggered epoll set, `epoll_wait` with a
//!   zero timeout, a read of each fd it returns;
//! * `aio-epoll`: the event loop on the epoll monitor.
//!
//! The `K` idle eventfds are shared by the four variants (they are never
//! written); each variant has an active eventfd of its own. A summary table
//! puts the medians side by side by `K`, and says from which `K` on epoll is
//! the cheaper.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use aio::prelude::*;
use aio::{ContextBuilder, FdMonitor};
use fdmon_epoll::EpollMonitor;
use fdmon_poll::PollMonitor;

use crate::measure::{Measurement, Plan, Variant, interleaved};
use crate::report::{Group, Report, Summary, ratio};
use crate::scenarios::check_done;

/// The numbers of idle fds measured, `K`.
pub const IDLE_COUNTS: &[usize] = &[1, 16, 64, 256, 1000, 10_000];

/// The numbers of idle fds of a quick run.
pub const QUICK_IDLE_COUNTS: &[usize] = &[1, 64, 1000];

/// The name of the reference variant.
pub const REFERENCE: &str = "raw-ppoll";
/// The name of the event loop's variant on the poll monitor.
pub const AIO_POLL: &str = "aio-poll";
/// The name of the hand-written epoll variant.
pub const RAW_EPOLL: &str = "raw-epoll";
/// The name of the event loop's variant on the epoll monitor.
pub const AIO_EPOLL: &str = "aio-epoll";

/// The variants in the order measured and summarised.
const VARIANTS: [&str; 4] = [REFERENCE, AIO_POLL, RAW_EPOLL, AIO_EPOLL];

/// Measures one group per entry of `idle_counts`, then sums them up by `K`.
///
/// # Errors
///
/// Setting up the fds or the contexts failed (the fd limit is too low for
/// `K`, say), or an iteration did not run the active handler exactly once.
pub fn run(plan: &Plan, idle_counts: &[usize]) -> io::Result<Report> {
    let groups = idle_counts
        .iter()
        .map(|&idle| run_one(plan, idle))
        .collect::<io::Result<Vec<Group>>>()?;
    let summary = summary(idle_counts, &groups);
    Ok(Report {
        groups,
        summaries: vec![summary],
    })
}

fn run_one(plan: &Plan, idle: usize) -> io::Result<Group> {
    // Declared first so they drop last: the loops watch them.
    let idle_fds = idle_eventfds(idle)?;
    let mut raw_ppoll = RawPpoll::new(&idle_fds)?;
    let aio_poll = AioLoop::new(AIO_POLL, Box::new(PollMonitor::new()), &idle_fds)?;
    let mut raw_epoll = RawEpoll::new(&idle_fds)?;
    let aio_epoll = AioLoop::new(AIO_EPOLL, Box::new(EpollMonitor::new()?), &idle_fds)?;
    let mut variants = [
        Variant::new(REFERENCE, |n| raw_ppoll.run(n)).expect_no_allocs(),
        Variant::new(AIO_POLL, |n| aio_poll.run(n)).expect_no_allocs(),
        Variant::new(RAW_EPOLL, |n| raw_epoll.run(n)).expect_no_allocs(),
        Variant::new(AIO_EPOLL, |n| aio_epoll.run(n)).expect_no_allocs(),
    ];
    let rows = interleaved(plan, &mut variants)?;
    drop(variants);
    Ok(Group {
        title: format!("loop-iteration: {idle} idle + 1 active eventfd"),
        reference: REFERENCE.to_owned(),
        rows,
        notes: vec![format!(
            "the aio variants also watch the context's own notifier: {} fds to {}",
            idle + 2,
            idle + 1
        )],
    })
}

/// The medians of every group side by side, with epoll's ratio to poll and
/// the `K` from which epoll is cheaper.
fn summary(idle_counts: &[usize], groups: &[Group]) -> Summary {
    let median = |group: &Group, name: &str| {
        group
            .rows
            .iter()
            .find(|m| m.name == name)
            .map_or(f64::NAN, |m: &Measurement| m.median_ns)
    };
    let mut rows = Vec::new();
    for (&k, group) in idle_counts.iter().zip(groups) {
        let mut row = vec![k.to_string()];
        row.extend(VARIANTS.map(|name| format!("{:.1}", median(group, name))));
        for (poll, epoll) in [(AIO_POLL, AIO_EPOLL), (REFERENCE, RAW_EPOLL)] {
            row.push(ratio(median(group, epoll) / median(group, poll)));
        }
        rows.push(row);
    }
    let mut headers = vec!["K".to_owned()];
    headers.extend(VARIANTS.map(str::to_owned));
    headers.extend(["aio epoll/poll", "raw epoll/poll"].map(str::to_owned));
    let notes = [(AIO_POLL, AIO_EPOLL), (REFERENCE, RAW_EPOLL)]
        .map(|(poll, epoll)| {
            let cheaper: Vec<bool> = groups
                .iter()
                .map(|g| median(g, epoll) < median(g, poll))
                .collect();
            format!("{epoll} vs {poll}: {}", crossover(idle_counts, &cheaper))
        })
        .to_vec();
    Summary {
        title: "loop-iteration: median ns per iteration by idle fds K, poll vs epoll".to_owned(),
        headers,
        rows,
        notes,
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
    // The loops' own fds, the contexts' notifiers, stdio, and some room.
    allow_fds(count as u64 + 64)?;
    (0..count).map(|_| eventfd()).collect()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit if it is below
/// `needed`; fails if the hard limit is.
fn allow_fds(needed: u64) -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct into `limit`, a live,
    // exclusively borrowed local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur >= needed as libc::rlim_t {
        return Ok(());
    }
    if limit.rlim_max < needed as libc::rlim_t {
        return Err(io::Error::other(format!(
            "{needed} fds are needed; the hard RLIMIT_NOFILE is {} (raise it: ulimit -Hn)",
            limit.rlim_max
        )));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads one rlimit struct from `limit`, a live local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The event loop on a given monitor with handlers on the idle fds and one
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
    fn new(
        name: &'static str,
        monitor: Box<dyn FdMonitor>,
        idle: &[OwnedFd],
    ) -> io::Result<AioLoop> {
        let expected = monitor.name();
        // Not through the facade: no backend choice, no upgrade to another
        // monitor as handlers are added.
        let ctx = ContextBuilder::new(monitor).build()?;
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
        let running = ctx.backend().name;
        if running != expected {
            return Err(io::Error::other(format!(
                "{name}: asked for the {expected} monitor, got {running}"
            )));
        }
        Ok(AioLoop {
            name,
            ctx,
            active,
            served,
            idle_served,
        })
    }

    fn run(&self, n: u64) -> io::Result<()> {
        let before = self.served.get();
        for _ in 0..n {
            self.active.set()?;
            self.ctx.poll(false)?;
        }
        check_done(self.name, n, self.served.get() - before)?;
        check_done(self.name, 0, self.idle_served.get())
    }
}

/// The hand-written reference: eventfds and a `pollfd` array, nothing else.
struct RawPpoll {
    pollfds: Vec<libc::pollfd>,
    active: OwnedFd,
}

impl RawPpoll {
    fn new(idle: &[OwnedFd]) -> io::Result<RawPpoll> {
        let active = eventfd()?;
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

    fn run(&mut self, n: u64) -> io::Result<()> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut served = 0;
        for _ in 0..n {
            write_one(self.active.as_raw_fd())?;
            // SAFETY: `pollfds` is a live, exclusively borrowed array of
            // `pollfds.len()` pollfd structs that the kernel writes revents
            // into; `zero` outlives the call; a null signal mask leaves the
            // mask unchanged.
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
                if pfd.revents & (libc::POLLIN | libc::POLLPRI) != 0 && read_one(pfd.fd)? {
                    served += 1;
                }
            }
        }
        check_done(REFERENCE, n, served)
    }
}

/// The same by hand on a level-triggered epoll set.
struct RawEpoll {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
    active: OwnedFd,
}

impl RawEpoll {
    fn new(idle: &[OwnedFd]) -> io::Result<RawEpoll> {
        // SAFETY: epoll_create1 takes no pointers; it returns a new fd or -1.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epfd` was just returned by epoll_create1, is open, and
        // nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let active = eventfd()?;
        for fd in idle.iter().chain([&active]) {
            let mut event = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLPRI) as u32,
                u64: fd.as_raw_fd() as u64,
            };
            // SAFETY: epoll_ctl reads `event`, a live local, and touches no
            // other memory; both fds are open and owned by the caller.
            let rc = unsafe {
                libc::epoll_ctl(
                    epfd.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    fd.as_raw_fd(),
                    &mut event,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        Ok(RawEpoll {
            epfd,
            events,
            active,
        })
    }

    fn run(&mut self, n: u64) -> io::Result<()> {
        let mut served = 0;
        for _ in 0..n {
            write_one(self.active.as_raw_fd())?;
            // SAFETY: `events` is a live, exclusively borrowed array of
            // `events.len()` epoll_event structs that the kernel writes
            // into.
            let ready = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    0,
                )
            };
            if ready < 0 {
                return Err(io::Error::last_os_error());
            }
            for event in &self.events[..ready as usize] {
                let (bits, fd) = (event.events, event.u64 as RawFd);
                if bits & (libc::EPOLLIN | libc::EPOLLPRI) as u32 != 0 && read_one(fd)? {
                    served += 1;
                }
            }
        }
        check_done(RAW_EPOLL, n, served)
    }
}

/// A non-blocking, close-on-exec eventfd.
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd, is open, and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter.
fn write_one(fd: RawFd) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is a live 8-byte buffer for the duration of the call;
    // `fd` is an eventfd owned by the caller's loop.
    let n = unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drains an eventfd; returns whether it was set.
fn read_one(fd: RawFd) -> io::Result<bool> {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is a live, exclusively borrowed 8-byte buffer for the
    // duration of the call; `fd` is an eventfd owned by the caller's loop
    // or by the scenario.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(false),
            _ => Err(err),
        };
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loop_serves_the_active_fd_once_per_iteration() {
        let idle = idle_eventfds(3).unwrap();
        RawPpoll::new(&idle).unwrap().run(50).unwrap();
        RawEpoll::new(&idle).unwrap().run(50).unwrap();
        for (name, monitor) in [
            (AIO_POLL, Box::new(PollMonitor::new()) as Box<dyn FdMonitor>),
            (AIO_EPOLL, Box::new(EpollMonitor::new().unwrap())),
        ] {
            let aio = AioLoop::new(name, monitor, &idle).unwrap();
            aio.run(50).unwrap();
            assert_eq!(aio.served.get(), 50);
        }
    }

    #[test]
    fn an_idle_fd_that_fires_fails_the_batch() {
        let idle = idle_eventfds(2).unwrap();
        let aio = AioLoop::new(AIO_EPOLL, Box::new(EpollMonitor::new().unwrap()), &idle).unwrap();
        write_one(idle[1].as_raw_fd()).unwrap();
        assert!(aio.run(1).is_err());
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

    #[test]
    fn the_summary_has_a_row_per_k_and_a_column_per_variant() {
        let group = |poll: f64, epoll: f64| Group {
            title: String::new(),
            reference: REFERENCE.to_owned(),
            rows: VARIANTS
                .iter()
                .zip([poll, poll, epoll, epoll])
                .map(|(name, median_ns)| Measurement {
                    name: (*name).to_owned(),
                    median_ns,
                    p99_ns: median_ns,
                    allocs_per_iter: None,
                    expects_no_allocs: true,
                    batch: 1,
                    rounds: 1,
                })
                .collect(),
            notes: Vec::new(),
        };
        let s = summary(&[1, 1000], &[group(100.0, 200.0), group(900.0, 300.0)]);
        assert_eq!(s.headers.len(), 7);
        assert_eq!(
            s.rows[1],
            ["1000", "900.0", "900.0", "300.0", "300.0", "0.33x", "0.33x"]
        );
        assert!(s.notes[0].contains("from K = 1000"), "{:?}", s.notes);
    }
}
