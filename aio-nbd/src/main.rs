//! `aio-nbd`: serve a file or block device over NBD on the aio event loop.
//!
//! ```text
//! aio-nbd disk.img                       # TCP 127.0.0.1:10809
//! aio-nbd --listen 0.0.0.0:10809 --read-only --export-name disk /dev/vdb
//! aio-nbd --socket /tmp/nbd.sock disk.img
//! ```
//!
//! It prints one line, `aio-nbd: listening on ADDR`, once the socket is
//! bound (scripts wait for it instead of sleeping), and stops cleanly on
//! SIGINT or SIGTERM: in-flight requests are finished first.

use std::path::PathBuf;
use std::process::ExitCode;

use aio::prelude::*;
use aio_nbd::signal_hook::consts::{SIGINT, SIGTERM};
use aio_nbd::{Export, Listener, Server, Shutdown};
use clap::Parser;

/// Serve a file or block device over NBD (the Network Block Device
/// protocol, as `qemu-nbd` and `nbdkit` speak it) on the aio event loop.
#[derive(Debug, Parser)]
#[command(name = "aio-nbd", version)]
struct Args {
    /// The file or block device to export.
    export: PathBuf,

    /// TCP address to listen on (HOST:PORT; port 0 picks a free one).
    #[arg(
        long,
        short = 'l',
        default_value = "127.0.0.1:10809",
        conflicts_with = "socket"
    )]
    listen: String,

    /// Listen on this Unix socket instead of TCP.
    #[arg(long, short = 'k', value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Refuse writes (the export is opened read-only).
    #[arg(long, short = 'r')]
    read_only: bool,

    /// The export's name (clients may also ask for the empty default name).
    #[arg(long, short = 'x', default_value = "")]
    export_name: String,

    /// The event loop's kernel interface: auto, io_uring, epoll or poll.
    #[arg(long, default_value = "auto")]
    backend: Backend,

    /// The longest busy-poll window in nanoseconds; 0 turns polling off.
    /// The default (256 us) is explained in the README: a wake-up here
    /// costs more than QEMU's 32 us window.
    #[arg(long, value_name = "NS", default_value_t = aio_nbd::DEFAULT_POLL_PARAMS.max_ns)]
    poll_max_ns: u64,

    /// The factor a poll time grows by (0: 2).
    #[arg(long, value_name = "N", default_value_t = 0)]
    poll_grow: u64,

    /// The divisor a poll time shrinks by (0: reset to 0).
    #[arg(long, value_name = "N", default_value_t = 0)]
    poll_shrink: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aio-nbd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> std::io::Result<()> {
    let export = Export::open(&args.export, args.read_only)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", args.export.display())))?;
    let listener = match &args.socket {
        Some(path) => Listener::unix(path)?,
        None => Listener::tcp(&args.listen)?,
    };
    let server = Server::new(listener, export).export_name(&args.export_name);
    let shutdown = Shutdown::new()?;
    shutdown.on_signals(&[SIGINT, SIGTERM])?;
    let params = PollParams {
        max_ns: args.poll_max_ns,
        grow: args.poll_grow,
        shrink: args.poll_shrink,
    };
    let ctx = AioContext::builder()
        .backend(args.backend)
        .poll_params(params)
        .build()?;
    println!("aio-nbd: listening on {}", server.local_addr()?);
    eprintln!(
        "aio-nbd: loop on {}; polling up to {} ns",
        ctx.backend(),
        params.max_ns
    );
    let summary = server.serve(&ctx, &shutdown)?;
    eprintln!(
        "aio-nbd: stopped after {} connections, {} requests",
        summary.connections, summary.requests
    );
    Ok(())
}
