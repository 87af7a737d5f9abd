//! `async`: the async layer (`aio-async`) against tokio's current-thread
//! runtime, interleaved in one run:
//!
//! * **socket**: async ping-pong over a Unix socket pair with a partner
//!   thread that echoes each byte (it spins 50 us on a non-blocking read,
//!   then blocks, the same partner for every variant): `aio-async` with
//!   polling on (`PollParams::IOTHREAD`), `aio-async-blocking` with
//!   polling off, and `tokio` (`readable` + `try_read`, as `AsyncFd`
//!   users do). Figure: the round trip.
//! * **ring**: async ping-pong over shared memory with a partner thread
//!   that spins: `aio-async` awaits a `PollSource` (the loop's busy polling
//!   checks the mailbox; the partner notifies only when the loop is not
//!   polling), `tokio` awaits a `Notify` the partner always notifies, and
//!   the `spin-floor` spins on the mailbox. Figure: the round trip.
//! * **spawn**: spawning a trivial task and awaiting its handle, from the
//!   runtime's own `block_on`.
//! * **wake**: a task that wakes itself (`yield_now`) and is polled again:
//!   a same-thread wake through the run queue, which must allocate nothing.
//! * **tcp-echo**: an echo server on a partner thread (aio-async polling
//!   on and off, tokio), a blocking client on the home thread with one
//!   request in flight on each of 4 loopback connections. Figure: ns per
//!   request (the inverse of requests per second).

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aio::prelude::*;
use aio_async::{Async, PollSource, Runtime, spawn_local, yield_now};

use crate::env::{Env, Monitor};
use crate::measure::Variant;
use crate::peers::tokio_runtime;
use crate::report::{Group, ScenarioReport, Target};

/// The reference of every group.
pub const REFERENCE: &str = "tokio";
/// aio-async with polling on.
const POLLING: &str = "aio-async";
/// aio-async with polling off.
const BLOCKING: &str = "aio-async-blocking";

const SOCKET: &str = "async/socket";
const RING: &str = "async/ring";
const ECHO: &str = "async/tcp-echo";
/// Both threads spinning on shared memory: the ring group's reference.
const SPIN_FLOOR: &str = "spin-floor";
/// The ring group's polling: a ceiling above a blocking wake-up on a
/// virtual machine (40 to 105 us), so that a poll time can grow there.
const RING_POLL: PollParams = PollParams {
    max_ns: 262_144,
    grow: 0,
    shrink: 0,
};
const SPAWN: &str = "async/spawn";
const WAKE: &str = "async/wake";

/// The scenario's one-line description.
pub const ABOUT: &str = "aio-async against tokio current_thread: ping-pong over a socket pair \
    (polling off and on), spawn + join, same-thread wake; figure: ns per iteration";

/// How long the partner spins on its socket before it blocks.
const PARTNER_SPIN: Duration = Duration::from_micros(50);

/// The partner: echoes every byte it reads until the other end closes.
fn echo_partner(sock: UnixStream) -> io::Result<()> {
    sock.set_nonblocking(true)?;
    let mut buf = [0u8; 64];
    let mut sock = &sock;
    loop {
        let spin_until = Instant::now() + PARTNER_SPIN;
        let n = loop {
            match sock.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > spin_until {
                        wait_readable(sock.as_raw_fd())?;
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(());
        }
        sock.write_all(&buf[..n])?;
    }
}

/// Blocks until `fd` is readable.
fn wait_readable(fd: i32) -> io::Result<()> {
    let mut pfd = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `pfd` is a live array of one pollfd for the duration of the
    // call; `fd` is a socket the caller owns.
    let n = unsafe { libc::poll(pfd.as_mut_ptr(), 1, -1) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// A socket pair whose far end an echo partner thread serves.
fn partnered(env: &Env<'_>, i: usize) -> io::Result<(UnixStream, std::thread::JoinHandle<()>)> {
    let (home, far) = UnixStream::pair()?;
    let partner = env.cpus.spawn_partner(i, "async-echo", move || {
        let _ = echo_partner(far);
    })?;
    Ok((home, partner))
}

/// aio-async's side of the ping-pong: `n` round trips of one byte.
fn aio_round_trips(rt: &Runtime, sock: &Async<UnixStream>, n: u64) -> io::Result<()> {
    rt.block_on(async {
        let mut byte = [0u8; 1];
        for _ in 0..n {
            sock.write_with(|mut s| s.write(&[1])).await?;
            let got = sock.read_with(|mut s| s.read(&mut byte)).await?;
            if got != 1 {
                return Err(io::Error::other("the partner hung up"));
            }
        }
        Ok(())
    })?
}

/// tokio's side: the same, with `writable`/`readable` and `try_*`.
fn tokio_round_trips(
    rt: &tokio::runtime::Runtime,
    sock: &tokio::net::UnixStream,
    n: u64,
) -> io::Result<()> {
    rt.block_on(async {
        let mut byte = [0u8; 1];
        for _ in 0..n {
            loop {
                match sock.try_write(&[1]) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.writable().await?,
                    Err(e) => return Err(e),
                }
            }
            loop {
                sock.readable().await?;
                match sock.try_read(&mut byte) {
                    Ok(1) => break,
                    Ok(_) => return Err(io::Error::other("the partner hung up")),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    })
}

fn socket_group(env: &Env<'_>) -> io::Result<Group> {
    let id = SOCKET;
    let title = "async: ping-pong over a socket pair, echo partner thread";
    let mut partners = Vec::new();
    let mut aio = Vec::new();
    for (i, (name, params)) in [(POLLING, PollParams::IOTHREAD), (BLOCKING, PollParams::OFF)]
        .into_iter()
        .enumerate()
    {
        if !env.wants(name) {
            continue;
        }
        let (home, partner) = partnered(env, i)?;
        partners.push(partner);
        let rt = Runtime::new(Monitor::Auto.context(params)?);
        aio.push((name, rt, Async::new(home)?));
    }
    let tokio_rt = tokio_runtime()?;
    let tokio_sock = if env.wants(REFERENCE) {
        let (home, partner) = partnered(env, 2)?;
        partners.push(partner);
        home.set_nonblocking(true)?;
        let _guard = tokio_rt.enter();
        Some(tokio::net::UnixStream::from_std(home)?)
    } else {
        None
    };
    let mut variants: Vec<Variant<'_>> = Vec::new();
    for (name, rt, sock) in &aio {
        variants.push(Variant::new(*name, move |n| aio_round_trips(rt, sock, n)));
    }
    if let Some(sock) = &tokio_sock {
        let rt = &tokio_rt;
        variants.push(Variant::new(REFERENCE, move |n| {
            tokio_round_trips(rt, sock, n)
        }));
    }
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    // Closing the home ends hang the partners up; they exit.
    drop(aio);
    drop(tokio_sock);
    for partner in partners {
        let _ = partner.join();
    }
    let notes = vec![
        format!(
            "the partner spins {} us on a non-blocking read, then blocks in poll(2); \
             {POLLING}: PollParams::IOTHREAD (max 32768 ns)",
            PARTNER_SPIN.as_micros()
        ),
        "aio-async and tokio on the same kind of partner; aio on the facade's automatic monitor"
            .to_owned(),
    ];
    Ok(Group::new(
        id,
        title,
        "ns per round trip",
        REFERENCE,
        rows,
        notes,
    ))
}

fn spawn_group(env: &Env<'_>) -> io::Result<Group> {
    let id = SPAWN;
    let title = "async: spawn a trivial task and await its handle";
    let rt = Runtime::new(Monitor::Auto.context(PollParams::OFF)?);
    let tokio_rt = tokio_runtime()?;
    let mut variants: Vec<Variant<'_>> = Vec::new();
    if env.wants(BLOCKING) {
        let rt = &rt;
        variants.push(Variant::new(BLOCKING, move |n| {
            rt.block_on(async {
                for _ in 0..n {
                    spawn_local(async {}).await?;
                }
                Ok(())
            })?
        }));
    }
    if env.wants(REFERENCE) {
        let rt = &tokio_rt;
        variants.push(Variant::new(REFERENCE, move |n| {
            rt.block_on(async {
                for _ in 0..n {
                    tokio::spawn(async {}).await.map_err(io::Error::other)?;
                }
                Ok(())
            })
        }));
    }
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    let notes =
        vec!["each task: one allocation (its cell), spawned and joined from block_on".to_owned()];
    Ok(Group::new(id, title, "ns per task", REFERENCE, rows, notes))
}

fn wake_group(env: &Env<'_>) -> io::Result<Group> {
    let id = WAKE;
    let title = "async: a task wakes itself (yield_now) and is polled again";
    let rt = Runtime::new(Monitor::Auto.context(PollParams::OFF)?);
    let polls = Rc::new(Cell::new(0u64));
    let p = Rc::clone(&polls);
    rt.spawn_local(async move {
        loop {
            p.set(p.get() + 1);
            yield_now().await;
        }
    })
    .detach();
    let tokio_rt = tokio_runtime()?;
    let mut variants: Vec<Variant<'_>> = Vec::new();
    if env.wants(BLOCKING) {
        let (rt, polls) = (&rt, &polls);
        variants.push(
            Variant::new(BLOCKING, move |n| {
                let target = polls.get() + n;
                rt.context().run_until(|| polls.get() >= target)
            })
            .expect_no_allocs(),
        );
    }
    if env.wants(REFERENCE) {
        let rt = &tokio_rt;
        variants.push(Variant::new(REFERENCE, move |n| {
            rt.block_on(async {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
            });
            Ok(())
        }));
    }
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    let notes = vec![
        "aio-async: one loop iteration per wake (the task runs from the loop's bottom-half phase)"
            .to_owned(),
    ];
    Ok(Group::new(id, title, "ns per wake", REFERENCE, rows, notes))
}

/// Measures the three groups and reads the targets.
///
/// # Errors
///
/// Setting up a context, a runtime, a socket or a partner thread failed,
/// or a round trip did not come back.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("async", 5);
    let socket = socket_group(env)?;
    let ring = ring_group(env)?;
    let spawn = spawn_group(env)?;
    let wake = wake_group(env)?;
    let echo = echo_group(env)?;
    let targets = vec![
        Target::at_most(
            SOCKET,
            BLOCKING,
            "polling off: round trip <= 1.0x tokio",
            socket.ratio(BLOCKING, REFERENCE),
            1.0,
            "x",
        ),
        Target::at_most(
            SOCKET,
            POLLING,
            "polling on: round trip <= 0.2x tokio",
            socket.ratio(POLLING, REFERENCE),
            0.2,
            "x",
        ),
        Target::at_most(
            RING,
            POLLING,
            "poll source: round trip <= 2.0x spin-floor",
            ring.ratio(POLLING, SPIN_FLOOR),
            2.0,
            "x",
        ),
        Target::at_most(
            SPAWN,
            BLOCKING,
            "spawn + join <= 0.7x tokio",
            spawn.ratio(BLOCKING, REFERENCE),
            0.7,
            "x",
        ),
        Target::at_most(
            WAKE,
            BLOCKING,
            "same-thread wake: 0 allocations",
            wake.row(BLOCKING).and_then(|m| m.allocs_per_iter),
            0.0,
            "allocs/iter",
        ),
        Target::at_most(
            ECHO,
            BLOCKING,
            "polling off: requests/s >= 1.0x tokio (ns per request <= 1.0x)",
            echo.ratio(BLOCKING, REFERENCE),
            1.0,
            "x",
        ),
        Target::at_most(
            ECHO,
            POLLING,
            "polling on: requests/s >= 1.0x tokio (ns per request <= 1.0x)",
            echo.ratio(POLLING, REFERENCE),
            1.0,
            "x",
        ),
    ];
    Ok(ScenarioReport {
        name: "async".to_owned(),
        about: ABOUT.to_owned(),
        groups: vec![socket, ring, spawn, wake, echo],
        targets,
        ..ScenarioReport::default()
    })
}

/// The shared memory of a ring ping-pong: the home side bumps `ping`, the
/// partner answers by copying it to `pong`, and notifies the home side
/// (its way) if `wants_notify` says so.
#[derive(Default)]
struct Mailbox {
    ping: AtomicU64,
    pong: AtomicU64,
    wants_notify: AtomicBool,
    /// Set while a batch runs; the partner parks otherwise.
    active: AtomicBool,
    stop: AtomicBool,
}

impl Mailbox {
    /// Whether the partner has answered every ping. SeqCst: with the
    /// partner's store of `pong` and load of `wants_notify`, and the home
    /// side's store of `wants_notify` (poll_end), either the last check
    /// before the home side blocks sees the answer or the partner sees that
    /// it must notify.
    fn answered(&self) -> bool {
        self.pong.load(Ordering::SeqCst) == self.ping.load(Ordering::Relaxed)
    }

    fn send(&self) {
        self.ping.fetch_add(1, Ordering::SeqCst);
    }
}

/// The partner of a ring ping-pong: spins on `ping` while a batch runs.
struct RingPartner {
    mailbox: Arc<Mailbox>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RingPartner {
    fn spawn(
        env: &Env<'_>,
        i: usize,
        wants_notify: bool,
        notify: impl Fn() + Send + 'static,
    ) -> io::Result<RingPartner> {
        let mailbox = Arc::new(Mailbox::default());
        mailbox.wants_notify.store(wants_notify, Ordering::SeqCst);
        let m = Arc::clone(&mailbox);
        let thread = env.cpus.spawn_partner(i, "async-ring", move || {
            while !m.stop.load(Ordering::Acquire) {
                if !m.active.load(Ordering::Acquire) {
                    std::thread::park();
                    continue;
                }
                let ping = m.ping.load(Ordering::SeqCst);
                if ping != m.pong.load(Ordering::Relaxed) {
                    m.pong.store(ping, Ordering::SeqCst);
                    if m.wants_notify.load(Ordering::SeqCst) {
                        notify();
                    }
                }
                std::hint::spin_loop();
            }
        })?;
        Ok(RingPartner {
            mailbox,
            thread: Some(thread),
        })
    }

    /// Wakes the partner for a batch: `f` runs while it spins.
    fn batch<R>(&self, f: impl FnOnce(&Mailbox) -> R) -> R {
        self.mailbox.active.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        let r = f(&self.mailbox);
        self.mailbox.active.store(false, Ordering::Release);
        r
    }
}

impl Drop for RingPartner {
    fn drop(&mut self) {
        self.mailbox.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Untimed round trips at the start of each ring batch: the partner is
/// awake and spinning before the clock starts.
const RING_WARM_UP: u64 = 64;

/// aio-async's side of the ring ping-pong: a task awaits a poll source
/// whose check is the mailbox.
fn aio_ring_trips(
    rt: &Runtime,
    source: &PollSource,
    partner: &RingPartner,
    n: u64,
) -> io::Result<Duration> {
    partner.batch(|m| {
        rt.block_on(async {
            let mut start = Instant::now();
            for i in 0..RING_WARM_UP + n {
                if i == RING_WARM_UP {
                    start = Instant::now();
                }
                m.send();
                source.ready().await?;
            }
            Ok(start.elapsed())
        })?
    })
}

fn ring_group(env: &Env<'_>) -> io::Result<Group> {
    let id = RING;
    let title = "async: ping-pong over shared memory, partner thread spinning";
    // aio-async: a poll source whose hooks turn the partner's notifications
    // off while the loop polls.
    let aio = if env.wants(POLLING) {
        let rt = Runtime::new(Monitor::Auto.context(RING_POLL)?);
        let notifier: Arc<std::sync::OnceLock<Arc<aio::EventNotifier>>> = Arc::default();
        let n = Arc::clone(&notifier);
        let partner = RingPartner::spawn(env, 0, true, move || {
            if let Some(n) = n.get() {
                let _ = n.set();
            }
        })?;
        let (check, begin, end) = (
            Arc::clone(&partner.mailbox),
            Arc::clone(&partner.mailbox),
            Arc::clone(&partner.mailbox),
        );
        let source = PollSource::new(move || check.answered())?
            .on_poll_begin(move || begin.wants_notify.store(false, Ordering::SeqCst))
            .on_poll_end(move || end.wants_notify.store(true, Ordering::SeqCst));
        let _ = notifier.set(source.notifier());
        Some((rt, source, partner))
    } else {
        None
    };
    // tokio: a task woken by `Notify`, which the partner always notifies.
    let tokio_rt = tokio_runtime()?;
    let tokio_side = if env.wants(REFERENCE) {
        let notify = Arc::new(tokio::sync::Notify::new());
        let n = Arc::clone(&notify);
        let partner = RingPartner::spawn(env, 1, true, move || n.notify_one())?;
        Some((notify, partner))
    } else {
        None
    };
    // The spin floor: the home thread spins on the mailbox itself.
    let spin = if env.wants(SPIN_FLOOR) {
        Some(RingPartner::spawn(env, 2, false, || {})?)
    } else {
        None
    };
    let mut variants: Vec<Variant<'_>> = Vec::new();
    if let Some((rt, source, partner)) = &aio {
        variants.push(
            Variant::self_timed(POLLING, move |n| aio_ring_trips(rt, source, partner, n))
                .expect_no_allocs(),
        );
    }
    if let Some((notify, partner)) = &tokio_side {
        let rt = &tokio_rt;
        variants.push(Variant::self_timed(REFERENCE, move |n| {
            partner.batch(|m| {
                rt.block_on(async {
                    let mut start = Instant::now();
                    for i in 0..RING_WARM_UP + n {
                        if i == RING_WARM_UP {
                            start = Instant::now();
                        }
                        m.send();
                        while !m.answered() {
                            notify.notified().await;
                        }
                    }
                    Ok(start.elapsed())
                })
            })
        }));
    }
    if let Some(partner) = &spin {
        variants.push(
            Variant::self_timed(SPIN_FLOOR, move |n| {
                partner.batch(|m| {
                    let mut start = Instant::now();
                    for i in 0..RING_WARM_UP + n {
                        if i == RING_WARM_UP {
                            start = Instant::now();
                        }
                        m.send();
                        while !m.answered() {
                            std::hint::spin_loop();
                        }
                    }
                    Ok(start.elapsed())
                })
            })
            .expect_no_allocs(),
        );
    }
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    drop((aio, tokio_side, spin));
    let notes = vec![
        format!(
            "{POLLING}: a PollSource on the mailbox, polling max {} ns, notifier only while the \
             loop is not polling (virtio style); {REFERENCE}: Notify::notify_one on every answer; \
             {SPIN_FLOOR}: both threads spin",
            RING_POLL.max_ns
        ),
        format!("each batch starts with {RING_WARM_UP} untimed round trips"),
    ];
    Ok(Group::new(
        id,
        title,
        "ns per round trip",
        SPIN_FLOOR,
        rows,
        notes,
    ))
}

/// Requests in flight: one per connection.
const CONNECTIONS: usize = 4;
/// The size of one request (and its echo).
const REQUEST: usize = 64;

/// An echo server on a partner thread: serves `CONNECTIONS` connections
/// until each hangs up, then the thread ends.
enum Server {
    AioAsync(PollParams),
    Tokio,
}

fn spawn_echo_server(
    env: &Env<'_>,
    i: usize,
    server: Server,
) -> io::Result<(SocketAddr, std::thread::JoinHandle<io::Result<()>>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = env.cpus.spawn_partner(i, "async-echo-server", move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        tx.send(listener.local_addr()?)
            .map_err(|_| io::Error::other("the bench went away"))?;
        match server {
            Server::AioAsync(params) => aio_echo_server(listener, params),
            Server::Tokio => tokio_echo_server(listener),
        }
    })?;
    let addr = rx
        .recv()
        .map_err(|_| io::Error::other("the echo server did not start"))?;
    Ok((addr, thread))
}

fn aio_echo_server(listener: std::net::TcpListener, params: PollParams) -> io::Result<()> {
    let rt = Runtime::new(Monitor::Auto.context(params)?);
    rt.block_on(async {
        let listener = Async::new(listener)?;
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            let (stream, _) = listener.read_with(|l| l.accept()).await?;
            stream.set_nodelay(true)?;
            let stream = Async::new(stream)?;
            conns.push(spawn_local(async move {
                let mut buf = [0u8; 4096];
                loop {
                    let n = stream.read_with(|mut s| s.read(&mut buf)).await?;
                    if n == 0 {
                        return Ok::<_, io::Error>(());
                    }
                    let mut done = 0;
                    while done < n {
                        done += stream.write_with(|mut s| s.write(&buf[done..n])).await?;
                    }
                }
            }));
        }
        for conn in conns {
            conn.await??;
        }
        Ok(())
    })?
}

fn tokio_echo_server(listener: std::net::TcpListener) -> io::Result<()> {
    let rt = tokio_runtime()?;
    rt.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            conns.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    stream.readable().await?;
                    let n = match stream.try_read(&mut buf) {
                        Ok(0) => return Ok::<_, io::Error>(()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    };
                    let mut done = 0;
                    while done < n {
                        match stream.try_write(&buf[done..n]) {
                            Ok(m) => done += m,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                stream.writable().await?;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }));
        }
        for conn in conns {
            conn.await.map_err(io::Error::other)??;
        }
        Ok(())
    })
}

/// The client side, on the home thread: `CONNECTIONS` blocking sockets.
struct EchoClient {
    conns: Vec<std::net::TcpStream>,
}

impl EchoClient {
    fn connect(addr: SocketAddr) -> io::Result<EchoClient> {
        let conns = (0..CONNECTIONS)
            .map(|_| {
                let s = std::net::TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                Ok(s)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(EchoClient { conns })
    }

    /// `n` requests, one in flight per connection: each round writes a
    /// request on every connection, then reads every echo.
    fn requests(&mut self, n: u64) -> io::Result<()> {
        let mut request = [0u8; REQUEST];
        let mut reply = [0u8; REQUEST];
        let mut left = n;
        let mut seq = 0u8;
        while left > 0 {
            let k = (left as usize).min(CONNECTIONS);
            for conn in &mut self.conns[..k] {
                seq = seq.wrapping_add(1);
                request[0] = seq;
                conn.write_all(&request)?;
            }
            for conn in &mut self.conns[..k] {
                conn.read_exact(&mut reply)?;
            }
            left -= k as u64;
        }
        Ok(())
    }
}

fn echo_group(env: &Env<'_>) -> io::Result<Group> {
    let id = ECHO;
    let title = "async: TCP echo over loopback, 4 connections, server on a partner thread";
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (i, (name, server)) in [
        (POLLING, Server::AioAsync(PollParams::IOTHREAD)),
        (BLOCKING, Server::AioAsync(PollParams::OFF)),
        (REFERENCE, Server::Tokio),
    ]
    .into_iter()
    .enumerate()
    {
        if !env.wants(name) {
            continue;
        }
        let (addr, thread) = spawn_echo_server(env, i, server)?;
        servers.push(thread);
        clients.push((name, std::cell::RefCell::new(EchoClient::connect(addr)?)));
    }
    let mut variants: Vec<Variant<'_>> = clients
        .iter()
        .map(|(name, client)| Variant::new(*name, move |n| client.borrow_mut().requests(n)))
        .collect();
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    // Hanging up ends the servers.
    drop(clients);
    for server in servers {
        server
            .join()
            .map_err(|_| io::Error::other("an echo server panicked"))??;
    }
    let notes = vec![
        format!(
            "a blocking client on the home thread keeps one {REQUEST}-byte request in flight on \
             each of {CONNECTIONS} connections; requests per second = 1e9 / ns per request"
        ),
        format!(
            "{POLLING}: PollParams::IOTHREAD; {BLOCKING}: polling off; {REFERENCE}: \
             current_thread, readable + try_read"
        ),
    ];
    Ok(Group::new(
        id,
        title,
        "ns per request",
        REFERENCE,
        rows,
        notes,
    ))
}
