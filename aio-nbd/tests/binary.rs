//! The `aio-nbd` binary: its help, serving qemu-io on TCP and on a Unix
//! socket with each backend, and a clean stop on SIGTERM and SIGINT. The
//! listening line on stdout is the handshake that says it is bound.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aio_core::testing::Watchdog;
use common::{qemu_io, run_ok, sparse_image};

const BIN: &str = env!("CARGO_BIN_EXE_aio-nbd");

/// The running binary; killed if a test fails before stopping it.
struct Served(Option<Child>);

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the binary; returns it and the address it printed.
fn start(args: &[&str]) -> (Served, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start aio-nbd");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix("aio-nbd: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Served(Some(child)), addr)
}

/// Sends `signal` and checks that the binary stops cleanly.
fn stop(mut served: Served, signal: &str) {
    let mut child = served.0.take().unwrap();
    run_ok("kill", &[signal, &child.id().to_string()]);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "aio-nbd exited with {status}: {err}");
    assert!(err.contains("stopped after"), "{err}");
}

#[test]
fn help_lists_the_options() {
    let out = run_ok(BIN, &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--listen",
        "--socket",
        "--read-only",
        "--export-name",
        "--backend",
        "--poll-max-ns",
    ] {
        assert!(help.contains(option), "{option} missing from\n{help}");
    }
}

#[test]
fn serves_qemu_io_on_tcp_and_stops_on_sigterm() {
    let _dog = Watchdog::arm("aio-nbd binary on TCP", Duration::from_secs(120));
    let (dir, image) = sparse_image(4 << 20);
    let _keep = dir;
    for backend in ["io_uring", "epoll", "poll"] {
        let (child, addr) = start(&[
            "-l",
            "127.0.0.1:0",
            "--backend",
            backend,
            "-x",
            "disk",
            image.to_str().unwrap(),
        ]);
        qemu_io(
            &format!("nbd://{addr}/disk"),
            &["write -P 0x42 0 64k".into(), "read -P 0x42 0 64k".into()],
        );
        stop(child, "-TERM");
    }
}

#[test]
fn serves_a_unix_socket_read_only_and_stops_on_sigint() {
    let _dog = Watchdog::arm("aio-nbd binary on a unix socket", Duration::from_secs(120));
    let (dir, image) = sparse_image(4 << 20);
    let socket = dir.path().join("s.sock");
    let (child, addr) = start(&[
        "--socket",
        socket.to_str().unwrap(),
        "--read-only",
        "--poll-max-ns",
        "0",
        image.to_str().unwrap(),
    ]);
    assert_eq!(addr, format!("unix:{}", socket.display()));
    let uri = format!("nbd+unix:///?socket={}", socket.display());
    let out = run_ok(
        "qemu-io",
        &["-r", "-f", "raw", "-c", "read -P 0 0 64k", &uri],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("read 65536/65536"));
    stop(child, "-INT");
    assert!(
        !socket.exists(),
        "the socket file is removed on the way out"
    );
}

#[test]
fn a_missing_export_is_a_clear_error() {
    let out = common::run(BIN, &["-l", "127.0.0.1:0", "/nonexistent/disk.img"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/disk.img"), "{err}");
}
