//! The facade: `AioContext::new()` runs on the best backend the machine
//! allows (or records why it could not), and the monitors it picks pass the
//! whole conformance suite: its automatic choice, and the auto mode that
//! starts on poll and moves to epoll (here at 2 handlers, so that every case
//! crosses the threshold).

use aio::prelude::*;

#[test]
fn new_picks_a_backend_and_reports_it() {
    let ctx = AioContext::new().unwrap();
    let info = ctx.backend();
    match info.name {
        "io_uring" => assert!(info.skipped.is_empty(), "{info}"),
        "poll" | "epoll" => assert_eq!(info.skipped[0].name, "io_uring", "{info}"),
        other => panic!("unexpected backend {other}: {info}"),
    }
}

mod automatic_choice {
    aio_core::conformance_tests!(aio_core::testing::Harness::new(|| aio::Backend::Auto.open()));
}

mod auto_mode_poll_to_epoll {
    aio_core::conformance_tests!(
        aio_core::testing::Harness::new(|| aio::Backend::Poll.open()).upgrading_at(
            2,
            "epoll",
            || aio::Backend::Epoll.open()
        )
    );
}

mod epoll {
    aio_core::conformance_tests!(aio_core::testing::Harness::new(
        || aio::Backend::Epoll.open()
    ));
}
