//! A wake from the home thread, a `block_on` and a steady socket
//! ping-pong allocate nothing.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use aio::prelude::*;
use aio_async::{Async, Runtime, yield_now};
use aio_core::testing::{CountingAlloc, Watchdog, allocations_in};

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

#[test]
fn block_on_allocates_nothing_of_its_own() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let allocated = allocations_in(|| {
        rt.block_on(yield_now()).unwrap();
    });
    assert_eq!(allocated, 0, "block_on allocated");
}

/// Two tasks bounce a byte over a socket pair, each waiting for
/// readability in turn: the waits, the fd handlers' wakes and the reads
/// and writes allocate nothing once warm.
#[test]
fn a_socket_ping_pong_between_two_tasks_allocates_nothing() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
    let trips = Rc::new(Cell::new(0u64));
    let t = trips.clone();
    rt.spawn_local(async move {
        let mut byte = [0u8; 1];
        loop {
            a.write_with(|mut s| s.write(&[1])).await.unwrap();
            a.read_with(|mut s| s.read(&mut byte)).await.unwrap();
            t.set(t.get() + 1);
        }
    })
    .detach();
    rt.spawn_local(async move {
        let mut byte = [0u8; 1];
        loop {
            b.read_with(|mut s| s.read(&mut byte)).await.unwrap();
            b.write_with(|mut s| s.write(&byte)).await.unwrap();
        }
    })
    .detach();
    let _dog = Watchdog::arm(
        "1100 round trips between two tasks",
        Duration::from_secs(60),
    );
    let allocated = allocations_in(|| {
        let target = trips.get() + 1;
        rt.context().run_until(|| trips.get() >= target).unwrap();
    });
    assert!(trips.get() >= 1100);
    assert_eq!(allocated, 0, "a round trip allocated");
}
