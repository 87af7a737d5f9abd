//! The facade: `AioContext::new()` runs on the best backend compiled in,
//! and the monitor that `Backend::Auto` picks passes the whole conformance
//! suite.

use aio::prelude::*;

#[test]
fn new_picks_a_backend_and_reports_it() {
    let ctx = AioContext::new().unwrap();
    let info = ctx.backend();
    assert_eq!(info.name, "poll", "the only backend so far");
    assert!(info.skipped.is_empty(), "{info}");
}

mod auto {
    aio_core::conformance_tests!(aio_core::testing::Harness::new(|| aio::Backend::Auto.open()));
}
