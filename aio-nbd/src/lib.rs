//! `aio-nbd`: an NBD (Network Block Device) server on the aio event loop.
//!
//! It exports one file or block device to any number of clients (`qemu-img`,
//! `qemu-io`, `qemu-nbd --connect`, `nbd-client`, ...) over TCP or a Unix
//! socket, all served by one [`AioContext`](aio::AioContext) on one thread:
//! the fixed newstyle handshake (`NBD_OPT_EXPORT_NAME`, `GO`, `INFO`,
//! `LIST`, `ABORT`, `STRUCTURED_REPLY`, `SET_META_CONTEXT` /
//! `LIST_META_CONTEXT` for `base:allocation`), and the commands `READ`,
//! `WRITE` (with FUA), `FLUSH`, `TRIM`, `WRITE_ZEROES` (with `NO_HOLE`),
//! `BLOCK_STATUS` and `DISC`, pipelined.
//!
//! ```no_run
//! use aio::prelude::*;
//! use aio_nbd::{Export, Listener, Server, Shutdown};
//!
//! let server = Server::new(Listener::tcp("127.0.0.1:10809")?, Export::open("disk.img", false)?);
//! let shutdown = Shutdown::new()?;
//! shutdown.on_signals(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
//! let ctx = AioContext::builder().poll_params(aio_nbd::DEFAULT_POLL_PARAMS).build()?;
//! let summary = server.serve(&ctx, &shutdown)?;
//! println!("served {} requests", summary.requests);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The modules, one concept each: [`proto`] (the wire format, pure),
//! [`export`] (the file and its blocking operations), `io` (the one seam
//! where data I/O happens: the loop's operations, on its io_uring ring or
//! its thread pool), `options`
//! and `requests` (the protocol's rules for each phase), `connection` (the
//! per-client state machine on the loop), [`server`] (listener, accept,
//! shutdown), [`net`] (TCP and Unix sockets) and [`thread`] (a server on a
//! thread of its own, for tests and benchmarks).

pub mod export;
pub mod net;
pub mod proto;
pub mod server;
pub mod thread;

mod connection;
mod io;
mod options;
mod requests;
mod shared;

pub use export::Export;
pub use net::{ListenAddr, Listener};
pub use server::{DRAIN_TIMEOUT, Server, Shutdown, Summary};
pub use shared::{MAX_BLOCK, MIN_BLOCK, PREFERRED_BLOCK};

/// Re-exported for [`Shutdown::on_signals`].
pub use signal_hook;

use aio::PollParams;

/// The polling parameters the `aio-nbd` binary uses unless told
/// otherwise: busy-poll windows of up to 256 us.
///
/// Why not QEMU's `PollParams::IOTHREAD` (32 us): on the 2-vCPU machine
/// this was measured on, a wake-up across CPUs costs more than 32 us, so
/// after a reply the client's next request arrives later than that. The
/// loop grows a poll time only after a wait shorter than `max_ns`, so with
/// `IOTHREAD` polling never starts and the server behaves as with polling
/// off (one blocking wait per request at queue depth 1). With 256 us the
/// window covers the client's turn: measured with
/// `cargo xtask bench --scenario nbd` (server and `qemu-img bench` client
/// on distinct CPUs), 4 KiB reads at depth 1 went from about 4.9k IOPS
/// (off) and 5.4k (`IOTHREAD`) to 8.7k, writes from 5.7k and 6.1k to
/// 14.6k, with about 0.85 of requests served from the window; at depth 32
/// the three are within about 15% of one another. The README has the
/// table.
///
/// A window costs CPU time only while requests keep coming (an idle loop
/// stops polling after its first long wait). When the server shares its
/// only CPU with its client, polling takes the client's CPU away (the same
/// benchmark with both on one CPU: 13.6k read IOPS at depth 1 with 256 us
/// against 23.2k with polling off): there, pass `--poll-max-ns 0`.
pub const DEFAULT_POLL_PARAMS: PollParams = PollParams {
    max_ns: 256_000,
    grow: 0,
    shrink: 0,
};
