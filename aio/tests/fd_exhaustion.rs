//! Running out of file descriptors while a notifier, a monitor or a
//! context is created: an error (`EMFILE`), never a panic, and nothing half
//! made is leaked. A binary of its own, with one test, because it lowers
//! the process's fd limit and then uses up every fd below it.

use std::io;
use std::os::fd::OwnedFd;

use aio_core::{AioContext, EventNotifier, FdMonitor, NotifierKind};

/// Lowers the soft `RLIMIT_NOFILE` for the test, and restores it on drop.
struct Limit {
    old: libc::rlimit,
}

impl Limit {
    fn lower_to(soft: libc::rlim_t) -> Limit {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into `old`, a live local.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
        let new = libc::rlimit {
            rlim_cur: soft.min(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from `new`, a live local.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
        Limit { old }
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        // SAFETY: as above; restores what getrlimit returned.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.old) };
    }
}

/// Opens eventfds until the process is out of fds.
fn use_up_fds() -> Vec<OwnedFd> {
    let mut held = Vec::new();
    loop {
        match rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC) {
            Ok(fd) => held.push(fd),
            Err(e) if e == rustix::io::Errno::MFILE => return held,
            Err(e) => panic!("unexpected error while using up fds: {e}"),
        }
        assert!(held.len() < 100_000, "the fd limit did not hold");
    }
}

/// How many fds can be opened now (all closed again).
fn free_fds() -> usize {
    use_up_fds().len()
}

type Make = fn() -> io::Result<Box<dyn std::any::Any>>;

fn context_on(monitor: io::Result<Box<dyn FdMonitor>>) -> io::Result<Box<dyn std::any::Any>> {
    let ctx = AioContext::with_monitor(monitor?)?;
    assert!(!ctx.poll(false)?, "a context made with few fds works");
    Ok(Box::new(ctx))
}

const MAKERS: [(&str, Make); 7] = [
    ("eventfd notifier", || {
        Ok(Box::new(EventNotifier::with_kind(NotifierKind::Eventfd)?))
    }),
    ("pipe notifier", || {
        Ok(Box::new(EventNotifier::with_kind(NotifierKind::Pipe)?))
    }),
    ("epoll monitor", || {
        Ok(Box::new(fdmon_epoll::EpollMonitor::new()?))
    }),
    ("io_uring monitor", || {
        Ok(Box::new(fdmon_uring::UringMonitor::new()?))
    }),
    ("context on poll", || {
        context_on(Ok(Box::new(fdmon_poll::PollMonitor::new())))
    }),
    ("context on epoll", || {
        context_on(fdmon_epoll::EpollMonitor::new().map(|m| Box::new(m) as _))
    }),
    ("context on io_uring", || {
        context_on(fdmon_uring::UringMonitor::new().map(|m| Box::new(m) as _))
    }),
];

#[test]
fn out_of_fds_is_an_error_and_leaks_nothing() {
    let _limit = Limit::lower_to(256);
    let mut fillers = use_up_fds();
    for spare in 0..4 {
        // Leave exactly `spare` fds free.
        let mut restore = Vec::new();
        for _ in 0..spare {
            restore.push(fillers.pop().expect("enough fillers"));
        }
        drop(restore);
        assert_eq!(free_fds(), spare);
        for (what, make) in MAKERS {
            match make() {
                Ok(made) => drop(made),
                Err(e) => {
                    // The io_uring setup may be refused for memory rather
                    // than fds; anything else must say what ran out.
                    let errno = e.raw_os_error();
                    assert!(
                        matches!(errno, Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)),
                        "{what} with {spare} free fds: unexpected error {e}"
                    );
                    if spare == 0 {
                        assert_eq!(errno, Some(libc::EMFILE), "{what}: {e}");
                    }
                }
            }
            assert_eq!(free_fds(), spare, "{what} leaked an fd ({spare} free)");
        }
        fillers.extend(use_up_fds());
    }
    // Nothing could be made without an fd; with enough, everything is.
    drop(fillers);
    for (what, make) in MAKERS {
        if let Err(e) = make() {
            panic!("{what} failed with fds to spare: {e}");
        }
    }
}
