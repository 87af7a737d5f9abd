//! Helpers of the integration tests: images, a server on a thread, bounded
//! runs of the qemu tools, and a minimal NBD client for the protocol tests.

#![allow(dead_code, unreachable_pub)]

pub mod client;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use aio::prelude::*;
use aio_nbd::thread::{self, Running};
use aio_nbd::{Export, ListenAddr, Listener, Server};

/// How long one client invocation may take before the test fails.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(90);

/// A sparse image of `size` bytes in a temporary directory (kept alive by
/// the returned guard), with the directory for sockets and other files.
pub fn sparse_image(size: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("disk.img");
    let file = std::fs::File::create(&path).expect("image");
    file.set_len(size).expect("image size");
    (dir, path)
}

/// Where a test's server listens.
#[derive(Clone, Copy, Debug)]
pub enum On {
    Tcp,
    Unix,
}

/// Starts a server of `image` on `backend`, bound before its thread starts
/// (so clients can connect at once: no sleep, no retry).
pub fn serve(backend: Backend, on: On, dir: &Path, image: &Path, read_only: bool) -> Running {
    let listener = match on {
        On::Tcp => Listener::tcp("127.0.0.1:0").expect("bind TCP"),
        On::Unix => Listener::unix(dir.join("nbd.sock")).expect("bind unix socket"),
    };
    let export = Export::open(image, read_only).expect("open export");
    let server = Server::new(listener, export).export_name("disk");
    thread::spawn(server, move || {
        AioContext::builder()
            .backend(backend)
            .poll_params(aio_nbd::DEFAULT_POLL_PARAMS)
            .build()
    })
    .expect("spawn server")
}

/// The NBD URI qemu's tools take for a server's address.
pub fn uri(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(a) => format!("nbd://{a}/disk"),
        ListenAddr::Unix(p) => format!("nbd+unix:///disk?socket={}", p.display()),
    }
}

/// Runs a client tool under `timeout`, failing the test (with what it ran
/// and said) unless it succeeds.
pub fn run_ok(tool: &str, args: &[&str]) -> Output {
    let out = run(tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a client tool under `timeout`; a timeout fails the test.
pub fn run(tool: &str, args: &[&str]) -> Output {
    let limit = CLIENT_LIMIT.as_secs().to_string();
    let out = Command::new("timeout")
        .args(["-k", "5", &limit, tool])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e} (is qemu-utils installed?)"));
    assert_ne!(
        out.status.code(),
        Some(124),
        "{tool} {args:?} did not finish within {limit} s"
    );
    out
}

/// qemu-io on `uri` with these commands; its output.
pub fn qemu_io(uri: &str, commands: &[String]) -> String {
    let mut args = vec!["-f", "raw"];
    for c in commands {
        args.extend(["-c", c.as_str()]);
    }
    args.push(uri);
    let out = run_ok("qemu-io", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains("Pattern verification failed") && !text.contains("failed:"),
        "qemu-io {commands:?}:\n{text}"
    );
    text
}

/// Bytes from a small deterministic generator (xorshift), for images
/// whose content must survive a round trip.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The monitors every client test runs on.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod io_uring {
            $(#[test] fn $test() { super::$test(aio::Backend::IoUring) })*
        }
        mod epoll {
            $(#[test] fn $test() { super::$test(aio::Backend::Epoll) })*
        }
        mod poll {
            $(#[test] fn $test() { super::$test(aio::Backend::Poll) })*
        }
    };
}
