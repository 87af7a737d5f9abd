//! The core of `aio`, an event loop for low-latency I/O in the tradition of
//! QEMU's `AioContext`.
//!
//! An [`AioContext`] serves fds with read, write and *poll* callbacks
//! ([`FdHandler`]), busy-polls adaptively before it blocks
//! ([`PollParams`]), runs bottom halves ([`BottomHalf`]) and nanosecond
//! timers ([`Timer`]), and wakes across threads cheaply ([`Remote`]).
//!
//! This crate holds no kernel backend: a context runs on any [`FdMonitor`],
//! the small trait that the `fdmon-*` crates implement. Most users depend on
//! the `aio` facade instead, which picks the best monitor the machine
//! allows. With the `testing` feature, the `testing` module holds the conformance
//! suite that every monitor must pass, and a simulated monitor.
//!
//! ```
//! use std::{cell::Cell, rc::Rc, time::Duration};
//! use aio_core::{AioContext, testing::SleepMonitor};
//!
//! let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
//! let ticks = Rc::new(Cell::new(0));
//! let t = ticks.clone();
//! let timer = ctx.timer(move |_ctx| t.set(t.get() + 1));
//! timer.arm_in(Duration::from_micros(100));
//! while ticks.get() == 0 {
//!     ctx.poll(true)?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

mod backend;
mod bh;
mod builder;
mod busy_poll;
mod clock;
mod context;
pub mod deadline;
mod dispatch;
mod doorbell;
mod embed;
mod external;
mod fd;
mod fd_table;
mod handler;
mod iteration;
mod migration;
mod monitor;
mod nesting;
mod notifier;
mod notify;
mod ops;
mod outer;
mod pass;
mod peek;
mod polling;
mod registry;
mod remote;
mod run;
mod shared;
mod stats;
mod sync;
mod timer;

#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{BackendInfo, PlannedUpgrade, Selection, Skipped};
pub use bh::{BottomHalf, RemoteBh};
pub use builder::ContextBuilder;
pub use clock::{Clock, ManualClock};
pub use context::AioContext;
pub use fd::FdSource;
pub use handler::{FdHandler, PollHook};
pub use migration::Upgrade;
pub use monitor::{FdMonitor, Interest, Pending, Readiness, ReadyEvent, Registration, Token};
pub use nesting::MAX_NESTING;
pub use notifier::{EventNotifier, NotifierKind};
pub use ops::{IoBuf, IoBufMut, OpCompletion, OpEngine, OpHandle, OpId, OpKind, OpRequest};
pub use polling::PollParams;
pub use remote::Remote;
pub use shared::Gone;
pub use stats::Stats;
pub use timer::Timer;

// The threading contract: a context and its home-thread handles stay on
// their thread; what other threads get is Send + Sync.
static_assertions::assert_not_impl_any!(AioContext: Send, Sync);
static_assertions::assert_not_impl_any!(BottomHalf: Send, Sync);
static_assertions::assert_not_impl_any!(Timer: Send, Sync);
static_assertions::assert_not_impl_any!(FdHandler: Send, Sync);
static_assertions::assert_impl_all!(Remote: Send, Sync, Clone);
static_assertions::assert_impl_all!(RemoteBh: Send, Sync, Clone);
static_assertions::assert_impl_all!(ManualClock: Send, Sync, Clone);
static_assertions::assert_impl_all!(EventNotifier: Send, Sync);
static_assertions::assert_impl_all!(Gone: Send, Sync, std::error::Error);
