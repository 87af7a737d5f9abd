//! Registrations the kernel has a say in: fds epoll refuses, fds closed (or
//! their numbers reused) behind the context's back, hang-ups.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use aio_core::testing::{Count, SleepMonitor, assert_still_works, counting};
use aio_core::{AioContext, EventNotifier, FdMonitor, Interest, Registration, Token};
use fdmon_epoll::EpollMonitor;
use rustix::event::{EventfdFlags, eventfd};

fn context() -> AioContext {
    AioContext::with_monitor(Box::new(EpollMonitor::new().unwrap())).unwrap()
}

fn new_eventfd() -> OwnedFd {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap()
}

/// The context works, with nothing of the test registered.
fn assert_clean(ctx: &AioContext) {
    assert_eq!(ctx.handler_count(), 0, "nothing of the test is left");
    assert_still_works(ctx, None);
}

#[test]
fn regular_files_and_directories_are_refused_with_eperm() {
    let ctx = context();
    let file = File::open(std::env::current_exe().unwrap()).unwrap();
    let dir = File::open(std::env::temp_dir()).unwrap();
    for fd in [&file, &dir] {
        let err = ctx
            .set_fd_handler(fd, Some(counting(&Count::new())))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert_clean(&ctx);
    }
}

#[test]
fn removing_a_closed_fd_succeeds() {
    let ctx = context();
    let n = EventNotifier::new().unwrap();
    let fd = n.as_raw_fd();
    ctx.set_fd_handler(fd, Some(counting(&Count::new())))
        .unwrap();
    drop(n);
    ctx.set_fd_handler(fd, None).unwrap();
    assert_clean(&ctx);

    // Closed, and the number now names a file that epoll refuses.
    let mut fd = new_eventfd();
    ctx.set_fd_handler(&fd, Some(counting(&Count::new())))
        .unwrap();
    let file = File::open(std::env::current_exe().unwrap()).unwrap();
    rustix::io::dup2(&file, &mut fd).unwrap();
    ctx.set_fd_handler(&fd, None).unwrap();
    assert_clean(&ctx);
}

#[test]
fn a_reused_fd_number_can_be_re_registered_and_removed() {
    let ctx = context();
    let (old_hits, new_hits) = (Count::new(), Count::new());
    let mut fd = new_eventfd();
    ctx.set_fd_handler(&fd, Some(counting(&old_hits))).unwrap();
    // Closes the registered eventfd and gives its number to another one:
    // the kernel forgets the registration, the context does not.
    let other = new_eventfd();
    rustix::io::dup2(&other, &mut fd).unwrap();
    ctx.set_fd_handler(&fd, Some(counting(&new_hits))).unwrap();
    rustix::io::write(&other, &1u64.to_ne_bytes()).unwrap();
    assert!(ctx.poll(false).unwrap());
    assert_eq!((old_hits.get(), new_hits.get()), (0, 1));

    // The number moves on again, but `other` keeps its file open: epoll
    // keeps that registration (it is keyed by file and number) and goes on
    // reporting it under a token the context no longer honours.
    rustix::io::dup2(new_eventfd(), &mut fd).unwrap();
    ctx.set_fd_handler(&fd, None).unwrap();
    rustix::io::write(&other, &1u64.to_ne_bytes()).unwrap();
    assert!(!ctx.poll(false).unwrap(), "the stale event is dropped");
    assert_eq!(new_hits.get(), 1);
    rustix::io::read(&other, &mut [0u8; 8]).unwrap();
    assert_clean(&ctx);
}

#[test]
fn a_hung_up_pipe_is_dispatched_as_readable() {
    let ctx = context();
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let hits = Count::new();
    ctx.set_fd_handler(&reader, Some(counting(&hits))).unwrap();
    assert!(!ctx.poll(false).unwrap());
    drop(writer);
    assert!(ctx.poll(false).unwrap());
    assert_eq!(hits.get(), 1);
    ctx.set_fd_handler(&reader, None).unwrap();
}

/// epoll tracks files: it says which of its registrations still watch the
/// file their fd names, and which lost it (the number reused while a `dup`
/// keeps the old file open, or the fd closed).
#[test]
fn the_monitor_says_which_registrations_lost_their_file() {
    let mut epoll = EpollMonitor::new().unwrap();
    assert!(epoll.tracks_files());
    let watch = Registration {
        token: Token(1),
        interest: Interest::READABLE,
    };
    let mut fd = new_eventfd();
    epoll.update(fd.as_raw_fd(), None, Some(watch)).unwrap();
    assert!(epoll.watches_current_file(fd.as_raw_fd(), watch), "open");
    assert!(
        epoll.watches_current_file(fd.as_raw_fd(), watch),
        "asking changed nothing"
    );

    let kept = fd.try_clone().unwrap();
    rustix::io::dup2(new_eventfd(), &mut fd).unwrap();
    assert!(!epoll.watches_current_file(fd.as_raw_fd(), watch), "reused");

    // Closed: the number may be taken by another test's fd meanwhile,
    // which this epoll does not watch either.
    let number = fd.as_raw_fd();
    drop(fd);
    assert!(!epoll.watches_current_file(number, watch), "closed");
    drop(kept);
}

/// A move to a monitor that does not track files takes the identity of the
/// files that epoll tracked, so `stale_fds` still names the fd whose
/// number was reused before the move, and only that one.
#[test]
fn a_move_off_epoll_keeps_the_stale_fds() {
    let ctx = context();
    let (mut reused, _wr) = rustix::pipe::pipe().unwrap();
    let (kept, _wk) = rustix::pipe::pipe().unwrap();
    let (other, _wo) = rustix::pipe::pipe().unwrap();
    for fd in [reused.as_raw_fd(), kept.as_raw_fd()] {
        ctx.set_fd_handler(fd, Some(counting(&Count::new())))
            .unwrap();
    }
    rustix::io::dup2(&other, &mut reused).unwrap();
    assert_eq!(ctx.stale_fds(), [reused.as_raw_fd()], "on epoll");

    ctx.set_monitor(Box::new(SleepMonitor::new()), "a test")
        .unwrap();
    assert_eq!(ctx.stale_fds(), [reused.as_raw_fd()], "after the move");
    for fd in [reused.as_raw_fd(), kept.as_raw_fd()] {
        ctx.set_fd_handler(fd, None).unwrap();
    }
    assert_eq!(ctx.stale_fds(), []);
}
