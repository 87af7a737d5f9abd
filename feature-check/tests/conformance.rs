//! The conformance suite on the automatic choice of a build with a single
//! backend: the one backend compiled in, set up by the facade as that
//! user's program gets it.

#[cfg(any(
    all(feature = "io-uring", not(feature = "epoll"), not(feature = "poll")),
    all(not(feature = "io-uring"), feature = "epoll", not(feature = "poll")),
    all(not(feature = "io-uring"), not(feature = "epoll"), feature = "poll"),
))]
mod the_only_backend {
    aio_core::conformance_tests!(aio_core::testing::Harness::new(|| aio::Backend::Auto.open()));
}
