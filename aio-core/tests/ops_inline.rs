//! The operations API on an engine that carries requests out at once and
//! is told to misbehave as kernels may: every transfer cut short, every
//! third request answered `EAGAIN`, every other push refused for the
//! moment (`ENOMEM`, `EBUSY`, as a ring's submit may be). Each operation
//! still completes exactly once with the right byte count and data (the
//! core resubmits the rest).
//! (The cases that block on a pipe need a real engine: the ring's and the
//! pool's tests run them.)

use aio_core::testing::{InlineEngine, OpsHarness, SleepMonitor, suite};
use aio_core::{ContextBuilder, OpKind};

/// A harness whose contexts carry their operations out on `engine()`.
fn harness(engine: impl Fn() -> InlineEngine + Copy + 'static) -> OpsHarness {
    OpsHarness::new("inline, misbehaving", move || {
        ContextBuilder::new(Box::new(SleepMonitor::new()))
            .ops_fallback(move |_| Box::new(engine()))
            .build()
    })
}

#[test]
fn short_transfers_and_eagain_are_resubmitted() {
    let h = harness(|| InlineEngine::new().short_transfers(1000).eagain_every(3));
    suite::ops::written_data_reads_back_equal(&h);
    suite::ops::reads_stop_at_the_end_and_bad_fds_fail(&h);
    suite::ops::vectored_reads_and_writes_round_trip(&h);
    suite::ops::thousands_in_flight_complete_once_each(&h);
}

/// An engine that refuses pushes for the moment (a ring whose full
/// submission queue the kernel would not take): every operation is sent
/// again, and completes once with its bytes.
#[test]
fn pushes_refused_for_the_moment_are_sent_again() {
    for errno in [libc::ENOMEM, libc::EBUSY, libc::EAGAIN] {
        let h = harness(move || {
            InlineEngine::new()
                .short_transfers(1000)
                .refuse_every(2, errno)
        });
        suite::ops::written_data_reads_back_equal(&h);
        suite::ops::vectored_reads_and_writes_round_trip(&h);
        suite::ops::thousands_in_flight_complete_once_each(&h);
    }
}

#[test]
fn a_context_without_an_engine_completes_operations_with_eopnotsupp() {
    let ctx = aio_core::AioContext::with_monitor(Box::new(SleepMonitor::new())).unwrap();
    assert_eq!(ctx.op_engine(OpKind::Read), None);
    let got = std::rc::Rc::new(std::cell::RefCell::new(None));
    let g = std::rc::Rc::clone(&got);
    ctx.read_at(0, vec![0u8; 4], 0, move |_, n, buf| {
        *g.borrow_mut() = Some((n.unwrap_err().raw_os_error(), buf.capacity()));
    });
    ctx.run_until(|| got.borrow().is_some()).unwrap();
    assert_eq!(
        *got.borrow(),
        Some((Some(libc::EOPNOTSUPP), 4)),
        "the buffer came back"
    );
}

#[test]
fn a_cancelled_transfer_is_not_resubmitted_after_a_short_part() {
    // Every transfer is cut to one byte: the read of eight takes eight
    // requests unless the cancellation stops it after the first.
    let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
        .ops_fallback(|_| Box::new(InlineEngine::new().short_transfers(1)))
        .build()
        .unwrap();
    let path = std::env::temp_dir().join(format!("aio-cancel-short-{}", std::process::id()));
    std::fs::write(&path, b"01234567").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let got = std::rc::Rc::new(std::cell::RefCell::new(None));
    let g = std::rc::Rc::clone(&got);
    let handle = ctx.read_at(&file, Vec::with_capacity(8), 0, move |_, n, buf| {
        *g.borrow_mut() = Some((n.map_err(|e| e.raw_os_error()), buf.capacity()));
    });
    handle.cancel();
    ctx.run_until(|| got.borrow().is_some()).unwrap();
    assert_eq!(
        *got.borrow(),
        Some((Err(Some(libc::ECANCELED)), 8)),
        "cancelled after its first byte, with its buffer"
    );
    for _ in 0..3 {
        ctx.poll(false).unwrap();
    }
    assert_eq!(got.borrow().iter().count(), 1);
}

#[test]
fn an_outer_loop_runs_completed_operations() {
    // prepare, check and dispatch as an outer event loop calls them: the
    // completion that made prepare's timeout zero is run by dispatch.
    let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
        .ops_fallback(|_| Box::new(InlineEngine::new()))
        .build()
        .unwrap();
    let path = std::env::temp_dir().join(format!("aio-outer-ops-{}", std::process::id()));
    std::fs::write(&path, b"0123").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let got = std::rc::Rc::new(std::cell::RefCell::new(None));
    let g = std::rc::Rc::clone(&got);
    ctx.read_at(&file, Vec::with_capacity(4), 0, move |_, n, buf| {
        *g.borrow_mut() = Some((n.unwrap(), buf));
    });
    assert_eq!(ctx.prepare().unwrap(), Some(std::time::Duration::ZERO));
    assert!(ctx.check().unwrap(), "check sees the completion");
    assert!(ctx.dispatch().unwrap(), "the callback counts as progress");
    assert_eq!(*got.borrow(), Some((4, b"0123".to_vec())));
}

#[test]
fn run_blocking_without_an_engine_that_runs_closures_is_a_clear_error() {
    let ctx = aio_core::AioContext::with_monitor(Box::new(SleepMonitor::new())).unwrap();
    assert_eq!(ctx.op_engine(OpKind::Call), None);
    let got = std::rc::Rc::new(std::cell::RefCell::new(None));
    let g = std::rc::Rc::clone(&got);
    ctx.run_blocking(|| 42, move |_, answer| *g.borrow_mut() = Some(answer));
    ctx.run_until(|| got.borrow().is_some()).unwrap();
    let error = got.borrow_mut().take().unwrap().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
    assert!(error.to_string().contains("ops_fallback"), "{error}");
}

#[test]
fn run_blocking_on_the_inline_engine_returns_the_value() {
    let h = harness(InlineEngine::new);
    let ctx = h.context();
    let got = std::rc::Rc::new(std::cell::Cell::new(None));
    let g = std::rc::Rc::clone(&got);
    ctx.run_blocking(|| 6 * 7, move |_, answer| g.set(Some(answer.unwrap())));
    ctx.run_until(|| got.get().is_some()).unwrap();
    assert_eq!(got.get(), Some(42));
}

/// The inline engine does not take socket requests (made on the home
/// thread, one that is not ready would block the loop): it says so, and a
/// receive on a context with only that engine completes with `EOPNOTSUPP`
/// rather than blocking.
#[test]
fn the_inline_engine_refuses_socket_requests_rather_than_block() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
        .ops_fallback(|_| Box::new(InlineEngine::new()))
        .build()
        .unwrap();
    for kind in [OpKind::Accept, OpKind::Recv, OpKind::Send, OpKind::Connect] {
        assert_eq!(ctx.op_engine(kind), None, "{kind:?}");
    }
    assert_eq!(ctx.op_engine(OpKind::Read), Some("inline"));
    let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let got = Rc::new(RefCell::new(None));
    let g = Rc::clone(&got);
    ctx.recv(&ours, Vec::with_capacity(8), move |_, n, buf| {
        *g.borrow_mut() = Some((n.map_err(|e| e.raw_os_error()), buf.len()));
    });
    let _dog = aio_core::testing::Watchdog::arm(
        "a refused receive's completion",
        std::time::Duration::from_secs(60),
    );
    ctx.run_until(|| got.borrow().is_some()).unwrap();
    assert_eq!(
        got.borrow_mut().take(),
        Some((Err(Some(libc::EOPNOTSUPP)), 0))
    );
}
