//! A wake from the home thread allocates nothing.

use std::cell::Cell;
use std::rc::Rc;

use aio::prelude::*;
use aio_async::{Runtime, yield_now};
use aio_core::testing::{CountingAlloc, allocations_in};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

#[test]
fn a_same_thread_wake_and_its_run_allocate_nothing() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let runs = Rc::new(Cell::new(0u64));
    let r = runs.clone();
    rt.spawn_local(async move {
        loop {
            r.set(r.get() + 1);
            yield_now().await; // a wake from the home thread, every time
        }
    })
    .detach();
    let allocated = allocations_in(|| {
        rt.context().poll(false).unwrap();
    });
    assert!(runs.get() > 1000, "the task ran {} times", runs.get());
    assert_eq!(allocated, 0, "a wake and a task run allocated");
}
