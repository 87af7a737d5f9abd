//! The paths that every monitor must serve without a heap allocation, as
//! functions a backend's test binary calls with its monitors. The binary
//! installs [`CountingAlloc`](super::CountingAlloc) as its global allocator;
//! the counts are per thread.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::{allocations_in, allocations_in_runs};
use crate::{
    AioContext, ContextBuilder, EventNotifier, FdHandler, FdMonitor, Interest, ManualClock,
    PollParams,
};

/// Non-blocking and blocking fd dispatch among 16 idle fds, a reused
/// bottom half, interest turned off and on, a handler added and removed
/// with a turn of the loop between (its callbacks capturing nothing that
/// allocates), a re-armed timer, a wait that times out, and a
/// bottom half scheduled through [`RemoteBh`](crate::RemoteBh): none
/// allocates.
///
/// # Panics
///
/// When a path allocates (or the context cannot be built on `monitor`).
pub fn assert_iterations_do_not_allocate(monitor: Box<dyn FdMonitor>) {
    let ctx = AioContext::with_monitor(monitor).expect("a context on the monitor under test");
    let name = ctx.backend().name;
    let idle: Vec<EventNotifier> = (0..16).map(|_| EventNotifier::new().unwrap()).collect();
    for n in &idle {
        ctx.set_fd_handler(n, Some(FdHandler::new().on_read(|_| {})))
            .unwrap();
    }
    let active = Rc::new(EventNotifier::new().unwrap());
    let a = Rc::clone(&active);
    let drain = FdHandler::new().on_read(move |_| {
        a.test_and_clear().unwrap();
    });
    ctx.set_fd_handler(&*active, Some(drain)).unwrap();

    for blocking in [false, true] {
        let fd_dispatch = allocations_in(|| {
            active.set().unwrap();
            assert!(ctx.poll(blocking).unwrap());
        });
        assert_eq!(
            fd_dispatch, 0,
            "{name}: fd dispatch (blocking: {blocking}) allocated"
        );
    }

    let toggled = allocations_in(|| {
        ctx.set_fd_interest(&*active, Interest::NONE).unwrap();
        ctx.set_fd_interest(&*active, Interest::READABLE).unwrap();
        active.set().unwrap();
        assert!(ctx.poll(false).unwrap());
    });
    assert_eq!(toggled, 0, "{name}: turning interest off and on allocated");

    // A turn of the loop in each round, as a running loop has: io_uring
    // queues registrations for its next wait, and that queue would grow.
    let churned = EventNotifier::new().unwrap();
    let churn = allocations_in(|| {
        ctx.set_fd_handler(&churned, Some(FdHandler::new().on_read(|_| {})))
            .unwrap();
        ctx.poll(false).unwrap();
        ctx.set_fd_handler(&churned, None).unwrap();
    });
    assert_eq!(churn, 0, "{name}: adding and removing a handler allocated");

    let bh = ctx.bh(|_| {});
    let bottom_half = allocations_in(|| {
        bh.schedule();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(bottom_half, 0, "{name}: a reused bottom half allocated");

    let timer = ctx.timer(|_| {});
    let rearmed = allocations_in(|| {
        timer.arm_in(Duration::ZERO);
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(rearmed, 0, "{name}: re-arming a timer allocated");
    let timed_out = allocations_in_runs(100, || {
        timer.arm_in(Duration::from_micros(20));
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(timed_out, 0, "{name}: a wait that timed out allocated");

    let remote_bh = bh.remote();
    let remote = allocations_in(|| {
        remote_bh.schedule().unwrap();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(
        remote, 0,
        "{name}: a bottom half scheduled through RemoteBh allocated"
    );
}

/// Busy polling with `PollParams::IOTHREAD`: a handler whose `poll` finds
/// work every iteration is served by polling (no blocking wait), and a
/// plain handler without a `poll` callback is served through the window's
/// peeks at the monitor; neither allocates.
///
/// The context runs on a manual clock, so that a slow iteration (a loaded
/// machine, a sanitizer) cannot reset a poll time and leave the loop
/// waiting for work that only a `poll` callback can see.
///
/// # Panics
///
/// When a path allocates or is not served as described.
pub fn assert_busy_polling_does_not_allocate(monitor: Box<dyn FdMonitor>) {
    let clock = ManualClock::new();
    clock.auto_advance(Duration::from_nanos(100));
    let ctx = ContextBuilder::new(monitor)
        .clock(clock)
        .poll_params(PollParams::IOTHREAD)
        .build()
        .expect("a context on the monitor under test");
    let name = ctx.backend().name;
    let kick = Rc::new(EventNotifier::new().unwrap());
    let work = Rc::new(Cell::new(false));
    let (k, w, check) = (Rc::clone(&kick), Rc::clone(&work), Rc::clone(&work));
    let device = FdHandler::new()
        .on_read(move |_| {
            k.test_and_clear().unwrap();
        })
        .on_poll(move || check.get(), move |_| w.set(false))
        .on_poll_begin(|| {})
        .on_poll_end(|| {});
    ctx.set_fd_handler(&*kick, Some(device)).unwrap();
    kick.set().unwrap();
    ctx.poll(true).unwrap(); // on the polled list from now on

    let before = ctx.stats();
    let polled = allocations_in(|| {
        work.set(true);
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(polled, 0, "{name}: busy polling allocated");
    let after = ctx.stats();
    assert_eq!(
        after.blocking_waits, before.blocking_waits,
        "{name}: served by polling: {after:?}"
    );
    assert_eq!(
        after.poll_hits - before.poll_hits,
        1100,
        "{name}: {after:?}"
    );

    let plain = Rc::new(EventNotifier::new().unwrap());
    let p = Rc::clone(&plain);
    let reader = FdHandler::new().on_read(move |_| {
        p.test_and_clear().unwrap();
    });
    ctx.set_fd_handler(&*plain, Some(reader)).unwrap();
    plain.set().unwrap();
    ctx.poll(true).unwrap(); // on the polled list too
    let plain_polled = allocations_in(|| {
        plain.set().unwrap();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(plain_polled, 0, "{name}: serving a plain fd allocated");
}

/// A read and a write of a reused buffer, each completed through its
/// callback, on a context from `make` (whose operations take the path under
/// test): once warm, neither allocates (the slot and the operation's box
/// are reused; the buffer is the caller's).
///
/// # Panics
///
/// When an operation allocates, or fails.
pub fn assert_operations_do_not_allocate(ctx: &AioContext) {
    use std::cell::RefCell;
    let engine = ctx.op_engine(crate::OpKind::Read).unwrap_or("none");
    let path = std::env::temp_dir().join(format!("aio-ops-alloc-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("a temporary file");
    std::fs::remove_file(&path).expect("unlink the temporary file");
    let slot = Rc::new(RefCell::new(Some(vec![7u8; 4096])));
    let done = Rc::new(Cell::new(false));
    let round = || {
        let buf = slot.borrow_mut().take().expect("the buffer came back");
        let (s, d) = (Rc::clone(&slot), Rc::clone(&done));
        ctx.write_at(&file, buf, 0, move |_, n, buf| {
            assert_eq!(n.expect("the write"), 4096);
            *s.borrow_mut() = Some(buf);
            d.set(true);
        });
        done.set(false);
        ctx.run_until(|| done.get()).expect("the write's iteration");
        let buf = slot.borrow_mut().take().expect("the buffer came back");
        let (s, d) = (Rc::clone(&slot), Rc::clone(&done));
        ctx.read_at(&file, buf, 0, move |_, n, buf| {
            assert_eq!(n.expect("the read"), 4096);
            *s.borrow_mut() = Some(buf);
            d.set(true);
        });
        done.set(false);
        ctx.run_until(|| done.get()).expect("the read's iteration");
    };
    let allocated = allocations_in_runs(100, round);
    assert_eq!(
        allocated, 0,
        "{engine}: a read and a write of a reused buffer allocated"
    );
}

/// A receive posted before its data (so that it waits: in the kernel on a
/// ring, in `poll` on a pool's worker) and a send that answers it, over a
/// Unix socket pair, with reused buffers: once warm, neither allocates.
///
/// # Panics
///
/// When an operation allocates, or fails.
pub fn assert_socket_operations_do_not_allocate(ctx: &AioContext) {
    use std::cell::RefCell;
    let engine = ctx.op_engine(crate::OpKind::Recv).unwrap_or("none");
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    let out = Rc::new(RefCell::new(Some(vec![9u8; 512])));
    let into = Rc::new(RefCell::new(Some(Vec::with_capacity(512))));
    let (sent, received) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let round = || {
        let buf = into
            .borrow_mut()
            .take()
            .expect("the receive's buffer came back");
        let (i, r) = (Rc::clone(&into), Rc::clone(&received));
        received.set(false);
        ctx.recv(&b, buf, move |_, n, buf| {
            assert_eq!(n.expect("the receive"), 512);
            *i.borrow_mut() = Some(buf);
            r.set(true);
        });
        ctx.submit_now().expect("the receive to the kernel");
        let buf = out
            .borrow_mut()
            .take()
            .expect("the send's buffer came back");
        let (o, s) = (Rc::clone(&out), Rc::clone(&sent));
        sent.set(false);
        ctx.send(&a, buf, move |_, n, buf| {
            assert_eq!(n.expect("the send"), 512);
            *o.borrow_mut() = Some(buf);
            s.set(true);
        });
        ctx.run_until(|| sent.get() && received.get())
            .expect("the send's and the receive's iterations");
    };
    let allocated = allocations_in_runs(100, round);
    assert_eq!(
        allocated, 0,
        "{engine}: a receive and a send of reused buffers allocated"
    );
}
