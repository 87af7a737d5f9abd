//! The epoll mirror behind the poll monitor's loop fd follows the kernel's
//! rules as the epoll monitor does: removing an fd closed behind the
//! context's back succeeds, also when its number now names a file epoll
//! refuses (`EPERM`), and a number reused by another file can be
//! registered again (`ENOENT` on modify); the loop fd then wakes for the
//! new file.

use std::cell::Cell;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use aio_core::{AioContext, FdHandler};
use fdmon_poll::PollMonitor;
use rustix::event::{EventfdFlags, PollFd, PollFlags, eventfd, poll};

/// A context on poll whose loop fd (the mirror) was asked for.
fn mirrored() -> (AioContext, OwnedFd) {
    let ctx = AioContext::with_monitor(Box::new(PollMonitor::new())).unwrap();
    let loop_fd = ctx.loop_fd().expect("the poll monitor's mirror");
    (ctx, loop_fd)
}

fn new_eventfd() -> OwnedFd {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap()
}

fn counting(hits: &Rc<Cell<u32>>) -> Option<FdHandler> {
    let hits = Rc::clone(hits);
    Some(FdHandler::new().on_read(move |_| hits.set(hits.get() + 1)))
}

/// Whether `fd` is readable now.
fn readable(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    poll(&mut fds, Some(&rustix::time::Timespec::default())).unwrap() == 1
}

#[test]
fn removing_a_closed_fd_whose_number_names_a_file_epoll_refuses_succeeds() {
    let (ctx, loop_fd) = mirrored();
    let mut fd = new_eventfd();
    ctx.set_fd_handler(&fd, counting(&Rc::default())).unwrap();
    let file = File::open(std::env::current_exe().unwrap()).unwrap();
    rustix::io::dup2(&file, &mut fd).unwrap();
    ctx.set_fd_handler(&fd, None)
        .expect("EPERM from the mirror means the kernel already forgot the fd");
    assert_eq!(ctx.handler_count(), 0);
    assert!(!readable(&loop_fd));
}

#[test]
fn a_reused_fd_number_can_be_registered_again_and_wakes_the_loop_fd() {
    let (ctx, loop_fd) = mirrored();
    let (old_hits, new_hits) = (Rc::default(), Rc::default());
    let mut fd = new_eventfd();
    ctx.set_fd_handler(&fd, counting(&old_hits)).unwrap();
    // Closes the registered eventfd and gives its number to another one
    // that nothing else keeps open: epoll forgets the registration.
    rustix::io::dup2(new_eventfd(), &mut fd).unwrap();
    ctx.set_fd_handler(&fd, counting(&new_hits))
        .expect("ENOENT from the mirror's modify means: add it again");
    assert!(!readable(&loop_fd));
    rustix::io::write(&fd, &1u64.to_ne_bytes()).unwrap();
    assert!(readable(&loop_fd), "the mirror watches the new file");
    assert!(ctx.poll(false).unwrap());
    assert_eq!((old_hits.get(), new_hits.get()), (0, 1));
    ctx.set_fd_handler(&fd, None).unwrap();
}
