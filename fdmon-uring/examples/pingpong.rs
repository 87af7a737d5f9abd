//! Two-thread eventfd ping-pong: each thread runs its own context on its
//! own monitor; a handler on each side drains its eventfd and writes the
//! other's. Prints the round-trip time (median, 99th percentile, mean) and
//! the kernel work per round trip, for io_uring in each task-running mode
//! (`cargo xtask bench --scenario ping-pong` compares the monitors), with busy polling as QEMU's I/O threads have it
//! (`PollParams::IOTHREAD`, windows of up to 32 us), with windows of up to
//! 256 us, and off.
//!
//! ```text
//! cargo run --release -p fdmon-uring --example pingpong [ROUND_TRIPS] [REPEATS] [FILTER]
//! ```
//!
//! Each configuration runs `REPEATS` times (default 3), interleaved, and
//! the least disturbed run (the lowest median round trip) is printed. `FILTER` keeps the
//! configurations whose row (polling, monitor) contains it, e.g.
//! `iothread` or `DEFER`.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aio_core::testing::TestMonitor;
use aio_core::{AioContext, EventNotifier, FdHandler, FdMonitor, PollParams};
use fdmon_uring::{TaskRun, UringMonitor, UringOptions};

/// Which monitor a side runs on: io_uring in one task-running mode.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Uring(TaskRun),
}

impl Kind {
    fn label(self) -> String {
        let Kind::Uring(mode) = self;
        format!("io_uring {}", mode.flags())
    }

    /// A monitor, and a counter of its `io_uring_enter` calls (copied out
    /// after each wait).
    fn open(self, enters: &Rc<Cell<u64>>) -> io::Result<Box<dyn FdMonitor>> {
        let Kind::Uring(mode) = self;
        let enters = Rc::clone(enters);
        let ring = UringMonitor::with_options(UringOptions::default().task_run(mode))?;
        Ok(Box::new(TestMonitor::new(ring).on_wait(
            move |inner, events, timeout| {
                let result = inner.wait(events, timeout);
                enters.set(inner.enters());
                result
            },
        )))
    }
}

/// What one side saw over the measured round trips.
#[derive(Clone, Copy, Debug, Default)]
struct Work {
    waits: u64,
    blocking_waits: u64,
    enters: u64,
    poll_hits: u64,
}

/// One side: serves its eventfd until it has handled `total` pings,
/// answering each by writing `peer`. The initiating side records the time
/// of each pong in `times`. Returns the work done during the last
/// `measured` pings.
fn side(
    kind: Kind,
    params: PollParams,
    mine: &Arc<EventNotifier>,
    peer: &Arc<EventNotifier>,
    total: usize,
    measured: usize,
    initiator: bool,
) -> io::Result<(Work, Vec<Instant>)> {
    let enters = Rc::new(Cell::new(0));
    let monitor = kind.open(&enters)?;
    let ctx = AioContext::with_monitor(monitor)?;
    ctx.set_poll_params(params);
    let count = Rc::new(Cell::new(0usize));
    let times = Rc::new(std::cell::RefCell::new(Vec::with_capacity(total)));
    let (m, p, c, t) = (
        Arc::clone(mine),
        Arc::clone(peer),
        Rc::clone(&count),
        Rc::clone(&times),
    );
    ctx.set_fd_handler(
        &**mine,
        Some(FdHandler::new().on_read(move |_| {
            if !m.test_and_clear().unwrap() {
                return;
            }
            c.set(c.get() + 1);
            if initiator {
                t.borrow_mut().push(Instant::now());
                if c.get() < total {
                    p.set().unwrap();
                }
            } else {
                p.set().unwrap();
            }
        })),
    )?;
    let mut work = None;
    let snapshot = |ctx: &AioContext| {
        let s = ctx.stats();
        Work {
            waits: s.waits,
            blocking_waits: s.blocking_waits,
            enters: enters.get(),
            poll_hits: s.poll_hits,
        }
    };
    if initiator {
        times.borrow_mut().push(Instant::now());
        peer.set()?;
    }
    while count.get() < total {
        if work.is_none() && count.get() >= total - measured {
            work = Some(snapshot(&ctx));
        }
        ctx.poll(true)?;
    }
    let start = work.unwrap_or_default();
    let end = snapshot(&ctx);
    let work = Work {
        waits: end.waits - start.waits,
        blocking_waits: end.blocking_waits - start.blocking_waits,
        enters: end.enters - start.enters,
        poll_hits: end.poll_hits - start.poll_hits,
    };
    ctx.set_fd_handler(&**mine, None)?;
    let times = times.take();
    Ok((work, times))
}

/// One measurement.
struct Run {
    median: Duration,
    p99: Duration,
    mean: Duration,
    /// Per round trip, both sides together.
    waits: f64,
    blocking_waits: f64,
    enters: f64,
    poll_hits: f64,
}

fn run(kind: Kind, params: PollParams, round_trips: usize) -> io::Result<Run> {
    let warmup = round_trips / 5;
    let total = warmup + round_trips;
    let (a, b) = (
        Arc::new(EventNotifier::new()?),
        Arc::new(EventNotifier::new()?),
    );
    let responder = {
        let (a, b) = (Arc::clone(&a), Arc::clone(&b));
        std::thread::spawn(move || side(kind, params, &b, &a, total, round_trips, false))
    };
    let (work_a, times) = side(kind, params, &a, &b, total, round_trips, true)?;
    let (work_b, _) = responder.join().expect("the responder panicked")?;
    let mut rtts: Vec<Duration> = times[warmup..]
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    let mean = times[total].duration_since(times[warmup]) / (total - warmup) as u32;
    rtts.sort_unstable();
    let per = |x: u64| x as f64 / round_trips as f64;
    Ok(Run {
        median: rtts[rtts.len() / 2],
        p99: rtts[rtts.len() * 99 / 100],
        mean,
        waits: per(work_a.waits + work_b.waits),
        blocking_waits: per(work_a.blocking_waits + work_b.blocking_waits),
        enters: per(work_a.enters + work_b.enters),
        poll_hits: per(work_a.poll_hits + work_b.poll_hits),
    })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let round_trips: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("ROUND_TRIPS"));
    let repeats: usize = args.next().map_or(3, |a| a.parse().expect("REPEATS"));
    let filter = args.next().unwrap_or_default();
    let kinds: Vec<Kind> = TaskRun::ALL.into_iter().map(Kind::Uring).collect();
    // Polling as QEMU's I/O threads have it, with windows of up to 256 us,
    // and off.
    let long = PollParams {
        max_ns: 256_000,
        ..PollParams::IOTHREAD
    };
    let configs: Vec<(Kind, PollParams, &str)> = [
        (PollParams::IOTHREAD, "iothread"),
        (long, "256us"),
        (PollParams::OFF, "off"),
    ]
    .into_iter()
    .flat_map(|(params, name)| kinds.iter().map(move |&k| (k, params, name)))
    .filter(|(kind, _, name)| format!("{name} {}", kind.label()).contains(&filter))
    .collect();
    let mut results: Vec<Vec<Run>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeats {
        for (i, &(kind, params, _)) in configs.iter().enumerate() {
            results[i].push(run(kind, params, round_trips)?);
        }
    }
    println!(
        "eventfd ping-pong, {round_trips} round trips, best run (lowest median) of {repeats}; per round trip:"
    );
    println!(
        "{:<9} {:<48} {:>8} {:>8} {:>8} {:>7} {:>9} {:>7} {:>6}",
        "polling", "monitor", "median", "p99", "mean", "waits", "blocking", "enters", "hits"
    );
    for (i, &(kind, _, polling)) in configs.iter().enumerate() {
        let runs = &mut results[i];
        // The least disturbed run: other load on the machine only adds.
        runs.sort_by_key(|r| r.median);
        let r = &runs[0];
        println!(
            "{:<9} {:<48} {:>6.2}us {:>6.2}us {:>6.2}us {:>7.2} {:>9.2} {:>7.2} {:>6.2}",
            polling,
            kind.label(),
            us(r.median),
            us(r.p99),
            us(r.mean),
            r.waits,
            r.blocking_waits,
            r.enters,
            r.poll_hits,
        );
    }
    Ok(())
}
