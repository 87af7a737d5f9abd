//! A context driven by a tokio runtime: it serves an fd handler, a timer
//! and remote work while a tokio task runs beside it, on every monitor, and
//! does not busy-poll in this mode.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn serves_beside_a_tokio_task(backend: Backend) {
    let ctx = AioContext::builder()
        .backend(backend)
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();
    let kick = Rc::new(EventNotifier::new().unwrap());
    let (kicks, ticks, jobs) = (
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
    );
    let (k, n) = (Rc::clone(&kick), Rc::clone(&kicks));
    ctx.set_fd_handler(
        &*kick,
        Some(FdHandler::new().on_read(move |_| {
            k.test_and_clear().unwrap();
            n.set(n.get() + 1);
        })),
    )
    .unwrap();
    let t = Rc::clone(&ticks);
    let timer = ctx.timer(move |_| t.set(t.get() + 1));
    timer.arm_in(Duration::from_millis(5));
    let (remote, done) = (
        ctx.remote(),
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    let d = std::sync::Arc::clone(&done);
    // The job comes once tokio is blocked, driving the context.
    let home = aio_core::testing::ThreadProbe::current();
    let sender = std::thread::spawn(move || {
        home.wait_until_blocked();
        remote
            .schedule(move |_| {
                d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .unwrap();
    });
    let task_steps = Rc::new(Cell::new(0));
    runtime().block_on(async {
        let steps = Rc::clone(&task_steps);
        let (kick, kicks, ticks, j) = (
            Rc::clone(&kick),
            Rc::clone(&kicks),
            Rc::clone(&ticks),
            Rc::clone(&jobs),
        );
        let done = std::sync::Arc::clone(&done);
        let task = async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                steps.set(steps.get() + 1);
                kick.set().unwrap();
            }
            // Wait until the context has served everything.
            for _ in 0..2000 {
                j.set(done.load(std::sync::atomic::Ordering::SeqCst));
                if kicks.get() == 3 && ticks.get() == 1 && j.get() == 1 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("{backend}: the context did not serve its work while tokio ran");
        };
        tokio::select! {
            result = aio::tokio::drive(&ctx) => panic!("drive ended: {result:?}"),
            () = task => {}
        }
    });
    sender.join().unwrap();
    assert_eq!(
        (task_steps.get(), kicks.get(), ticks.get(), jobs.get()),
        (3, 3, 1, 1),
        "{backend}"
    );
    let report = ctx.backend().to_string();
    assert!(
        !report.contains("moved") || report.contains("to be watched by another event loop"),
        "{backend}: a move under tokio says why: {report}"
    );
    let stats = ctx.stats();
    assert_eq!(
        stats.poll_hits + stats.poll_misses,
        0,
        "{backend}: no busy polling under tokio"
    );
}

#[test]
fn poll_monitor_in_tokio() {
    serves_beside_a_tokio_task(Backend::Poll);
}

#[test]
fn epoll_monitor_in_tokio() {
    serves_beside_a_tokio_task(Backend::Epoll);
}

#[test]
fn io_uring_monitor_in_tokio() {
    // Where io_uring is refused, the facade's error says why; nothing to test.
    if Backend::IoUring.open().is_ok() {
        serves_beside_a_tokio_task(Backend::IoUring);
    }
}
