//! The socket part of the operations suite: `accept`, `connect`, `recv`
//! and `send` on every path, run with
//! [`ops_conformance_tests!`](crate::ops_conformance_tests). Each engine
//! stops a socket request that waits (the ring cancels it in the kernel; a
//! pool's worker waits in `poll` on the socket and on its own eventfd), so
//! these cases expect `ECANCELED` on every path.

use std::cell::{Cell, RefCell};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use crate::testing::{Count, OpsHarness, Watchdog};
use crate::{AioContext, IoBufMut};

/// Runs `ctx` until `done`, under a watchdog that says what it waited for.
fn run_until(ctx: &AioContext, what: &str, done: impl FnMut() -> bool) {
    let _dog = Watchdog::arm(what, Duration::from_secs(60));
    ctx.run_until(done).unwrap();
}

/// A new, unconnected IPv4 TCP socket (non-blocking if asked).
fn tcp_socket(nonblocking: bool) -> OwnedFd {
    let flags = if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket takes no pointer; a new fd or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags,
            0,
        )
    };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: socket just made `fd`, which nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The bytes `i..i + len` of a fixed pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A receive posted before anything was sent waits (it has not completed
/// after a few iterations), and completes when the peer writes; a send
/// larger than the socket's buffer goes out whole while the peer reads it
/// (the rest of each short send is sent again), and the receives get
/// every byte in order; a peer that shut its side down gives a receive of
/// 0 bytes.
pub fn a_socket_pair_sends_and_receives(h: &OpsHarness) {
    let ctx = h.context();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let ours = Rc::new(ours);

    let got = Rc::new(RefCell::new(None));
    let g = Rc::clone(&got);
    ctx.recv(&*ours, Vec::with_capacity(64), move |_, n, buf| {
        *g.borrow_mut() = Some((n.map_err(|e| e.raw_os_error()), buf));
    });
    ctx.submit_now().unwrap();
    for _ in 0..3 {
        ctx.poll(false).unwrap();
    }
    assert!(got.borrow().is_none(), "{}: the receive waits", h.name());
    theirs.write_all(b"ping").unwrap();
    run_until(&ctx, "the receive of the peer's ping", || {
        got.borrow().is_some()
    });
    assert_eq!(
        got.borrow_mut().take(),
        Some((Ok(4), b"ping".to_vec())),
        "{}",
        h.name()
    );

    // 4 MiB, far more than a socket pair buffers: the send completes only
    // once the peer (a thread) has read it all.
    let data = pattern(4 << 20);
    let sent = Rc::new(Cell::new(None));
    let s = Rc::clone(&sent);
    ctx.send(&*ours, data.clone(), move |_, n, buf| {
        s.set(Some((n.map_err(|e| e.raw_os_error()), buf.len())));
    });
    let reader = std::thread::spawn(move || {
        let mut all = vec![0u8; 4 << 20];
        theirs.read_exact(&mut all).unwrap();
        (theirs, all)
    });
    run_until(&ctx, "a 4 MiB send to a reading peer", || {
        sent.get().is_some()
    });
    assert_eq!(sent.get(), Some((Ok(4 << 20), 4 << 20)), "{}", h.name());
    let (theirs, all) = reader.join().unwrap();
    assert!(all == data, "{}: the peer read what was sent", h.name());

    // The other way: the peer sends 1 MiB and shuts down; receives (one
    // posted from another's callback) collect it all, then see 0.
    let writer = std::thread::spawn(move || {
        let mut theirs = theirs;
        theirs.write_all(&pattern(1 << 20)).unwrap();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        theirs
    });
    let received = Rc::new(RefCell::new(Vec::new()));
    let ended = Rc::new(Cell::new(false));
    fn next(
        ctx: &AioContext,
        sock: Rc<UnixStream>,
        into: Rc<RefCell<Vec<u8>>>,
        end: Rc<Cell<bool>>,
    ) {
        let s = Rc::clone(&sock);
        ctx.recv(
            &*sock,
            Vec::with_capacity(65536),
            move |ctx, n, buf| match n.unwrap() {
                0 => end.set(true),
                _ => {
                    into.borrow_mut().extend_from_slice(&buf);
                    next(ctx, s, into, end);
                }
            },
        );
    }
    next(
        &ctx,
        Rc::clone(&ours),
        Rc::clone(&received),
        Rc::clone(&ended),
    );
    run_until(&ctx, "1 MiB from the peer, then its end", || ended.get());
    assert!(
        *received.borrow() == pattern(1 << 20),
        "{}: received in order, every byte",
        h.name()
    );
    drop(writer.join().unwrap());
}

/// `accept` and `connect` over loopback TCP, with a blocking and with a
/// non-blocking client socket: both complete, the accepted peer address is
/// the client's, and the two sockets then carry data both ways through
/// `send` and `recv`. A connect to a socket that is bound but does not
/// listen is refused (`ECONNREFUSED`).
pub fn accept_and_connect_over_loopback(h: &OpsHarness) {
    let ctx = h.context();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for nonblocking in [false, true] {
        let accepted = Rc::new(RefCell::new(None));
        let a = Rc::clone(&accepted);
        ctx.accept(&listener, move |_, r| *a.borrow_mut() = Some(r.unwrap()));
        let client = tcp_socket(nonblocking);
        let connected = Rc::new(RefCell::new(None));
        let c = Rc::clone(&connected);
        ctx.connect(&client, addr, move |_, r| {
            *c.borrow_mut() = Some(r.map_err(|e| e.raw_os_error()));
        });
        run_until(&ctx, "an accept and a connect", || {
            accepted.borrow().is_some() && connected.borrow().is_some()
        });
        assert_eq!(
            connected.borrow_mut().take(),
            Some(Ok(())),
            "{} (non-blocking: {nonblocking})",
            h.name()
        );
        let (server, peer) = accepted.borrow_mut().take().unwrap();
        let client = TcpStream::from(client);
        assert_eq!(
            peer,
            Some(client.local_addr().unwrap()),
            "{}: the peer's address",
            h.name()
        );
        let server = Rc::new(TcpStream::from(server));
        let echoed = Rc::new(RefCell::new(None));
        let (e, s) = (Rc::clone(&echoed), Rc::clone(&server));
        // The server receives, then sends back what it got; the client
        // sends, then receives.
        ctx.recv(&*server, Vec::with_capacity(16), move |ctx, n, buf| {
            assert_eq!(n.unwrap(), 5);
            ctx.send(&*s, buf, |_, n, _| assert_eq!(n.unwrap(), 5));
        });
        let client = Rc::new(client);
        let c = Rc::clone(&client);
        ctx.send(&*client, b"hello".to_vec(), move |ctx, n, _| {
            assert_eq!(n.unwrap(), 5);
            ctx.recv(&*c, Vec::with_capacity(16), move |_, n, buf| {
                *e.borrow_mut() = Some((n.unwrap(), buf));
            });
        });
        run_until(&ctx, "hello, there and back", || echoed.borrow().is_some());
        assert_eq!(
            echoed.borrow_mut().take(),
            Some((5, b"hello".to_vec())),
            "{}",
            h.name()
        );
    }

    // Bound, not listening: the kernel answers the SYN with a reset.
    let deaf = tcp_socket(false);
    let any = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `any` is a whole sockaddr_in, ours, of the length given.
    let rc = unsafe {
        libc::bind(
            deaf.as_raw_fd(),
            (&raw const any).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    let deaf_addr: SocketAddr = TcpListener::from(deaf.try_clone().unwrap())
        .local_addr()
        .unwrap();
    let refused = Rc::new(Cell::new(None));
    let r = Rc::clone(&refused);
    let client = tcp_socket(false);
    ctx.connect(&client, deaf_addr, move |_, res| {
        r.set(Some(res.map_err(|e| e.raw_os_error())));
    });
    run_until(&ctx, "a refused connect", || refused.get().is_some());
    assert_eq!(
        refused.get(),
        Some(Err(Some(libc::ECONNREFUSED))),
        "{}",
        h.name()
    );
}

/// A receive, send, accept or connect on a negative fd fails with
/// `EBADF` (never waits: `poll` would skip the fd), a receive from a file
/// that is not a socket with `ENOTSOCK`; a send to a peer that has gone
/// fails with `EPIPE` (and raises no `SIGPIPE`, which would end the test
/// process).
pub fn socket_errors_come_back_as_errors(h: &OpsHarness) {
    let ctx = h.context();
    let got = Rc::new(RefCell::new(Vec::new()));
    let file = std::fs::File::open("/dev/null").unwrap();
    for (what, fd) in [("bad", -1), ("file", file.as_raw_fd())] {
        let g = Rc::clone(&got);
        ctx.recv(fd, Vec::with_capacity(8), move |_, n, buf| {
            g.borrow_mut()
                .push((what, n.map_err(|e| e.raw_os_error()), buf.len()));
        });
    }
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(theirs);
    let g = Rc::clone(&got);
    ctx.send(&ours, vec![1u8; 1024], move |_, n, buf| {
        g.borrow_mut()
            .push(("gone", n.map_err(|e| e.raw_os_error()), buf.len()));
    });
    let g = Rc::clone(&got);
    ctx.send(-1, vec![1u8; 8], move |_, n, buf| {
        g.borrow_mut()
            .push(("send bad", n.map_err(|e| e.raw_os_error()), buf.len()));
    });
    let g = Rc::clone(&got);
    ctx.accept(-1, move |_, r| {
        g.borrow_mut()
            .push(("accept bad", r.map(|_| 0).map_err(|e| e.raw_os_error()), 0));
    });
    let g = Rc::clone(&got);
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    ctx.connect(-1, addr, move |_, r| {
        g.borrow_mut().push((
            "connect bad",
            r.map(|()| 0).map_err(|e| e.raw_os_error()),
            0,
        ));
    });
    run_until(&ctx, "six failing socket requests", || {
        got.borrow().len() == 6
    });
    let mut got = got.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("accept bad", Err(Some(libc::EBADF)), 0),
            ("bad", Err(Some(libc::EBADF)), 0),
            ("connect bad", Err(Some(libc::EBADF)), 0),
            ("file", Err(Some(libc::ENOTSOCK)), 0),
            ("gone", Err(Some(libc::EPIPE)), 1024),
            ("send bad", Err(Some(libc::EBADF)), 8),
        ],
        "{}",
        h.name()
    );
}

/// A buffer that counts its drops.
struct TracedBuf {
    bytes: Vec<u8>,
    drops: Count,
}

impl Drop for TracedBuf {
    fn drop(&mut self) {
        self.drops.hit();
    }
}

// SAFETY: delegates to the Vec, whose heap block does not move while the
// buffer is held.
unsafe impl IoBufMut for TracedBuf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
    unsafe fn set_filled(&mut self, n: usize) {
        // SAFETY: the caller says the first `n` bytes were written.
        unsafe { self.bytes.set_len(n) }
    }
}

/// A receive and an accept that wait, cancelled: each completes once with
/// `ECANCELED` on every path (the pool's worker gives up its `poll`), and
/// the receive's buffer comes back through its callback, never dropped
/// before. The context then still serves a receive on the same socket.
pub fn waiting_socket_requests_are_cancelled(h: &OpsHarness) {
    let ctx = h.context();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let drops = Count::new();
    let results = Rc::new(RefCell::new(Vec::new()));
    let r = Rc::clone(&results);
    let buf = TracedBuf {
        bytes: Vec::with_capacity(8),
        drops: drops.clone(),
    };
    let recv = ctx.recv(&ours, buf, move |_, n, buf| {
        r.borrow_mut()
            .push(("recv", n.map_err(|e| e.raw_os_error()), buf.drops.get()));
    });
    let r = Rc::clone(&results);
    let accept = ctx.accept(&listener, move |_, res| {
        r.borrow_mut()
            .push(("accept", res.map(|_| 0).map_err(|e| e.raw_os_error()), 0));
    });
    ctx.submit_now().unwrap();
    ctx.poll(false).unwrap();
    recv.cancel();
    accept.cancel();
    run_until(&ctx, "the cancelled receive and accept", || {
        results.borrow().len() == 2
    });
    for _ in 0..3 {
        ctx.poll(false).unwrap();
    }
    let mut got = results.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("accept", Err(Some(libc::ECANCELED)), 0),
            ("recv", Err(Some(libc::ECANCELED)), 0),
        ],
        "{}: each once, the buffer not dropped before its callback",
        h.name()
    );
    assert_eq!(drops.get(), 1, "{}: dropped once, after", h.name());

    let again = Rc::new(RefCell::new(None));
    let a = Rc::clone(&again);
    ctx.recv(&ours, Vec::with_capacity(8), move |_, n, buf| {
        *a.borrow_mut() = Some((n.unwrap(), buf));
    });
    theirs.write_all(b"after").unwrap();
    run_until(&ctx, "a receive after the cancel", || {
        again.borrow().is_some()
    });
    assert_eq!(again.borrow_mut().take(), Some((5, b"after".to_vec())));
}

/// A context dropped while a receive and an accept wait returns (the
/// ring's requests are cancelled, the pool's workers stop waiting), runs
/// no callback, and frees the receive's buffer once.
pub fn a_context_dropped_with_socket_requests_waiting_returns(h: &OpsHarness) {
    let ctx = h.context();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (drops, runs) = (Count::new(), Count::new());
    let r = runs.clone();
    let buf = TracedBuf {
        bytes: Vec::with_capacity(8),
        drops: drops.clone(),
    };
    ctx.recv(&ours, buf, move |_, _, _| r.hit());
    let r = runs.clone();
    ctx.accept(&listener, move |_, _| r.hit());
    ctx.submit_now().unwrap();
    ctx.poll(false).unwrap();
    let _dog = Watchdog::arm(
        "the context's drop with a receive and an accept waiting",
        Duration::from_secs(60),
    );
    drop(ctx);
    assert_eq!(runs.get(), 0, "{}: no callback after the drop", h.name());
    assert_eq!(drops.get(), 1, "{}: the buffer freed once", h.name());
    drop((ours, theirs, listener));
}
