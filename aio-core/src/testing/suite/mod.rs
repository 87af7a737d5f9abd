//! The conformance suite: the behaviour every monitor must show, written
//! once against a [`Harness`](super::Harness) and run on each backend with
//! [`conformance_tests!`](crate::conformance_tests).
//!
//! Each case is a public function that panics on failure, so a case can
//! also be called from a test of one's own.

pub mod bh;
pub mod handlers;
pub mod notifiers;
pub mod ops;
pub mod polling;
pub mod remote;
pub mod sockets;
pub mod timers;
