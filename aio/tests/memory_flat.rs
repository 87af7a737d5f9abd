//! Memory stays flat: a million handler add/remove cycles and a million
//! one-shot bottom halves (and a hundred thousand bottom halves created,
//! scheduled, run and dropped) leave the number of live heap allocations
//! where it was after a warm-up, on every monitor. Counted by a global
//! allocator, per thread (everything here happens on the test's thread).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use aio_core::testing::{Count, CountingAlloc, clearing, live_growth_in};
use common::Kind;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

/// A million (a debug build runs the whole file in about ten seconds).
const CYCLES: usize = 1_000_000;

/// Runs `step` `CYCLES` times after `CYCLES / 100` to warm up; returns the
/// change in live allocations over the measured part.
fn growth(step: impl FnMut(usize)) -> i64 {
    live_growth_in(CYCLES / 100, CYCLES, step)
}

fn add_remove_cycles_leave_memory_flat(kind: Kind) {
    let f = common::harness(kind).fixture();
    let ev = Rc::new(f.event());
    let runs = Count::new();
    let grew = growth(|i| {
        f.ctx
            .set_fd_handler(&*ev, Some(clearing(&ev, &runs)))
            .unwrap();
        if i.is_multiple_of(1000) {
            // Now and then the handler sees its fd ready before it goes.
            ev.set();
            f.ctx.poll(false).unwrap();
        }
        f.ctx.set_fd_handler(&*ev, None).unwrap();
    });
    f.ctx.poll(false).unwrap();
    assert!(runs.get() > 0);
    assert_eq!(
        grew, 0,
        "{CYCLES} add/remove cycles: live allocations grew by {grew}"
    );
}

fn oneshot_bottom_halves_leave_memory_flat(kind: Kind) {
    let f = common::harness(kind).fixture();
    let runs = Rc::new(Cell::new(0usize));
    let grew = growth(|i| {
        let r = Rc::clone(&runs);
        f.ctx.schedule_oneshot(move |_| r.set(r.get() + 1));
        if i % 100 == 99 {
            f.ctx.poll(false).unwrap();
        }
    });
    f.ctx.poll(false).unwrap();
    let warm_up = CYCLES / 100;
    assert_eq!(runs.get(), CYCLES + warm_up, "every one-shot ran");
    assert_eq!(
        grew, 0,
        "{CYCLES} one-shot bottom halves: live allocations grew by {grew}"
    );
}

fn bottom_half_objects_leave_memory_flat(kind: Kind) {
    let f = common::harness(kind).fixture();
    let runs = Count::new();
    let grew = growth(|i| {
        if !i.is_multiple_of(10) {
            return; // a tenth of the cycles: each is a few allocations
        }
        let r = runs.clone();
        let bh = f.ctx.bh(move |_| r.hit());
        bh.schedule();
        f.ctx.poll(false).unwrap();
        bh.schedule(); // and dropped while scheduled
    });
    f.ctx.poll(false).unwrap();
    assert_eq!(runs.get(), (CYCLES + CYCLES / 100) / 10);
    assert_eq!(grew, 0, "bottom halves: live allocations grew by {grew}");
}

on_every_monitor!(sim:
    add_remove_cycles_leave_memory_flat,
    oneshot_bottom_halves_leave_memory_flat,
    bottom_half_objects_leave_memory_flat,
);

/// Reads and writes of a reused buffer allocate nothing on the home thread
/// once warm, on the ring and on the thread pool (whose workers' own
/// bookkeeping is theirs).
#[test]
fn operations_do_not_allocate_on_the_ring_or_the_pool() {
    use aio::prelude::*;
    for backend in [Backend::Epoll, Backend::IoUring] {
        let Ok(ctx) = AioContext::builder().backend(backend).build() else {
            continue; // io_uring refused here: its own tests say so
        };
        aio_core::testing::assert_operations_do_not_allocate(&ctx);
        aio_core::testing::assert_socket_operations_do_not_allocate(&ctx);
    }
}
