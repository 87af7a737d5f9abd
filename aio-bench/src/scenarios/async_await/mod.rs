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
//!
//! This file holds the socket, spawn and wake forms and runs them all;
//! `ring.rs` and `echo.rs` hold the two forms with partners of their own.

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

mod echo;
mod ring;

use echo::echo_group;
use ring::ring_group;

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
