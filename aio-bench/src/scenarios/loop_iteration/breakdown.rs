//! One iteration taken apart, on the epoll monitor: what each part of a
//! pass costs, as the difference between rows measured side by side.
//!
//! * `clock-read`: one `Instant::now()`, what the loop pays per reading;
//! * `empty`: `poll(false)` with nothing to do and polling off, the fixed
//!   cost of a pass (nesting, the ready list, the dispatch phase's checks:
//!   bottom halves, operations, deferred frees, timers, the counters);
//! * `oneshot`: `schedule_oneshot` + `poll(false)`: `empty` plus a boxed
//!   closure queued and run;
//! * `timer-armed`: `poll(false)` with a timer armed far out: `empty` plus
//!   the timer check (a clock reading and the nearest deadline);
//! * `hit-at-once`: `poll(true)` with polling on and a polled handler
//!   whose `poll` callback always has work: one round of `poll`
//!   callbacks, the `poll_ready` dispatch, no clock reading (four passes in
//!   five);
//! * `hit-in-window`: the same with a callback that has work every other
//!   call, so each pass misses its first round and finds the work in the
//!   busy-poll window: `hit-at-once` plus a clock reading, the timeout
//!   and the window's bookkeeping.

use std::cell::Cell;
use std::hint::black_box;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aio::prelude::*;

use crate::env::{Env, Monitor};
use crate::measure::Variant;
use crate::report::Group;
use crate::scenarios::check_done;

/// The reference row: an empty pass.
pub(super) const EMPTY: &str = "empty";

/// A context on epoll whose one handler is a device that always has a
/// request queued, which its `poll` callback sees on every `every`-th call;
/// and how many requests it served. Out of poll mode the device notifies:
/// its eventfd stays readable while requests are queued, and the read
/// callback serves one. So no pass can block for good, also when a pass
/// that stalls past `max_ns` on a loaded machine resets the poll time and
/// the loop leaves poll mode.
fn polled(every: u64) -> io::Result<(AioContext, Rc<EventNotifier>, Rc<Cell<u64>>)> {
    let ctx = Monitor::Epoll.context(PollParams::IOTHREAD)?;
    let kick = Rc::new(EventNotifier::new()?);
    let (calls, served) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let polling = Rc::new(Cell::new(false));
    let (by_fd, by_poll) = (Rc::clone(&served), Rc::clone(&served));
    let (k, again) = (Rc::clone(&kick), Rc::clone(&kick));
    let (p_read, p_begin, p_end) = (Rc::clone(&polling), Rc::clone(&polling), polling);
    let handler = FdHandler::new()
        .on_read(move |_| {
            if k.test_and_clear().unwrap_or(false) {
                by_fd.set(by_fd.get() + 1);
                if !p_read.get() {
                    let _ = k.set(); // the next request, notified
                }
            }
        })
        .on_poll(
            move || {
                calls.set(calls.get() + 1);
                calls.get().is_multiple_of(every)
            },
            move |_| by_poll.set(by_poll.get() + 1),
        )
        .on_poll_begin(move || p_begin.set(true))
        .on_poll_end(move || {
            p_end.set(false);
            let _ = again.set();
        });
    ctx.set_fd_handler(&*kick, Some(handler))?;
    kick.set()?;
    for _ in 0..1000 {
        ctx.poll(true)?;
    }
    Ok((ctx, kick, served))
}

/// Measures the rows.
///
/// # Errors
///
/// A context could not be built, or a batch did not do its work.
pub(super) fn run(env: &Env<'_>) -> io::Result<Group> {
    let empty = Monitor::Epoll.context(PollParams::OFF)?;
    let oneshot = Monitor::Epoll.context(PollParams::OFF)?;
    let ran = Rc::new(Cell::new(0u64));
    let timed = Monitor::Epoll.context(PollParams::OFF)?;
    let far = timed.timer(|_| {});
    far.arm_in(Duration::from_secs(3600));
    let (at_once, _kick1, served1) = polled(1)?;
    let (in_window, _kick2, served2) = polled(2)?;
    let mut variants = vec![
        Variant::new("clock-read", |n| {
            for _ in 0..n {
                black_box(Instant::now());
            }
            Ok(())
        }),
        Variant::new(EMPTY, |n| {
            for _ in 0..n {
                empty.poll(false)?;
            }
            Ok(())
        }),
        Variant::new("oneshot", |n| {
            let before = ran.get();
            for _ in 0..n {
                let r = Rc::clone(&ran);
                oneshot.schedule_oneshot(move |_| r.set(r.get() + 1));
                oneshot.poll(false)?;
            }
            check_done("oneshot", n, ran.get() - before)
        }),
        Variant::new("timer-armed", |n| {
            for _ in 0..n {
                timed.poll(false)?;
            }
            Ok(())
        }),
        Variant::new("hit-at-once", |n| {
            let before = served1.get();
            for _ in 0..n {
                at_once.poll(true)?;
            }
            check_done("hit-at-once", n, served1.get() - before)
        }),
        Variant::new("hit-in-window", |n| {
            let before = served2.get();
            for _ in 0..n {
                in_window.poll(true)?;
            }
            check_done("hit-in-window", n, served2.get() - before)
        }),
    ];
    let title = "one iteration taken apart (epoll)";
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    let mut group = Group::new(
        "loop-iteration/breakdown",
        title,
        "ns per pass",
        EMPTY,
        rows,
        vec![
            "empty: poll(false), nothing to do, polling off: the fixed cost of a pass".to_owned(),
            "oneshot - empty: a bottom half; timer-armed - empty: the timer check".to_owned(),
            "hit-at-once: a polled handler with work at once (no clock reading in four passes of five); \
             hit-in-window - hit-at-once: the clock reading, the timeout and the window's bookkeeping"
                .to_owned(),
        ],
    );
    let median = |name: &str| group.row(name).map(|r| r.median_ns);
    if let (Some(clock), Some(at_once), Some(in_window)) = (
        median("clock-read"),
        median("hit-at-once"),
        median("hit-in-window"),
    ) {
        group.notes.push(format!(
            "here: a clock reading {clock:.0} ns; a hit through the window costs {:.0} ns more than one at once",
            in_window - at_once
        ));
    }
    Ok(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_polled_rows_serve_one_request_per_pass() {
        for every in [1, 2] {
            let (ctx, _kick, served) = polled(every).unwrap();
            let before = served.get();
            for _ in 0..50 {
                assert!(ctx.poll(true).unwrap());
            }
            assert_eq!(served.get() - before, 50, "work every {every} calls");
        }
    }
}
