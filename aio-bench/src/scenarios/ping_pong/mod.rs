//! `ping-pong`: two threads, each with its own loop, pinned to distinct
//! CPUs, bounce a message; the figure is the round trip. Four forms:
//!
//! * **(a)** eventfds, polling off: every message is an eventfd write and
//!   the receiver sleeps in the kernel. aio on each monitor, `raw-epoll`
//!   (the reference: `epoll_wait` and `read`/`write` by hand), `mio`,
//!   `polling`, `tokio` (`AsyncFd` on the eventfds), `tokio-notify`
//!   (`Notify` across two runtimes), and the `spin-floor`.
//! * **(b)** a counter in shared memory plus an eventfd, polling on
//!   (`PollParams::IOTHREAD`, 32 768 ns): the receiver's `poll` callback
//!   checks the counter; the sender always writes the eventfd too.
//! * **(c)** the same, but the sender writes the eventfd only when the
//!   receiver has announced that it will block, as virtio devices do:
//!   `poll_begin` clears a "notify me" flag, `poll_end` sets it again, and
//!   the sender reads it after publishing its message (a Dekker pair of
//!   fences with the receiver's last look at the counter).
//! * **(d)** a plain socket pair with no `poll` callback, polling on: the
//!   loop peeks at the monitor while it spins. Each monitor also runs with
//!   polling off (`-blocking`), the blocking round trip it is compared to.
//!
//! Forms (b) to (d) also run epoll and io_uring with a 256 us ceiling
//! (`-max256us`), for machines whose blocking round trip is longer than
//! `IOTHREAD`'s 32.8 us, where a poll time never grows; the report's
//! header says which kind of machine it ran on ([`wake_up`]).
//!
//! The `spin-floor` is two threads bouncing an atomic: the physical limit
//! of a round trip between the two CPUs. Form (c) also runs
//! `spin-mailbox`, the same threads bouncing its messages through its
//! mailboxes without a loop: the protocol's own cost (a read-modify-write
//! and a fence per message, a cache line per direction).
//!
//! Each batch first makes round trips for [`WARM_UP`] untimed, so the other
//! side is awake and the previous variant's threads have gone to sleep
//! (a polling thread spins for up to its window, 256 us at most here);
//! then it times `n` round trips. The counters are the initiating side's,
//! per round trip: `home sleeps` (voluntary context switches: how often it
//! slept), and for aio `blocking waits` and `poll hits` from its
//! `Stats`; in (b) and (c), `eventfd writes` of both sides.
//!
//! The files: this one is the entry point (the forms, which pairs each
//! runs, the run itself); `harness` holds what every pair shares (timing,
//! counters, the partner thread); `link` and `mailbox` carry the aio
//! side's messages, `mailbox` being forms (b) and (c); `aio_pair` runs aio
//! on both threads; `raw_epoll`, `peers` and `spin_floor` are the
//! references and comparisons; `targets` reads the finished tables.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use aio::prelude::*;

use crate::env::{Env, Monitor};
use crate::measure::Variant;
use crate::report::{Group, ScenarioReport};
use crate::sys;

mod aio_pair;
mod harness;
mod link;
mod mailbox;
mod peers;
mod raw_epoll;
mod spin_floor;
mod targets;

use aio_pair::AioPair;
use harness::Timed;
use link::Link;
pub use mailbox::Mailbox;
use peers::{MioPair, PollingPair, TokioNotifyPair, TokioPair};
use raw_epoll::{EVENTFD_WIRE, RawEpollPair, RawFds, SOCKET_WIRE};
use spin_floor::{SpinMailboxPair, SpinPair};
pub use targets::wake_up;
use targets::{notes, targets};

/// Untimed round trips at the start of each batch, for at least this long.
pub const WARM_UP: Duration = Duration::from_micros(300);

/// The spin floor's name.
pub const SPIN: &str = "spin-floor";
/// The name of form (c)'s mailbox protocol without a loop.
pub const SPIN_MAILBOX: &str = "spin-mailbox";
/// The hand-written epoll loop's name.
pub const RAW_EPOLL: &str = "raw-epoll";

/// The scenario's one-line description.
pub const ABOUT: &str = "two threads, each with its own loop, pinned to distinct CPUs, bounce a \
    message; figure: the round trip";

const HOME_SLEEPS: &str = "home sleeps";
const BLOCKING: &str = "blocking waits";
const HITS: &str = "poll hits";
const WRITES: &str = "eventfd writes";

/// A form of the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    A,
    B,
    C,
    D,
}

impl Form {
    const ALL: [Form; 4] = [Form::A, Form::B, Form::C, Form::D];

    fn id(self) -> &'static str {
        match self {
            Form::A => "ping-pong/a",
            Form::B => "ping-pong/b",
            Form::C => "ping-pong/c",
            Form::D => "ping-pong/d",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Form::A => "ping-pong (a): eventfds, polling off",
            Form::B => "ping-pong (b): shared counter + eventfd always written, polling on",
            Form::C => {
                "ping-pong (c): shared counter, eventfd only when the receiver will block, polling on"
            }
            Form::D => {
                "ping-pong (d): socket pair, no poll callback, polling on (and off: -blocking)"
            }
        }
    }

    fn reference(self) -> &'static str {
        match self {
            Form::A | Form::D => RAW_EPOLL,
            Form::B | Form::C => SPIN,
        }
    }

    fn links(self) -> io::Result<[Link; 2]> {
        Ok(match self {
            Form::A => [
                Link::Eventfd(Arc::new(EventNotifier::new()?)),
                Link::Eventfd(Arc::new(EventNotifier::new()?)),
            ],
            Form::B | Form::C => {
                let suppress = self == Form::C;
                [
                    Link::Mailbox(Mailbox::new(suppress)?),
                    Link::Mailbox(Mailbox::new(suppress)?),
                ]
            }
            Form::D => {
                let (a, b) = sys::socketpair()?;
                let (a, b) = (Arc::new(a), Arc::new(b));
                [
                    Link::Socket {
                        rx: Arc::clone(&b),
                        tx: Arc::clone(&a),
                    },
                    Link::Socket { rx: a, tx: b },
                ]
            }
        })
    }
}

const AIO_LABELS: &[&str] = &[HOME_SLEEPS, BLOCKING, HITS];
const MAILBOX_LABELS: &[&str] = &[HOME_SLEEPS, BLOCKING, HITS, WRITES];
const PEER_LABELS: &[&str] = &[HOME_SLEEPS];

/// The name of a (d) variant with polling off.
fn blocking(monitor: Monitor) -> String {
    format!("{}-blocking", monitor.variant())
}

/// Polling with a window of up to 256 us: what forms (b) to (d) need on a
/// machine whose blocking round trip is longer than `IOTHREAD`'s 32.8 us.
const WIDE: PollParams = PollParams {
    max_ns: 262_144,
    ..PollParams::IOTHREAD
};

/// The name of a polling variant with [`WIDE`] polling.
fn wide(monitor: Monitor) -> String {
    format!("{}-max256us", monitor.variant())
}

/// Sets up the pairs of one form that the filter keeps.
fn pairs(env: &Env<'_>, form: Form) -> io::Result<Vec<Timed>> {
    let cpus = &env.cpus;
    let reference = form.reference();
    let wants = |name: &str| name == reference || env.wants(name);
    let mut pairs = Vec::new();
    if form != Form::D && wants(SPIN) {
        pairs.push(Timed::new(
            SPIN,
            PEER_LABELS,
            Box::new(SpinPair::new(cpus)?),
        ));
    }
    if form == Form::C && wants(SPIN_MAILBOX) {
        pairs.push(Timed::new(
            SPIN_MAILBOX,
            PEER_LABELS,
            Box::new(SpinMailboxPair::new(cpus)?),
        ));
    }
    if matches!(form, Form::A | Form::D) && wants(RAW_EPOLL) {
        let (fds, wire) = if form == Form::A {
            (RawFds::eventfds()?, EVENTFD_WIRE)
        } else {
            (RawFds::sockets()?, SOCKET_WIRE)
        };
        pairs.push(Timed::new(
            RAW_EPOLL,
            PEER_LABELS,
            Box::new(RawEpollPair::new(cpus, fds, wire)?),
        ));
    }
    let params = if form == Form::A {
        PollParams::OFF
    } else {
        PollParams::IOTHREAD
    };
    let labels = if matches!(form, Form::B | Form::C) {
        MAILBOX_LABELS
    } else {
        AIO_LABELS
    };
    for monitor in Monitor::ALL {
        if wants(monitor.variant()) {
            let pair = AioPair::new(cpus, monitor, params, form.links()?)?;
            pairs.push(Timed::new(monitor.variant(), labels, Box::new(pair)));
        }
    }
    if form == Form::D {
        for monitor in Monitor::ALL {
            if wants(&blocking(monitor)) {
                let pair = AioPair::new(cpus, monitor, PollParams::OFF, form.links()?)?;
                pairs.push(Timed::new(blocking(monitor), labels, Box::new(pair)));
            }
        }
    }
    if form != Form::A {
        for monitor in [Monitor::Epoll, Monitor::IoUring] {
            if wants(&wide(monitor)) {
                let pair = AioPair::new(cpus, monitor, WIDE, form.links()?)?;
                pairs.push(Timed::new(wide(monitor), labels, Box::new(pair)));
            }
        }
    }
    if form == Form::A {
        if wants("mio") {
            pairs.push(Timed::new(
                "mio",
                PEER_LABELS,
                Box::new(MioPair::new(cpus)?),
            ));
        }
        if wants("polling") {
            pairs.push(Timed::new(
                "polling",
                PEER_LABELS,
                Box::new(PollingPair::new(cpus)?),
            ));
        }
        if wants("tokio") {
            pairs.push(Timed::new(
                "tokio",
                PEER_LABELS,
                Box::new(TokioPair::new(cpus)?),
            ));
        }
        if wants("tokio-notify") {
            pairs.push(Timed::new(
                "tokio-notify",
                PEER_LABELS,
                Box::new(TokioNotifyPair::new(cpus)?),
            ));
        }
    }
    Ok(pairs)
}

/// Allocations of form (c) in steady state (both threads counted), under
/// `plan`.
pub(crate) fn steady_state(env: &Env<'_>, plan: &crate::measure::Plan) -> io::Result<Group> {
    let pairs = pairs(env, Form::C)?;
    let mut variants: Vec<Variant<'_>> = pairs.iter().map(Timed::variant).collect();
    let title = "steady state: ping-pong (c), both threads";
    let rows = env.measure_with(plan, title, &mut variants)?;
    drop(variants);
    Ok(Group::new(
        "allocations/ping-pong-c",
        title,
        "round trip",
        SPIN,
        rows,
        Vec::new(),
    ))
}

/// Runs the four forms.
///
/// # Errors
///
/// A pair could not be set up, or a partner thread failed.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("ping-pong", Form::ALL.len());
    let mut report = ScenarioReport {
        name: "ping-pong".to_owned(),
        about: ABOUT.to_owned(),
        ..ScenarioReport::default()
    };
    for form in Form::ALL {
        let pairs = pairs(env, form)?;
        let mut variants: Vec<Variant<'_>> = pairs.iter().map(Timed::variant).collect();
        let rows = env.measure(form.title(), &mut variants)?;
        drop(variants);
        drop(pairs);
        let group = Group::new(
            form.id(),
            form.title(),
            "round trip",
            form.reference(),
            rows,
            notes(form),
        );
        report.targets.extend(targets(form, &group));
        report.groups.push(group);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Cpus, Filter, Progress};
    use crate::measure::Plan;

    fn env<'a>(filter: &'a Filter, progress: &'a Progress) -> Env<'a> {
        Env {
            plan: Plan {
                warmup: Duration::ZERO,
                rounds: 2,
                ..Plan::QUICK
            },
            filter,
            cpus: Cpus::NONE,
            progress,
        }
    }

    #[test]
    fn every_pair_makes_round_trips() {
        let (filter, progress) = (Filter::default(), Progress::hidden());
        let env = env(&filter, &progress);
        for form in Form::ALL {
            for timed in pairs(&env, form).unwrap() {
                let elapsed = timed
                    .batch(20)
                    .unwrap_or_else(|e| panic!("{}: {e}", timed.name));
                assert!(elapsed > Duration::ZERO, "{}", timed.name);
            }
        }
    }

    #[test]
    fn suppressed_notifications_still_arrive() {
        // Form (c) on epoll: the sender skips writes while the receiver
        // polls; none may be lost, whatever the timing.
        let (filter, progress) = (Filter::new(&["aio-epoll"]), Progress::hidden());
        let env = env(&filter, &progress);
        for timed in pairs(&env, Form::C).unwrap() {
            timed.batch(2000).unwrap();
        }
    }

    #[test]
    fn the_reference_always_runs() {
        let (filter, progress) = (Filter::new(&["aio-poll"]), Progress::hidden());
        let env = env(&filter, &progress);
        let names: Vec<String> = pairs(&env, Form::A)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, [RAW_EPOLL, "aio-poll"]);
    }
}
