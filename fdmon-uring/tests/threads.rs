//! The deferred modes bind the ring to the first thread that waits on it:
//! a monitor made on one thread serves a context on another.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use aio_core::{AioContext, EventNotifier, FdHandler, FdMonitor, Interest, Registration, Token};
use fdmon_uring::TaskRun;

#[test]
fn a_monitor_made_on_one_thread_serves_a_context_on_another() {
    for mode in TaskRun::ALL {
        let monitor = common::monitor(mode);
        std::thread::spawn(move || {
            let ctx = AioContext::with_monitor(Box::new(monitor)).unwrap();
            let n = EventNotifier::new().unwrap();
            ctx.set_fd_handler(&n, Some(FdHandler::new().on_read(|_| {})))
                .unwrap();
            n.set().unwrap();
            assert!(ctx.poll(true).unwrap(), "{mode:?}");
        })
        .join()
        .unwrap();
    }
}

/// Once bound, a deferred-mode ring refuses waits from another thread
/// (`EEXIST`) instead of misbehaving; the other modes do not mind.
#[test]
fn a_bound_ring_refuses_another_thread() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let n = EventNotifier::new().unwrap();
        let reg = Registration {
            token: Token(1),
            interest: Interest::READABLE,
        };
        m.update(n.as_raw_fd(), None, Some(reg)).unwrap();
        let mut events = Vec::new();
        m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        let result = std::thread::spawn(move || {
            let mut events = Vec::new();
            n.set().unwrap();
            // A long timeout: the wait returns as soon as the event is in
            // (under a sanitizer on a loaded machine that took over 1 ms).
            m.wait(&mut events, Some(Duration::from_secs(20)))
                .map(|()| events.len())
        })
        .join()
        .unwrap();
        match mode {
            TaskRun::Deferred | TaskRun::DeferredFlag => {
                assert_eq!(
                    result.unwrap_err().raw_os_error(),
                    Some(libc::EEXIST),
                    "{mode:?}"
                );
            }
            _ => assert_eq!(result.unwrap(), 1, "{mode:?}"),
        }
    }
}
