//! What each form's table says beyond its rows: the notes under it, the
//! targets its aio rows are held to, and, for a target not met, why (the
//! initiator slept, or the loop's own cost per message).
//!
//! Separate from the entry point because it only reads finished tables.

use aio::PollParams;

use super::{Form, HITS, HOME_SLEEPS, RAW_EPOLL, SPIN, SPIN_MAILBOX, WRITES, blocking};
use crate::env::Monitor;
use crate::report::{Group, ScenarioReport, Target};

/// Form (c)'s target: the round trip within this many times the spin
/// floor (the bar; stretch: 1.3x)...
pub(super) const C_OVER_FLOOR: f64 = 2.0;
/// ...or within `spin-mailbox` plus this much of the loop's own work per
/// one-way message, where the mailbox protocol alone (a read-modify-write
/// and a fence per message, a cache line per direction, measured as
/// `spin-mailbox`) takes most of the first bar: on a machine whose CPUs
/// share a cache closely it is about 1.7x the floor by itself, leaving
/// the loop some 15 ns a message. 50 ns is about two clock readings here,
/// or one window round and the dispatch of a `poll_ready`.
pub(super) const C_LOOP_NS: f64 = 50.0;

/// What one blocking round trip costs on this machine (ping-pong (a)'s
/// hand-written epoll row: two wake-ups of a sleeping thread), and whether
/// `PollParams::IOTHREAD`'s ceiling is below it, in which case its poll
/// times cannot grow and only the `-max256us` rows show polling.
pub fn wake_up(report: &ScenarioReport) -> Option<String> {
    let a = report.groups.iter().find(|g| g.id == Form::A.id())?;
    let round_trip = a.row(RAW_EPOLL)?.median_ns;
    let ceiling = PollParams::IOTHREAD.max_ns as f64;
    let verdict = if ceiling < round_trip {
        "below it: IOTHREAD's poll times cannot grow here; the -max256us rows show polling"
    } else {
        "above it: IOTHREAD's poll times can grow here"
    };
    Some(format!(
        "One blocking round trip here (ping-pong (a), {RAW_EPOLL}): {:.1} us; \
         PollParams::IOTHREAD's max_ns ({:.1} us) is {verdict}",
        round_trip / 1e3,
        ceiling / 1e3
    ))
}

pub(super) fn notes(form: Form) -> Vec<String> {
    let mut notes = vec![format!(
        "counters per round trip, of the initiating thread; {HOME_SLEEPS}: its voluntary context switches"
    )];
    let polling = format!(
        "{WRITES}: both directions; polling on = PollParams::IOTHREAD (max 32768 ns, grow x2, reset); \
         -max256us rows: the same with max_ns = 262144"
    );
    match form {
        Form::A => notes.push(
            "polling uses level mode (no re-arm per event); mio and tokio are edge-triggered"
                .to_owned(),
        ),
        Form::B => notes.push(polling),
        Form::C => {
            notes.push(polling);
            notes.push(format!(
                "{SPIN_MAILBOX}: the same messages through the same mailboxes, both sides spinning on \
                 them without a loop: the protocol's own cost (a read-modify-write and a fence per \
                 message, a cache line per direction against the floor's one); what an aio row costs \
                 above it is the loop's"
            ));
        }
        Form::D => {
            notes.push(
                "the handlers have no poll callback: the busy-poll window peeks at the monitor (free on io_uring)"
                    .to_owned(),
            );
            notes.push(
                "a poll time grows only after a wait shorter than max_ns and resets after a longer one: \
                 where a blocking round trip (two wake-ups of an idle CPU) takes longer than 32.8 us, \
                 polling starts only when a wake-up happens to be fast and stops at the first hiccup; \
                 -max256us rows: the same with max_ns = 262144"
                    .to_owned(),
            );
        }
    }
    notes
}

/// Why a polling variant missed its target: it slept, or (when it did
/// not) the loop's own cost per message.
fn why(group: &Group, variant: &str, floor: Option<&str>) -> Option<String> {
    let row = group.row(variant)?;
    let sleeps = row.counter(HOME_SLEEPS)?;
    let hits = row.counter(HITS).unwrap_or(0.0);
    if sleeps >= 0.05 {
        return Some(format!(
            "the initiator still slept in {:.0}% of round trips ({hits:.2} poll hits per round trip)",
            sleeps.min(1.0) * 100.0
        ));
    }
    let floor = group.row(floor?)?;
    Some(format!(
        "no sleeps ({hits:.2} poll hits per round trip): the loop's own cost, {:.0} ns per one-way message above {}",
        (row.median_ns - floor.median_ns) / 2.0,
        floor.name
    ))
}

/// Form (c)'s bar, as a ratio to the spin floor: [`C_OVER_FLOOR`], or
/// `spin-mailbox` plus [`C_LOOP_NS`] per one-way message, whichever is
/// the looser on this machine; and its label.
fn c_bar(group: &Group) -> (f64, String) {
    let (Some(floor), Some(mailbox)) = (group.row(SPIN), group.row(SPIN_MAILBOX)) else {
        return (
            C_OVER_FLOOR,
            format!("<= {C_OVER_FLOOR:.2}x {SPIN} (stretch: 1.30x)"),
        );
    };
    let with_loop = (mailbox.median_ns + 2.0 * C_LOOP_NS) / floor.median_ns;
    let limit = C_OVER_FLOOR.max(with_loop);
    let label = format!(
        "<= {C_OVER_FLOOR:.2}x {SPIN} or <= {SPIN_MAILBOX} ({:.0} ns) + 2 x {C_LOOP_NS:.0} ns: {limit:.2}x",
        mailbox.median_ns
    );
    (limit, label)
}

pub(super) fn targets(form: Form, group: &Group) -> Vec<Target> {
    let id = form.id();
    let mut targets = Vec::new();
    let floor = [SPIN_MAILBOX, SPIN]
        .into_iter()
        .find(|name| group.row(name).is_some());
    let (c_limit, c_label) = c_bar(group);
    let with_note = |t: Target, variant: &str| match why(group, variant, floor) {
        Some(reason) => t.note_if_not_met(reason),
        None => t,
    };
    for monitor in Monitor::ALL {
        let v = monitor.variant();
        if group.row(v).is_none() {
            continue;
        }
        let t = match form {
            Form::A => Target::at_most(
                id,
                v,
                "<= 1.05x raw-epoll",
                group.ratio(v, RAW_EPOLL),
                1.05,
                "x",
            ),
            Form::B => Target::at_most(
                id,
                v,
                "<= 1000 ns",
                group.row(v).map(|r| r.median_ns),
                1000.0,
                "ns",
            ),
            Form::C => Target::at_most(id, v, c_label.clone(), group.ratio(v, SPIN), c_limit, "x"),
            Form::D => match monitor {
                Monitor::Epoll | Monitor::IoUring => Target::at_most(
                    id,
                    v,
                    format!("<= 0.12x {}", blocking(monitor)),
                    group.ratio(v, &blocking(monitor)),
                    0.12,
                    "x",
                ),
                _ => continue,
            },
        };
        targets.push(with_note(t, v));
    }
    if form == Form::D && group.row(Monitor::IoUring.variant()).is_some() {
        let v = Monitor::IoUring.variant();
        let t = Target::at_most(
            id,
            v,
            "<= 1.00x aio-epoll",
            group.ratio(v, Monitor::Epoll.variant()),
            1.0,
            "x",
        );
        targets.push(with_note(t, v));
    }
    targets
}
