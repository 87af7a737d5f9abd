//! What a build of the facade with this crate's features compiles in, seen
//! through the facade's public API: the backends whose features are on open
//! and the others say "not compiled in" and name their feature; a context
//! runs on the best one compiled in; a build with none says so and still
//! serves a monitor of the program's own; `aio::tokio::drive` serves a
//! context with feature `tokio`.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use aio::prelude::*;
use feature_check::BACKEND_FEATURES;

const BACKENDS: [Backend; 3] = [Backend::IoUring, Backend::Epoll, Backend::Poll];

fn on(feature: &str) -> bool {
    BACKEND_FEATURES.contains(&feature)
}

/// Whether `AioContext::new()` makes the automatic choice here (the
/// environment can force a backend).
fn environment_leaves_the_choice() -> bool {
    std::env::var_os(aio::BACKEND_ENV).is_none()
}

#[test]
fn a_backend_is_compiled_in_exactly_when_its_feature_is_on() {
    for backend in BACKENDS {
        let feature = backend.cargo_features()[0];
        assert_eq!(backend.is_compiled_in(), on(feature), "{backend}");
        match backend.open() {
            Ok(monitor) => {
                assert!(on(feature), "{backend} opened without feature `{feature}`");
                assert_eq!(monitor.name(), backend.name());
            }
            // Compiled in, but refused by the machine (io_uring under a
            // seccomp filter): a refusal of its own, not "not compiled in".
            Err(e) if on(feature) => {
                assert!(!e.to_string().contains("not compiled in"), "{e}");
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
                let message = e.to_string();
                assert!(message.contains("not compiled in"), "{message}");
                assert!(message.contains(&format!("`{feature}`")), "{message}");
            }
        }
        // Forcing a backend that is not compiled in is the same error.
        if !on(feature) {
            let e = AioContext::builder().backend(backend).build().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains("not compiled in"), "{e}");
        }
    }
    assert_eq!(Backend::Auto.is_compiled_in(), !BACKEND_FEATURES.is_empty());
    assert!(Backend::Auto.cargo_features().is_empty());
    assert_eq!(
        Backend::PollThenEpoll.is_compiled_in(),
        on("poll") && on("epoll")
    );
}

/// Serves an fd handler, a bottom half and a timer on `ctx`.
#[cfg(any(feature = "io-uring", feature = "epoll", feature = "poll"))]
fn serves(ctx: &AioContext) {
    let kick = Rc::new(EventNotifier::new().unwrap());
    let (reads, bhs, ticks) = (
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
    );
    let (k, r) = (Rc::clone(&kick), Rc::clone(&reads));
    let handler = FdHandler::new().on_read(move |_| {
        k.test_and_clear().unwrap();
        r.set(r.get() + 1);
    });
    ctx.set_fd_handler(&*kick, Some(handler)).unwrap();
    let b = Rc::clone(&bhs);
    ctx.schedule_oneshot(move |_| b.set(b.get() + 1));
    let t = Rc::clone(&ticks);
    let timer = ctx.timer(move |_| t.set(t.get() + 1));
    timer.arm_in(Duration::from_millis(1));
    kick.set().unwrap();
    // A blocking poll returns at the latest when the timer is due.
    while reads.get() == 0 || bhs.get() == 0 || ticks.get() == 0 {
        ctx.poll(true).unwrap();
    }
    assert_eq!((reads.get(), bhs.get(), ticks.get()), (1, 1, 1));
    ctx.set_fd_handler(&*kick, None).unwrap();
}

#[cfg(any(feature = "io-uring", feature = "epoll", feature = "poll"))]
#[test]
fn a_context_runs_on_the_best_backend_compiled_in() {
    // The best backend compiled in that this machine allows; io_uring
    // first, and epoll's auto mode starts on poll when poll is in.
    let opens: Vec<Backend> = BACKENDS.into_iter().filter(|b| b.open().is_ok()).collect();
    let best = opens[0];
    let expected = match best {
        Backend::Epoll if on("poll") => "poll",
        other => other.name(),
    };
    // Those skipped are the better ones compiled in that the machine
    // refused: a backend left out is no candidate.
    let skipped: Vec<&str> = BACKENDS
        .into_iter()
        .take_while(|&b| b != best)
        .filter(|b| b.is_compiled_in())
        .map(Backend::name)
        .collect();
    let mut contexts = vec![
        AioContext::builder()
            .backend(Backend::Auto)
            .build()
            .unwrap(),
    ];
    if environment_leaves_the_choice() {
        contexts.push(AioContext::new().unwrap());
    }
    for ctx in &contexts {
        let info = ctx.backend();
        assert_eq!(info.name, expected, "{info}");
        let names: Vec<&str> = info.skipped.iter().map(|s| s.name).collect();
        assert_eq!(names, skipped, "{info}");
        let upgrade = info.upgrade.map(|u| (u.name, u.at_handlers));
        if best == Backend::Epoll && on("poll") {
            assert_eq!(upgrade, Some(("epoll", aio::EPOLL_UPGRADE_AT)), "{info}");
        } else {
            assert_eq!(upgrade, None, "{info}");
        }
        serves(ctx);
    }
    // On its own, the automatic choice is the monitor a context starts on.
    assert_eq!(Backend::Auto.open().unwrap().name(), expected);
}

#[cfg(not(any(feature = "io-uring", feature = "epoll", feature = "poll")))]
#[test]
fn without_a_backend_new_says_so_and_names_the_features() {
    let check = |e: io::Error| {
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
        let message = e.to_string();
        assert!(message.contains("no backend is compiled in"), "{message}");
        for feature in ["`io-uring`", "`epoll`", "`poll`", "ContextBuilder"] {
            assert!(message.contains(feature), "{feature} in {message}");
        }
    };
    check(
        AioContext::builder()
            .backend(Backend::Auto)
            .build()
            .unwrap_err(),
    );
    check(Backend::Auto.open().err().unwrap());
    if environment_leaves_the_choice() {
        check(AioContext::new().unwrap_err());
    }
}

#[cfg(not(any(feature = "io-uring", feature = "epoll", feature = "poll")))]
#[test]
fn without_a_backend_a_monitor_of_the_programs_own_serves_a_context() {
    let monitor = aio_core::testing::SleepMonitor::new();
    let ctx = aio::ContextBuilder::new(Box::new(monitor)).build().unwrap();
    assert_eq!(ctx.backend().name, "sleep");
    // The sleeping monitor reports no fd readiness: bottom halves and
    // timers only.
    let (bhs, ticks) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let b = Rc::clone(&bhs);
    ctx.schedule_oneshot(move |_| b.set(b.get() + 1));
    let t = Rc::clone(&ticks);
    let timer = ctx.timer(move |_| t.set(t.get() + 1));
    timer.arm_in(Duration::from_millis(1));
    while bhs.get() == 0 || ticks.get() == 0 {
        ctx.poll(true).unwrap();
    }
    assert_eq!((bhs.get(), ticks.get()), (1, 1));
}

#[cfg(all(
    feature = "tokio",
    any(feature = "io-uring", feature = "epoll", feature = "poll")
))]
#[test]
fn tokio_drive_serves_a_context() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ctx = AioContext::builder()
        .backend(Backend::Auto)
        .build()
        .unwrap();
    let kick = Rc::new(EventNotifier::new().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (k, tx) = (Rc::clone(&kick), Cell::new(Some(tx)));
    let handler = FdHandler::new().on_read(move |_| {
        k.test_and_clear().unwrap();
        if let Some(tx) = tx.take() {
            tx.send(()).unwrap();
        }
    });
    ctx.set_fd_handler(&*kick, Some(handler)).unwrap();
    kick.set().unwrap();
    let mut drive = pin!(aio::tokio::drive(&ctx));
    let mut served = pin!(rx);
    // Until the handler has run: tokio wakes the drive on the loop fd.
    rt.block_on(std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = served.as_mut().poll(cx) {
            result.expect("the handler sends once");
            return Poll::Ready(());
        }
        if let Poll::Ready(result) = drive.as_mut().poll(cx) {
            panic!("drive ended: {result:?}");
        }
        Poll::Pending
    }));
}
