//! `churn`: the cost of adding and removing a handler, per pair.
//!
//! Two comparisons, each with aio on every monitor, `raw-epoll` (the
//! reference: `epoll_ctl` `ADD` and `DEL` by hand), `mio` (`register` and
//! `deregister`), `polling` (`add` and `delete`) and `tokio` (an `AsyncFd`
//! made and dropped):
//!
//! * **add + remove**: the pair alone, with one non-blocking turn of the
//!   loop every [`TURN_EVERY`] pairs so that work a loop defers to its next
//!   wait (io_uring queues its requests for it) is paid for too;
//! * **add + turn + remove**: a non-blocking turn of the loop between the
//!   add and the remove, so that every registration reaches the kernel.
//!
//! Each variant adds and removes one eventfd of its own; the context also
//! holds a handler on another eventfd, as a real one would.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use aio::prelude::*;

use crate::env::{Env, Monitor};
use crate::measure::Variant;
use crate::peers::{Fd, polling_add, tokio_runtime, tokio_watch};
use crate::report::{Group, ScenarioReport, Target};
use crate::sys;

/// A non-blocking turn of the loop every this many pairs.
pub const TURN_EVERY: u64 = 64;

/// The reference.
pub const REFERENCE: &str = "raw-epoll";

/// The scenario's one-line description.
pub const ABOUT: &str = "add and remove a handler; figure: ns per add + remove pair";

/// One variant's registration churn.
trait Churn {
    /// Adds and removes the churned fd once.
    fn pair(&mut self) -> io::Result<()>;
    /// Turns the loop once without blocking.
    fn turn(&mut self) -> io::Result<()>;
}

/// Runs `n` pairs, with a turn every [`TURN_EVERY`] or between add and
/// remove.
fn batch(churn: &mut dyn Churn, n: u64, turn_between: bool) -> io::Result<()> {
    for i in 0..n {
        churn.pair()?;
        if !turn_between && i % TURN_EVERY == TURN_EVERY - 1 {
            churn.turn()?;
        }
    }
    churn.turn()
}

/// aio on a monitor.
struct AioChurn {
    ctx: AioContext,
    fd: OwnedFd,
    turn_between: bool,
    _other: EventNotifier,
}

impl AioChurn {
    fn new(monitor: Monitor, turn_between: bool) -> io::Result<AioChurn> {
        let ctx = monitor.context(PollParams::OFF)?;
        let other = EventNotifier::new()?;
        ctx.set_fd_handler(&other, Some(FdHandler::new().on_read(|_| {})))?;
        Ok(AioChurn {
            ctx,
            fd: sys::eventfd()?,
            turn_between,
            _other: other,
        })
    }
}

impl Churn for AioChurn {
    fn pair(&mut self) -> io::Result<()> {
        self.ctx
            .set_fd_handler(&self.fd, Some(FdHandler::new().on_read(|_| {})))?;
        if self.turn_between {
            self.turn()?;
        }
        self.ctx.set_fd_handler(&self.fd, None)
    }

    fn turn(&mut self) -> io::Result<()> {
        self.ctx.poll(false).map(drop)
    }
}

/// `epoll_ctl` by hand.
struct RawChurn {
    epoll: sys::Epoll,
    fd: OwnedFd,
    turn_between: bool,
    _other: OwnedFd,
}

impl RawChurn {
    fn new(turn_between: bool) -> io::Result<RawChurn> {
        let epoll = sys::Epoll::new()?;
        let other = sys::eventfd()?;
        epoll.add(other.as_raw_fd(), 0)?;
        Ok(RawChurn {
            epoll,
            fd: sys::eventfd()?,
            turn_between,
            _other: other,
        })
    }
}

impl Churn for RawChurn {
    fn pair(&mut self) -> io::Result<()> {
        self.epoll.add(self.fd.as_raw_fd(), 1)?;
        if self.turn_between {
            self.turn()?;
        }
        self.epoll.delete(self.fd.as_raw_fd())
    }

    fn turn(&mut self) -> io::Result<()> {
        self.epoll.wait(0).map(|ready| ready.for_each(drop))
    }
}

/// mio's `register` and `deregister`.
struct MioChurn {
    poll: mio::Poll,
    events: mio::Events,
    fd: OwnedFd,
    turn_between: bool,
    _other: OwnedFd,
}

impl MioChurn {
    fn new(turn_between: bool) -> io::Result<MioChurn> {
        let poll = mio::Poll::new()?;
        let other = sys::eventfd()?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&other.as_raw_fd()),
            mio::Token(0),
            mio::Interest::READABLE,
        )?;
        Ok(MioChurn {
            poll,
            events: mio::Events::with_capacity(8),
            fd: sys::eventfd()?,
            turn_between,
            _other: other,
        })
    }
}

impl Churn for MioChurn {
    fn pair(&mut self) -> io::Result<()> {
        let raw = self.fd.as_raw_fd();
        self.poll.registry().register(
            &mut mio::unix::SourceFd(&raw),
            mio::Token(1),
            mio::Interest::READABLE,
        )?;
        if self.turn_between {
            self.turn()?;
        }
        self.poll
            .registry()
            .deregister(&mut mio::unix::SourceFd(&raw))
    }

    fn turn(&mut self) -> io::Result<()> {
        crate::peers::mio_poll(&mut self.poll, &mut self.events, Some(Duration::ZERO))
    }
}

/// polling's `add` and `delete`.
struct PollingChurn {
    poller: polling::Poller,
    events: polling::Events,
    fd: OwnedFd,
    turn_between: bool,
    other: OwnedFd,
}

impl PollingChurn {
    fn new(turn_between: bool) -> io::Result<PollingChurn> {
        let poller = polling::Poller::new()?;
        let other = sys::eventfd()?;
        polling_add(&poller, other.as_raw_fd(), 0)?;
        Ok(PollingChurn {
            poller,
            events: polling::Events::new(),
            fd: sys::eventfd()?,
            turn_between,
            other,
        })
    }
}

impl Churn for PollingChurn {
    fn pair(&mut self) -> io::Result<()> {
        polling_add(&self.poller, self.fd.as_raw_fd(), 1)?;
        if self.turn_between {
            self.turn()?;
        }
        self.poller.delete(&self.fd)
    }

    fn turn(&mut self) -> io::Result<()> {
        self.events.clear();
        self.poller
            .wait(&mut self.events, Some(Duration::ZERO))
            .map(drop)
    }
}

impl Drop for PollingChurn {
    fn drop(&mut self) {
        let _ = self.poller.delete(&self.other);
    }
}

/// tokio: an `AsyncFd` made and dropped on a current-thread runtime.
struct TokioChurn {
    rt: tokio::runtime::Runtime,
    fd: OwnedFd,
    turn_between: bool,
    // Keeps a registration alive, as the other variants do.
    other: RefCell<Option<tokio::io::unix::AsyncFd<Fd>>>,
    _other_fd: OwnedFd,
    turns: Cell<u64>,
}

impl TokioChurn {
    fn new(turn_between: bool) -> io::Result<TokioChurn> {
        let rt = tokio_runtime()?;
        let other_fd = sys::eventfd()?;
        let other = {
            let _guard = rt.enter();
            tokio_watch(other_fd.as_raw_fd())?
        };
        Ok(TokioChurn {
            rt,
            fd: sys::eventfd()?,
            turn_between,
            other: RefCell::new(Some(other)),
            _other_fd: other_fd,
            turns: Cell::new(0),
        })
    }
}

impl Churn for TokioChurn {
    fn pair(&mut self) -> io::Result<()> {
        let raw = self.fd.as_raw_fd();
        if self.turn_between {
            let turns = &self.turns;
            return self.rt.block_on(async {
                let afd = tokio_watch(raw)?;
                tokio::task::yield_now().await;
                turns.set(turns.get() + 1);
                drop(afd);
                Ok(())
            });
        }
        let _guard = self.rt.enter();
        drop(tokio_watch(raw)?);
        Ok(())
    }

    fn turn(&mut self) -> io::Result<()> {
        let turns = &self.turns;
        self.rt.block_on(async {
            tokio::task::yield_now().await;
            turns.set(turns.get() + 1);
        });
        Ok(())
    }
}

impl Drop for TokioChurn {
    fn drop(&mut self) {
        let _guard = self.rt.enter();
        self.other.borrow_mut().take();
    }
}

/// The variants, by name.
type Churns = Vec<(String, RefCell<Box<dyn Churn>>)>;

fn churns(env: &Env<'_>, turn_between: bool) -> io::Result<Churns> {
    let wants = |name: &str| name == REFERENCE || env.wants(name);
    let mut churns: Vec<(String, Box<dyn Churn>)> =
        vec![(REFERENCE.to_owned(), Box::new(RawChurn::new(turn_between)?))];
    for monitor in Monitor::ALL {
        if wants(monitor.variant()) {
            churns.push((
                monitor.variant().to_owned(),
                Box::new(AioChurn::new(monitor, turn_between)?),
            ));
        }
    }
    if wants("mio") {
        churns.push(("mio".to_owned(), Box::new(MioChurn::new(turn_between)?)));
    }
    if wants("polling") {
        churns.push((
            "polling".to_owned(),
            Box::new(PollingChurn::new(turn_between)?),
        ));
    }
    if wants("tokio") {
        churns.push(("tokio".to_owned(), Box::new(TokioChurn::new(turn_between)?)));
    }
    Ok(churns
        .into_iter()
        .map(|(n, c)| (n, RefCell::new(c)))
        .collect())
}

/// Measures both comparisons.
///
/// # Errors
///
/// Setting up a loop failed, or a registration was refused.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("churn", 2);
    let mut report = ScenarioReport {
        name: "churn".to_owned(),
        about: ABOUT.to_owned(),
        ..ScenarioReport::default()
    };
    for turn_between in [false, true] {
        let (id, title) = if turn_between {
            (
                "churn/turn",
                "churn: add + non-blocking turn of the loop + remove",
            )
        } else {
            ("churn/pair", "churn: add + remove")
        };
        let churns = churns(env, turn_between)?;
        let mut variants: Vec<Variant<'_>> = churns
            .iter()
            .map(|(name, c)| {
                Variant::new(name.clone(), move |n| {
                    batch(&mut **c.borrow_mut(), n, turn_between)
                })
            })
            .collect();
        let rows = env.measure(title, &mut variants)?;
        drop(variants);
        let notes = if turn_between {
            vec!["every registration reaches the kernel before it is removed".to_owned()]
        } else {
            vec![
                format!("a non-blocking turn of the loop every {TURN_EVERY} pairs, counted"),
                "io_uring queues adds and removes for its next wait: a handler added and removed \
                 between two waits costs it no system call"
                    .to_owned(),
                "aio reuses a removed handler's node for the next add (no allocation for callbacks \
                 that capture nothing that allocates); tokio allocates the registration; on poll \
                 and io_uring aio's add also takes one fstat (the fd's identity, for stale_fds and \
                 the closed-fd check), which epoll makes for itself"
                    .to_owned(),
            ]
        };
        let group = Group::new(id, title, "ns per add + remove", REFERENCE, rows, notes);
        if !turn_between {
            for (monitor, limit) in [(Monitor::Epoll, 1.1), (Monitor::IoUring, 0.8)] {
                let v = monitor.variant();
                if group.row(v).is_some() {
                    report.targets.push(
                        Target::at_most(
                            id,
                            v,
                            format!("<= {limit:.2}x {REFERENCE}"),
                            group.ratio(v, REFERENCE),
                            limit,
                            "x",
                        )
                        .note_if_not_met(
                            "the same two epoll_ctl calls as the raw loop; the loop's own work \
                             per pair is about 45 ns alone (on a monitor that does nothing) and \
                             110 to 130 ns between the system calls, where a profile finds no hot \
                             spot of its own",
                        ),
                    );
                }
            }
        }
        report.groups.push(group);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_churns() {
        Env::quick(|env| {
            for turn_between in [false, true] {
                for (name, churn) in churns(env, turn_between).unwrap() {
                    batch(&mut **churn.borrow_mut(), 200, turn_between)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                }
            }
        });
    }

    #[test]
    fn an_aio_handler_is_gone_after_its_pair() {
        let mut churn = AioChurn::new(Monitor::Epoll, false).unwrap();
        churn.pair().unwrap();
        assert_eq!(
            churn.ctx.handler_count(),
            1,
            "only the other handler is left"
        );
    }
}
