//! The operations suite on the facade's contexts: on io_uring the ring
//! carries them, on epoll and poll the thread pool the facade gives every
//! context.

use aio::prelude::*;
use aio_core::OpKind;
use aio_core::testing::OpsHarness;

fn context(backend: Backend) -> std::io::Result<AioContext> {
    AioContext::builder().backend(backend).build()
}

#[test]
fn each_backend_says_which_engine_carries_its_operations() {
    for (backend, engine) in [
        (Backend::Epoll, "thread pool"),
        (Backend::Poll, "thread pool"),
    ] {
        let ctx = context(backend).unwrap();
        for kind in [
            OpKind::Read,
            OpKind::Accept,
            OpKind::Recv,
            OpKind::Send,
            OpKind::Connect,
        ] {
            assert_eq!(ctx.op_engine(kind), Some(engine), "{backend} {kind:?}");
        }
        assert_eq!(
            ctx.op_engine(OpKind::Raw),
            None,
            "{backend}: raw requests need a ring"
        );
    }
    if let Ok(ctx) = context(Backend::IoUring) {
        assert_eq!(ctx.op_engine(OpKind::Read), Some("io_uring"));
        assert_eq!(ctx.op_engine(OpKind::Fsync), Some("io_uring"));
        for kind in [OpKind::Accept, OpKind::Recv, OpKind::Send, OpKind::Connect] {
            assert_eq!(ctx.op_engine(kind), Some("io_uring"), "{kind:?}");
        }
    }
}

mod epoll_pool {
    use super::*;
    aio_core::ops_conformance_tests!(OpsHarness::new("epoll + thread pool", || context(
        Backend::Epoll
    )));
}

mod poll_pool {
    use super::*;
    aio_core::ops_conformance_tests!(OpsHarness::new("poll + thread pool", || context(
        Backend::Poll
    )));
}
