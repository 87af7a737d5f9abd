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
//!
//! This file is the scenario: which loops run, the targets, the summary.
//! The loops themselves are in `loops.rs` and `raw_uring.rs`.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use crate::env::{Env, Monitor, io_uring_available};
use crate::measure::{Measurement, Plan, Variant};
use crate::report::{Group, ScenarioReport, Summary, Target, ratio};
use crate::sys;

mod breakdown;
mod loops;
mod raw_uring;

use loops::{AioLoop, Iterate, MioLoop, PollingLoop, RawEpoll, RawPpoll, TokioLoop};

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

#[cfg(test)]
mod tests {
    use super::*;

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
