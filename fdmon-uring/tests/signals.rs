//! A signal that interrupts a blocking wait (`EINTR`) is not an error, and
//! the wait goes on for the time that remains.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aio_core::FdMonitor;
use aio_core::testing::{ThreadProbe, Watchdog};
use fdmon_uring::TaskRun;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// Installs `on_signal` for SIGUSR1, without `SA_RESTART`, so that a
/// blocked system call returns `EINTR`.
fn install_handler() {
    // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no
    // flags); we fill in the handler, a function that only touches an
    // atomic, which is async-signal-safe.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: `action` is fully initialised and outlives the call; a null
    // old-action pointer is allowed.
    let rc = unsafe { libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_signal_does_not_end_a_blocking_wait() {
    install_handler();
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    for mode in TaskRun::ALL {
        let _watchdog = Watchdog::arm(
            format!("{mode:?}: three signals into a blocking wait"),
            Duration::from_secs(20),
        );
        let mut m = common::monitor(mode);
        let mut events = Vec::new();
        let before = SIGNALS.load(Ordering::Relaxed);
        let waiter = ThreadProbe::current();
        let sender = std::thread::spawn(move || {
            for _ in 0..3 {
                waiter.wait_until_blocked(); // in the wait
                let sent = SIGNALS.load(Ordering::SeqCst);
                // SAFETY: `me` is the test thread, which is alive: it joins
                // this thread before it returns.
                let rc = unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
                assert_eq!(rc, 0);
                // Signals of one kind pending together are delivered once:
                // send the next only after this one was handled.
                while SIGNALS.load(Ordering::SeqCst) == sent {
                    std::thread::yield_now();
                }
            }
        });
        let start = Instant::now();
        m.wait(&mut events, Some(Duration::from_millis(60)))
            .unwrap();
        let waited = start.elapsed();
        sender.join().unwrap();
        assert!(
            SIGNALS.load(Ordering::Relaxed) - before >= 3,
            "{mode:?}: the signals arrived"
        );
        assert!(waited >= Duration::from_millis(60), "{mode:?}: {waited:?}");
        assert!(waited < Duration::from_secs(5), "{mode:?}: {waited:?}");
        assert!(events.is_empty());
    }
}
