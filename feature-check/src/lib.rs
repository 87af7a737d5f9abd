//! `feature-check`: the `aio` facade built with one subset of its cargo
//! features, as a user's crate that names those features gets it. The
//! tests (`tests/`) assert what the subset compiles in, through the
//! facade's public API: which backends [`aio::Backend::open`] says are not
//! compiled in, which one a new context runs on, the error of a build with
//! none, and `aio::tokio::drive` with feature `tokio`. The single-backend
//! builds also run the conformance suite on the automatic choice.
//!
//! `cargo xtask features` runs it over every subset:
//! `cargo test -p feature-check --no-default-features --features epoll`
//! and so on.

/// The backend features this build was asked for, as the facade names
/// them, best first.
pub const BACKEND_FEATURES: &[&str] = &[
    #[cfg(feature = "io-uring")]
    "io-uring",
    #[cfg(feature = "epoll")]
    "epoll",
    #[cfg(feature = "poll")]
    "poll",
];
