//! The executor: spawning, joining, cancelling, panics, fairness, misuse.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use aio::prelude::*;
use aio_async::{JoinError, NestedBlockOn, Runtime, spawn_local, yield_now};
use aio_core::testing::Watchdog;

fn runtime() -> Runtime {
    Runtime::new(AioContext::new().expect("a context"))
}

/// Sets its flag when dropped: tells whether a task's future was dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Spawns a task that never completes; the flag says when its future was
/// dropped.
fn spawn_pending(rt: &Runtime) -> (aio_async::JoinHandle<()>, Rc<Cell<bool>>) {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = rt.spawn_local(async move {
        let _flag = flag;
        pending_forever().await;
    });
    (handle, dropped)
}

/// A future that never completes.
fn pending_forever() -> impl Future<Output = ()> {
    poll_fn(|_| Poll::Pending)
}

#[test]
fn block_on_returns_the_output_of_a_task() {
    let rt = runtime();
    let out = rt
        .block_on(async { spawn_local(async { 40 + 2 }).await })
        .unwrap();
    assert_eq!(out.unwrap(), 42);
}

#[test]
fn tasks_spawning_tasks_all_complete_once() {
    let rt = runtime();
    let runs = Rc::new(Cell::new(0u32));
    fn tree(depth: u32, runs: Rc<Cell<u32>>) -> std::pin::Pin<Box<dyn Future<Output = u32>>> {
        Box::pin(async move {
            runs.set(runs.get() + 1);
            if depth == 0 {
                return 1;
            }
            let left = spawn_local(tree(depth - 1, runs.clone()));
            let right = spawn_local(tree(depth - 1, runs.clone()));
            left.await.unwrap() + right.await.unwrap()
        })
    }
    let leaves = rt.block_on(tree(10, runs.clone())).unwrap();
    assert_eq!(leaves, 1024);
    assert_eq!(runs.get(), 2047, "each task ran its body once");
}

#[test]
fn dropping_a_join_handle_before_completion_cancels_the_task() {
    let rt = runtime();
    let (handle, dropped) = spawn_pending(&rt);
    rt.block_on(yield_now()).unwrap();
    assert!(!dropped.get(), "the task is alive while its handle is");
    drop(handle);
    rt.block_on(yield_now()).unwrap();
    assert!(dropped.get(), "dropping the handle dropped the future");
}

#[test]
fn dropping_a_join_handle_after_completion_drops_the_output() {
    let rt = runtime();
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = rt.spawn_local(async move { flag });
    rt.block_on(yield_now()).unwrap();
    assert!(handle.is_finished());
    assert!(!dropped.get(), "the output waits for the handle");
    drop(handle);
    assert!(dropped.get());
}

#[test]
fn a_detached_task_runs_to_completion() {
    let rt = runtime();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    rt.spawn_local(async move {
        for _ in 0..10 {
            yield_now().await;
        }
        d.set(true);
    })
    .detach();
    let _dog = Watchdog::arm("a detached task", Duration::from_secs(30));
    rt.context().run_until(|| done.get()).unwrap();
}

#[test]
fn an_aborted_task_is_dropped_and_its_handle_says_cancelled() {
    let rt = runtime();
    let (handle, dropped) = spawn_pending(&rt);
    rt.block_on(yield_now()).unwrap();
    handle.abort();
    assert!(handle.is_finished());
    let result = rt.block_on(handle).unwrap();
    assert!(matches!(result, Err(JoinError::Cancelled)));
    // The future is dropped at the next pass.
    rt.block_on(yield_now()).unwrap();
    assert!(dropped.get());
}

#[test]
fn a_panicking_task_gives_its_handle_the_panic_and_the_loop_goes_on() {
    let rt = runtime();
    let other = rt.spawn_local(async {
        yield_now().await;
        yield_now().await;
        7
    });
    let bad = rt.spawn_local(async {
        yield_now().await;
        panic!("task failed on purpose");
    });
    let err = rt.block_on(bad).unwrap().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("task failed on purpose"));
    assert_eq!(rt.block_on(other).unwrap().unwrap(), 7);
    // And new tasks still run.
    assert_eq!(
        rt.block_on(rt.spawn_local(async { 1 })).unwrap().unwrap(),
        1
    );
}

#[test]
fn dropping_the_runtime_drops_every_pending_task() {
    let rt = runtime();
    let dropped = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let d = dropped.clone();
        struct Count(Rc<Cell<i32>>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let c = Count(d);
        rt.spawn_local(async move {
            let _c = c;
            pending_forever().await;
        })
        .detach();
    }
    rt.block_on(yield_now()).unwrap();
    assert_eq!(dropped.get(), 0);
    drop(rt);
    assert_eq!(dropped.get(), 3);
}

#[test]
fn a_waker_used_after_the_runtime_is_gone_does_nothing() {
    let rt = runtime();
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn_local(poll_fn(move |cx| {
        let _ = tx.send(cx.waker().clone());
        Poll::<()>::Pending
    }))
    .detach();
    rt.block_on(yield_now()).unwrap();
    let waker = rx.recv().unwrap();
    drop(rt);
    waker.wake_by_ref();
    std::thread::spawn(move || waker.wake()).join().unwrap();
}

#[test]
fn block_on_inside_block_on_is_an_error() {
    let rt = Rc::new(runtime());
    let inner = rt.clone();
    let err = rt
        .block_on(async move { inner.block_on(async {}).unwrap_err() })
        .unwrap();
    assert!(
        err.get_ref().is_some_and(|e| e.is::<NestedBlockOn>()),
        "{err}"
    );
}

#[test]
fn block_on_inside_a_task_or_a_loop_callback_is_an_error() {
    let rt = Rc::new(runtime());
    let inner = rt.clone();
    let in_task = rt.spawn_local(async move { inner.block_on(async {}).is_err() });
    assert!(rt.block_on(in_task).unwrap().unwrap(), "from a task");

    let inner = rt.clone();
    let refused = Rc::new(Cell::new(None));
    let r = refused.clone();
    rt.context()
        .schedule_oneshot(move |_| r.set(Some(inner.block_on(async {}).is_err())));
    rt.block_on(yield_now()).unwrap();
    assert_eq!(
        refused.get(),
        Some(true),
        "from a bottom half under block_on"
    );
}

#[test]
#[should_panic(expected = "spawn_local needs a runtime")]
fn spawn_local_outside_a_runtime_panics_with_what_to_do() {
    drop(spawn_local(async {}));
}

#[test]
fn a_self_waking_task_does_not_starve_an_fd_handler() {
    let rt = runtime();
    let spins = Rc::new(Cell::new(0u64));
    let s = spins.clone();
    rt.spawn_local(async move {
        loop {
            s.set(s.get() + 1);
            yield_now().await;
        }
    })
    .detach();
    let notifier = EventNotifier::new().unwrap();
    let served = Rc::new(Cell::new(false));
    let sv = served.clone();
    rt.context()
        .set_fd_handler(
            &notifier,
            Some(FdHandler::new().on_read(move |_| sv.set(true))),
        )
        .unwrap();
    rt.context().poll(false).unwrap();
    notifier.set().unwrap();
    let _dog = Watchdog::arm(
        "the fd handler beside a self-waking task",
        Duration::from_secs(30),
    );
    let before = spins.get();
    let mut iterations = 0;
    while !served.get() {
        rt.context().poll(true).unwrap();
        iterations += 1;
    }
    assert!(
        iterations <= 3,
        "the handler waited {iterations} iterations"
    );
    assert!(
        spins.get() - before <= 3,
        "the task ran {} times",
        spins.get() - before
    );
    rt.context().set_fd_handler(&notifier, None).unwrap();
}

#[test]
fn a_runner_pass_polls_at_most_256_tasks_and_the_rest_next_iteration() {
    let rt = runtime();
    let polls = Rc::new(Cell::new(0u32));
    for _ in 0..600 {
        let p = polls.clone();
        rt.spawn_local(async move { p.set(p.get() + 1) }).detach();
    }
    let mut per_iteration = Vec::new();
    while polls.get() < 600 {
        let before = polls.get();
        rt.context().poll(false).unwrap();
        per_iteration.push(polls.get() - before);
    }
    assert_eq!(per_iteration, [256, 256, 88]);
}
