//! The busy-poll window waits for operations in flight: once one
//! completion has been dispatched after a short wait, the next ones, which
//! the engine reports a few checks after their push (as a worker finishing
//! soon would), are found by polling without a blocking wait. With polling
//! off every operation costs a wait. On a manual clock that moves one step
//! per reading, so the window's length is counted, not timed.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aio_core::testing::{InlineEngine, Watchdog};
use aio_core::{
    AioContext, ContextBuilder, FdMonitor, ManualClock, OpCompletion, OpEngine, OpId, OpKind,
    OpRequest, Pending, PollParams, ReadyEvent, Registration,
};

/// How many times the core must ask, without a wait between, before a
/// pushed request's completion shows.
const ASKS: u32 = 5;
const OPS: u64 = 20;
/// What a blocking wait lasts on the manual clock: below `IOTHREAD`'s
/// ceiling, so that the poll time grows after it.
const WAIT: Duration = Duration::from_micros(2);

/// An engine that carries requests out at once but shows their
/// completions only after a wait of the monitor, or after [`ASKS`]
/// questions (a worker that finishes while the loop polls).
struct Withheld {
    inner: InlineEngine,
    asks: Cell<u32>,
    waited: Arc<AtomicBool>,
}

impl Withheld {
    fn shows(&self) -> bool {
        self.waited.load(Ordering::Relaxed) || self.asks.get() > ASKS
    }
}

impl OpEngine for Withheld {
    fn name(&self) -> &'static str {
        "withheld"
    }

    fn supports(&self, kind: OpKind) -> bool {
        self.inner.supports(kind)
    }

    unsafe fn push(&mut self, id: OpId, request: &OpRequest) -> io::Result<()> {
        self.asks.set(0);
        self.waited.store(false, Ordering::Relaxed);
        // SAFETY: the core's promise for `request` is passed on unchanged.
        unsafe { self.inner.push(id, request) }
    }

    fn cancel(&mut self, id: OpId) {
        self.inner.cancel(id);
    }

    fn submit_now(&mut self) -> io::Result<()> {
        self.inner.submit_now()
    }

    fn has_completions(&self) -> bool {
        self.asks.set(self.asks.get() + 1);
        self.shows() && self.inner.has_completions()
    }

    fn take_completions(&mut self, into: &mut Vec<OpCompletion>) {
        if self.shows() {
            self.inner.take_completions(into);
        }
    }
}

/// A monitor whose every wait lasts [`WAIT`] on the manual clock, and
/// releases the engine's completions (they arrived while it blocked).
struct Blocking {
    clock: ManualClock,
    waited: Arc<AtomicBool>,
}

impl FdMonitor for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn update(
        &mut self,
        _fd: RawFd,
        _old: Option<Registration>,
        _new: Option<Registration>,
    ) -> io::Result<()> {
        Ok(())
    }

    fn wait(&mut self, _events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        if timeout != Some(Duration::ZERO) {
            self.clock.advance(WAIT);
            self.waited.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn pending(&mut self) -> Pending {
        Pending::No
    }
}

fn context(params: PollParams) -> AioContext {
    let clock = ManualClock::new();
    clock.auto_advance(Duration::from_nanos(10));
    let waited = Arc::new(AtomicBool::new(false));
    let monitor = Blocking {
        clock: clock.clone(),
        waited: Arc::clone(&waited),
    };
    ContextBuilder::new(Box::new(monitor))
        .clock(clock)
        .poll_params(params)
        .ops_fallback(move |_| {
            Box::new(Withheld {
                inner: InlineEngine::new(),
                asks: Cell::new(0),
                waited,
            })
        })
        .build()
        .unwrap()
}

/// Reads 8 bytes `OPS` times, one at a time; returns the blocking waits
/// the reads after the first cost.
fn blocking_waits_after_the_first(ctx: &AioContext, name: &str) -> u64 {
    let _dog = Watchdog::arm("reads on a withholding engine", Duration::from_secs(30));
    let path = std::env::temp_dir().join(format!("aio-ops-polling-{name}-{}", std::process::id()));
    std::fs::write(&path, [7u8; 8 * OPS as usize]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let done = Rc::new(Cell::new(0u64));
    let mut waits = 0;
    for i in 0..OPS {
        if i == 1 {
            waits = ctx.stats().blocking_waits;
        }
        let d = Rc::clone(&done);
        ctx.read_at(&file, Vec::with_capacity(8), i * 8, move |_, n, buf| {
            assert_eq!(n.unwrap(), 8);
            assert_eq!(buf, [7u8; 8]);
            d.set(d.get() + 1);
        });
        ctx.run_until(|| done.get() == i + 1).unwrap();
    }
    ctx.stats().blocking_waits - waits
}

#[test]
fn operations_in_flight_are_found_by_polling_without_a_blocking_wait() {
    let ctx = context(PollParams::IOTHREAD);
    let waits = blocking_waits_after_the_first(&ctx, "on");
    assert_eq!(waits, 0);
}

#[test]
fn with_polling_off_each_operation_costs_a_blocking_wait() {
    let ctx = context(PollParams::OFF);
    let waits = blocking_waits_after_the_first(&ctx, "off");
    assert!(
        waits >= OPS - 1,
        "{waits} blocking waits for {} reads",
        OPS - 1
    );
}
