//! Ten thousand idle fds and one ready one: the ready one is served, the
//! idle ones are not, on both wait paths.

use std::cell::Cell;
use std::rc::Rc;

use aio_core::{AioContext, EventNotifier, FdHandler};
use fdmon_epoll::EpollMonitor;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

const IDLE: usize = 10_000;

/// Raises the soft fd limit to the hard one; fails if that is too low for
/// `needed` fds.
fn allow_fds(needed: u64) {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test needs {needed} fds; the hard RLIMIT_NOFILE is {hard}: raise it (ulimit -Hn)"
    );
    if limit.current.is_some_and(|soft| soft < needed) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .expect("raising the soft RLIMIT_NOFILE to the hard limit");
    }
}

#[test]
fn one_ready_fd_among_ten_thousand_idle_ones() {
    allow_fds(IDLE as u64 + 100);
    for fallback in [false, true] {
        let path = if fallback {
            "ppoll fallback"
        } else {
            "epoll_pwait2"
        };
        let mut monitor = EpollMonitor::new().unwrap();
        if fallback {
            monitor = monitor.force_ppoll_fallback();
        }
        let ctx = AioContext::with_monitor(Box::new(monitor)).unwrap();
        let idle_hits = Rc::new(Cell::new(0));
        let idle: Vec<EventNotifier> = (0..IDLE).map(|_| EventNotifier::new().unwrap()).collect();
        for n in &idle {
            let hits = Rc::clone(&idle_hits);
            let handler = FdHandler::new().on_read(move |_| hits.set(hits.get() + 1));
            ctx.set_fd_handler(n, Some(handler)).unwrap();
        }
        let active = Rc::new(EventNotifier::new().unwrap());
        let served = Rc::new(Cell::new(0));
        let (a, s) = (Rc::clone(&active), Rc::clone(&served));
        let handler = FdHandler::new().on_read(move |_| {
            assert!(a.test_and_clear().unwrap());
            s.set(s.get() + 1);
        });
        ctx.set_fd_handler(&*active, Some(handler)).unwrap();
        assert_eq!(ctx.handler_count(), IDLE + 1);

        assert!(!ctx.poll(false).unwrap(), "{path}: nothing is ready yet");
        for round in 1..=3 {
            active.set().unwrap();
            assert!(ctx.poll(true).unwrap(), "{path}");
            assert_eq!(served.get(), round, "{path}");
        }
        assert_eq!(idle_hits.get(), 0, "{path}: an idle fd was dispatched");
        drop(ctx);
    }
}
