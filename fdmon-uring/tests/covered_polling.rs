//! A sender that writes an eventfd for every message while the receiver's
//! `poll` callback serves the messages (a virtio queue and its ioeventfd,
//! polled): the eventfd stays readable, and the ring would report it, and
//! be re-armed, for every message. The loop leaves both for the fd check
//! (at most 50 us after the last wait), as it leaves epoll unasked, so the
//! messages cost no `io_uring_enter`. Counted on a manual clock that
//! only a blocking wait moves, so the check never falls due inside the
//! loop.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{TestMonitor, Watchdog};
use aio_core::{ContextBuilder, EventNotifier, FdHandler, FdMonitor, ManualClock, PollParams};
use fdmon_uring::TaskRun;

#[test]
fn polled_messages_on_a_written_eventfd_cost_no_enter() {
    for mode in TaskRun::ALL {
        let clock = ManualClock::new();
        // A blocking wait takes a microsecond of this clock (so that the
        // poll time grows after one); nothing else moves it.
        let (c, enters) = (clock.clone(), Rc::new(Cell::new(0u64)));
        let e = Rc::clone(&enters);
        let monitor =
            TestMonitor::new(common::monitor(mode)).on_wait(move |inner, events, timeout| {
                if timeout != Some(Duration::ZERO) {
                    c.advance(Duration::from_micros(1));
                }
                let result = inner.wait(events, timeout);
                e.set(inner.enters());
                result
            });
        let ctx = ContextBuilder::new(Box::new(monitor))
            .clock(clock.clone())
            .poll_params(PollParams::IOTHREAD)
            .build()
            .unwrap();
        let kick = Rc::new(EventNotifier::new().unwrap());
        let (sent, served, reads) = (
            Rc::new(Cell::new(0u32)),
            Rc::new(Cell::new(0u32)),
            Rc::new(Cell::new(0u32)),
        );
        let (k, r, s1, s2, d1, d2) = (
            Rc::clone(&kick),
            Rc::clone(&reads),
            Rc::clone(&sent),
            Rc::clone(&sent),
            Rc::clone(&served),
            Rc::clone(&served),
        );
        let serve = move || d2.set(s2.get());
        let serve2 = serve.clone();
        let handler = FdHandler::new()
            .on_read(move |_| {
                k.test_and_clear().unwrap();
                r.set(r.get() + 1);
                serve();
            })
            .on_poll(move || s1.get() > d1.get(), move |_| serve2());
        ctx.set_fd_handler(&*kick, Some(handler)).unwrap();
        let _watchdog = Watchdog::arm(
            "each polled message to be found by the window",
            Duration::from_secs(60),
        );
        kick.set().unwrap();
        while reads.get() == 0 {
            ctx.poll(false).unwrap(); // served through the fd: polled from now on
        }
        // Served through the fd after a wait shorter than max_ns (no time
        // passes on this clock): its poll time grows, so blocking passes
        // have a window.
        sent.set(sent.get() + 1);
        kick.set().unwrap();
        while reads.get() == 1 {
            ctx.poll(true).unwrap();
        }
        assert!(ctx.poll_time(&*kick).is_some_and(|t| t > Duration::ZERO));

        let before = enters.get();
        for i in 1..=100 {
            sent.set(sent.get() + 1);
            kick.set().unwrap();
            ctx.poll(true).unwrap();
            assert_eq!(
                served.get(),
                sent.get(),
                "{mode:?}: message {i} served at once"
            );
        }
        let entered = enters.get() - before;
        // The modes that cannot show readiness in user space answer
        // "unknown", as epoll does: the same rule, from the start.
        assert!(
            entered <= 1,
            "{mode:?}: {entered} enters for 100 polled messages"
        );
        assert_eq!(
            reads.get(),
            2,
            "{mode:?}: the eventfd waits for the fd check"
        );

        clock.advance(Duration::from_micros(100));
        ctx.poll(false).unwrap();
        assert_eq!(reads.get(), 3, "{mode:?}: the fd check reports the eventfd");
    }
}
