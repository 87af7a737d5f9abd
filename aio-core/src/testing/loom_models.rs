//! Loom models of the cross-thread parts of a context (built only with
//! `RUSTFLAGS="--cfg loom"`, run by `cargo test -p aio-core --release --lib
//! loom_`).
//!
//! Under `cfg(loom)` the atomics and the mutex of `notify.rs`, `bh.rs` and
//! `remote.rs` come from loom (through `sync.rs`), so these models explore
//! every interleaving (and every weak-memory outcome loom knows) of the code
//! that ships. They are unit tests, not integration tests, because
//! `NotifyState` is crate-private; but apart from the first model, which
//! checks the protocol alone, they drive a real [`AioContext`] through its
//! public API: `poll` (with the real announce / wait / withdraw / accept
//! sequence of `iteration.rs`), bottom halves, `Remote` and `RemoteBh`.
//! Only the kernel is replaced: a monitor that watches nothing but the
//! doorbell, and a doorbell whose ring and wait are a loom mutex and
//! condition variable, so that a lost wake-up shows as a deadlock, which
//! loom reports.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::sync::{Condvar, Mutex};
use ::loom::thread;

use crate::doorbell::Doorbell;
use crate::notify::NotifyState;
use crate::{
    AioContext, ContextBuilder, FdMonitor, Gone, ManualClock, Pending, Readiness, ReadyEvent,
    Registration, Token,
};

/// The fd number the model's doorbell claims: never opened, never checked.
const BELL_FD: RawFd = 1 << 30;

/// The kernel side of the doorbell: a flag under a mutex, with a condition
/// variable to block on.
#[derive(Default)]
struct Bell {
    rung: Mutex<bool>,
    changed: Condvar,
    rings: AtomicUsize,
}

impl Bell {
    fn ring(&self) {
        self.rings.fetch_add(1, Ordering::Relaxed);
        *self.rung.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn drain(&self) {
        *self.rung.lock().unwrap() = false;
    }

    /// Blocks until the bell is rung; a lost wake-up is a deadlock here.
    fn wait_rung(&self) {
        let mut rung = self.rung.lock().unwrap();
        while !*rung {
            rung = self.changed.wait(rung).unwrap();
        }
    }

    fn is_rung(&self) -> bool {
        *self.rung.lock().unwrap()
    }
}

struct BellDoorbell(Arc<Bell>);

impl Doorbell for BellDoorbell {
    fn ring(&self) {
        self.0.ring();
    }

    fn drain(&self) {
        self.0.drain();
    }

    fn raw_fd(&self) -> RawFd {
        BELL_FD
    }
}

/// A monitor that watches only the doorbell: a wait without a timeout
/// blocks until it rings.
struct BellMonitor {
    bell: Arc<Bell>,
    token: Option<Token>,
    blocking_waits: Rc<Cell<usize>>,
}

impl FdMonitor for BellMonitor {
    fn name(&self) -> &'static str {
        "loom"
    }

    fn update(
        &mut self,
        fd: RawFd,
        _old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        assert_eq!(fd, BELL_FD, "the models register no other fd");
        self.token = new.map(|r| r.token);
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        match timeout {
            None => {
                self.blocking_waits.set(self.blocking_waits.get() + 1);
                self.bell.wait_rung();
            }
            Some(t) => assert!(t.is_zero(), "the models arm no timer"),
        }
        if let (true, Some(token)) = (self.bell.is_rung(), self.token) {
            events.push(ReadyEvent {
                token,
                readiness: Readiness::READABLE,
            });
        }
        Ok(())
    }

    fn pending(&mut self) -> Pending {
        Pending::Unknown
    }
}

/// A context on the model's monitor and doorbell.
struct Model {
    ctx: AioContext,
    bell: Arc<Bell>,
    blocking_waits: Rc<Cell<usize>>,
}

impl Model {
    fn new() -> Model {
        let bell = Arc::new(Bell::default());
        let blocking_waits = Rc::new(Cell::new(0));
        let monitor = BellMonitor {
            bell: Arc::clone(&bell),
            token: None,
            blocking_waits: Rc::clone(&blocking_waits),
        };
        let ctx = ContextBuilder::new(Box::new(monitor))
            .doorbell(Box::new(BellDoorbell(Arc::clone(&bell))))
            .timer_slack(None)
            // Time stands still: a model must be deterministic, and the
            // loop's decisions must not depend on how fast loom runs it.
            .clock(ManualClock::new())
            .build()
            .expect("the model's context");
        Model {
            ctx,
            bell,
            blocking_waits,
        }
    }
}

/// Runs `f` under loom with a bound on preemptions (exhaustive search of
/// the bigger models takes too long; bugs of this kind need few).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Counts drops across threads.
struct Probe(Arc<AtomicUsize>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// (a) The protocol alone: a notifier racing one announce / wait /
/// withdraw / accept sequence. The home thread blocks only when `announce`
/// allows it, and then the notifier must ring (else loom finds the
/// deadlock); a burst of notifications rings at most once; and the
/// notification is accepted in this iteration or still pending after it.
#[test]
fn loom_notify_protocol_never_loses_a_wakeup() {
    ::loom::model(|| {
        let state = Arc::new(NotifyState::default());
        let bell = Arc::new(Bell::default());
        let (s, b) = (Arc::clone(&state), Arc::clone(&bell));
        let notifier = thread::spawn(move || {
            for _ in 0..2 {
                if s.notify() {
                    b.ring();
                }
            }
        });
        if state.announce() {
            bell.wait_rung();
        }
        state.withdraw();
        let accepted = state.accept();
        notifier.join().unwrap();
        assert!(accepted || state.accept(), "the notification was lost");
        assert!(
            bell.rings.load(Ordering::Relaxed) <= 1,
            "a burst rang twice"
        );
    });
}

/// (a) Two home iterations against two notifiers, each publishing work
/// before it notifies: the home thread looks at the work before it
/// announces, and never blocks while work it has not seen is published.
/// At most one ring per announced wait.
#[test]
fn loom_notify_protocol_two_notifiers_two_iterations() {
    model(5, || {
        let state = Arc::new(NotifyState::default());
        let bell = Arc::new(Bell::default());
        let work = Arc::new(AtomicUsize::new(0));
        let notifiers: Vec<_> = (0..2)
            .map(|_| {
                let (s, b, w) = (Arc::clone(&state), Arc::clone(&bell), Arc::clone(&work));
                thread::spawn(move || {
                    w.fetch_add(1, Ordering::Release);
                    if s.notify() {
                        b.ring();
                    }
                })
            })
            .collect();
        let mut announces = 0;
        while work.load(Ordering::Acquire) < 2 {
            announces += 1;
            if state.announce() {
                bell.wait_rung();
            }
            state.withdraw();
            state.accept();
            bell.drain();
        }
        for n in notifiers {
            n.join().unwrap();
        }
        assert!(bell.rings.load(Ordering::Relaxed) <= announces);
    });
}

/// (a) On a real context: a burst of `notify()` from another thread wakes
/// a blocking `poll` (or makes it not block), with at most one doorbell
/// write, and a wait blocks at most once.
#[test]
fn loom_context_notify_burst_wakes_poll_once() {
    model(5, || {
        let m = Model::new();
        let remote = m.ctx.remote();
        let notifier = thread::spawn(move || {
            for _ in 0..3 {
                remote.notify();
            }
        });
        assert!(!m.ctx.poll(true).unwrap(), "a wake-up is not progress");
        notifier.join().unwrap();
        assert!(m.bell.rings.load(Ordering::Relaxed) <= 1);
        assert!(m.blocking_waits.get() <= 1);
        assert_eq!(
            m.ctx.stats().doorbell_rings,
            m.bell.rings.load(Ordering::Relaxed) as u64
        );
    });
}

/// (b) Closures scheduled from two threads each run exactly once on the
/// home thread, which blocks until they have: none is lost, none runs
/// twice, each is dropped once.
#[test]
fn loom_remote_closures_run_exactly_once() {
    model(4, || {
        let m = Model::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let (remote, r, d) = (m.ctx.remote(), Arc::clone(&ran), Arc::clone(&drops));
                thread::spawn(move || {
                    let probe = Probe(d);
                    remote
                        .schedule(move |_| {
                            let _ = &probe;
                            r.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                })
            })
            .collect();
        while ran.load(Ordering::Relaxed) < 2 {
            m.ctx.poll(true).unwrap();
        }
        for s in senders {
            s.join().unwrap();
        }
        m.ctx.poll(false).unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// (b) A bottom half scheduled from another thread (twice: the second
/// may coalesce with the first) runs, and runs after the last schedule:
/// once the thread is joined and the queue drained it is not scheduled,
/// and it ran once or twice.
#[test]
fn loom_remote_bh_runs_after_every_schedule() {
    model(5, || {
        let m = Model::new();
        let runs = Rc::new(Cell::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let seen = Rc::new(Cell::new(0));
        let (r, s, n) = (Rc::clone(&runs), Arc::clone(&sent), Rc::clone(&seen));
        let bh = m.ctx.bh(move |_| {
            r.set(r.get() + 1);
            n.set(s.load(Ordering::Acquire));
        });
        let (rbh, s) = (bh.remote(), Arc::clone(&sent));
        let sender = thread::spawn(move || {
            for _ in 0..2 {
                s.fetch_add(1, Ordering::Release);
                rbh.schedule().unwrap();
            }
        });
        while runs.get() == 0 {
            m.ctx.poll(true).unwrap();
        }
        sender.join().unwrap();
        m.ctx.poll(false).unwrap();
        assert!((1..=2).contains(&runs.get()), "ran {} times", runs.get());
        assert_eq!(seen.get(), 2, "the last run began before the last schedule");
        assert!(!bh.is_scheduled());
    });
}

/// (b) A bottom half scheduled and cancelled on the home thread, whose
/// queue entry is still on the home thread's own list when the loop
/// blocks, is scheduled again from another thread: the loop must wake and
/// run it.
#[test]
fn loom_remote_bh_reschedule_of_cancelled_entry_wakes_the_loop() {
    model(5, || {
        let m = Model::new();
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let bh = m.ctx.bh(move |_| r.set(r.get() + 1));
        bh.schedule();
        bh.cancel();
        let rbh = bh.remote();
        let sender = thread::spawn(move || rbh.schedule().unwrap());
        while runs.get() == 0 {
            m.ctx.poll(true).unwrap();
        }
        sender.join().unwrap();
        m.ctx.poll(false).unwrap();
        assert_eq!(runs.get(), 1);
    });
}

/// (b) `cancel` on the home thread races `schedule` from another: the bottom
/// half runs at most once, and afterwards its state is consistent: a new
/// schedule runs it exactly once more.
#[test]
fn loom_remote_bh_cancel_races_schedule() {
    model(5, || {
        let m = Model::new();
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let bh = m.ctx.bh(move |_| r.set(r.get() + 1));
        let rbh = bh.remote();
        let sender = thread::spawn(move || rbh.schedule().unwrap());
        bh.cancel();
        sender.join().unwrap();
        m.ctx.poll(false).unwrap();
        m.ctx.poll(false).unwrap();
        let before = runs.get();
        assert!(before <= 1);
        bh.remote().schedule().unwrap();
        m.ctx.poll(false).unwrap();
        assert_eq!(runs.get(), before + 1, "a schedule after the race ran once");
    });
}

/// (b) The bottom half is dropped on the home thread while another thread
/// schedules it: the schedule succeeds or says the bottom half is gone,
/// the callback never runs and is dropped exactly once, and the stale
/// queue entry is skipped.
#[test]
fn loom_remote_bh_drop_races_schedule() {
    model(5, || {
        let m = Model::new();
        let (runs, drops) = (Rc::new(Cell::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, probe) = (Rc::clone(&runs), Probe(Arc::clone(&drops)));
        let bh = m.ctx.bh(move |_| {
            let _ = &probe;
            r.set(r.get() + 1);
        });
        let rbh = bh.remote();
        let sender = thread::spawn(move || match rbh.schedule() {
            Ok(()) | Err(Gone::BottomHalf) => {}
            Err(e) => panic!("unexpected {e}"),
        });
        drop(bh);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        sender.join().unwrap();
        m.ctx.poll(false).unwrap();
        assert_eq!(runs.get(), 0, "a deleted bottom half ran");
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// (b) The context is dropped while another thread schedules a closure:
/// `schedule` succeeds (and the job is dropped with the context) or says
/// the context is gone (and drops the closure); either way the closure
/// never runs and is dropped exactly once, by the time both are done.
#[test]
fn loom_remote_closure_races_context_drop() {
    model(5, || {
        let m = Model::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let (remote, d) = (m.ctx.remote(), Arc::clone(&drops));
        let sender = thread::spawn(move || {
            let probe = Probe(d);
            match remote.schedule(move |_| {
                let _ = &probe;
                panic!("a job of a dropped context ran");
            }) {
                Ok(()) | Err(Gone::Context) => {}
                Err(e) => panic!("unexpected {e}"),
            }
            remote
        });
        drop(m);
        let remote = sender.join().unwrap();
        assert!(remote.is_closed());
        assert_eq!(drops.load(Ordering::Relaxed), 1, "the closure leaked");
    });
}
