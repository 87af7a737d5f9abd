//! `timers`: how late a timer fires, for 100 us and 1 ms timers.
//!
//! Each sample arms a timer for the duration, lets the loop block until it
//! fires, and records how long after its deadline the loop ran it. The
//! figure is the lateness of every sample: median and p99.
//!
//! * `clock_nanosleep`, the reference: `clock_nanosleep(TIMER_ABSTIME)` on
//!   the monotonic clock, the floor a sleeping thread can reach;
//! * aio on each monitor, with default settings (a context sets its
//!   thread's timer slack to 1 ns): a [`Timer`] armed with `arm_in`, then
//!   `poll(true)` until it has run;
//! * `mio` (`Poll::poll` with the time left, in a loop), `polling`
//!   (`Poller::wait` with the time left), `tokio` (`sleep_until` on a
//!   current-thread runtime): mio and tokio round timeouts up to whole
//!   milliseconds, polling sets a timerfd.
//!
//! The reference and aio run at 1 ns of timer slack, the peers at the
//! thread's default (50 us unless the system says otherwise), set before
//! each batch, since the variants share the home thread.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aio::prelude::*;

use crate::env::{Env, Monitor};
use crate::measure::{Plan, Samples, Variant};
use crate::peers::tokio_runtime;
use crate::report::{Group, ScenarioReport, Target};
use crate::sys;

/// The reference.
pub const REFERENCE: &str = "clock_nanosleep";

/// The scenario's one-line description.
pub const ABOUT: &str =
    "arm a timer, block until it fires; figure: lateness past the deadline, every sample";

/// The durations measured, with the samples per round of a full run.
const DURATIONS: [(Duration, &str, u64); 2] = [
    (Duration::from_micros(100), "100us", 20),
    (Duration::from_millis(1), "1ms", 5),
];

/// The timer slack the reference and aio run with.
const FINE: Duration = Duration::from_nanos(1);

/// A variant: takes lateness samples of timers of one duration.
trait Lateness {
    /// Takes `n` samples, in nanoseconds.
    fn sample(&mut self, d: Duration, n: u64, samples: &mut Samples) -> io::Result<()>;
}

/// The reference: `clock_nanosleep` to an absolute deadline.
struct Sleep;

impl Lateness for Sleep {
    fn sample(&mut self, d: Duration, n: u64, samples: &mut Samples) -> io::Result<()> {
        sys::set_timer_slack(Some(FINE))?;
        for _ in 0..n {
            let deadline = sys::monotonic_ns() + d.as_nanos() as u64;
            sys::sleep_until_ns(deadline)?;
            samples.record(sys::monotonic_ns().saturating_sub(deadline) as f64);
        }
        Ok(())
    }
}

/// An aio timer; the callback records when it ran.
struct AioTimer {
    // Declared first so it drops before its context.
    timer: Timer,
    ctx: AioContext,
    fired: Rc<Cell<Option<u64>>>,
}

impl AioTimer {
    fn new(monitor: Monitor) -> io::Result<AioTimer> {
        let ctx = monitor.context(PollParams::OFF)?;
        let fired = Rc::new(Cell::new(None));
        let at = Rc::clone(&fired);
        let timer = ctx.timer(move |ctx| at.set(Some(ctx.now_ns())));
        Ok(AioTimer { timer, ctx, fired })
    }
}

impl Lateness for AioTimer {
    fn sample(&mut self, d: Duration, n: u64, samples: &mut Samples) -> io::Result<()> {
        // What the context set when it was built; other variants change it.
        sys::set_timer_slack(Some(FINE))?;
        for _ in 0..n {
            self.fired.set(None);
            self.timer.arm_in(d);
            let deadline = self.timer.deadline_ns().unwrap_or_default();
            let fired = loop {
                self.ctx.poll(true)?;
                if let Some(at) = self.fired.get() {
                    break at;
                }
            };
            samples.record(fired.saturating_sub(deadline) as f64);
        }
        Ok(())
    }
}

/// mio: `Poll::poll` with the time left until the deadline.
struct MioTimer {
    poll: mio::Poll,
    events: mio::Events,
}

impl Lateness for MioTimer {
    fn sample(&mut self, d: Duration, n: u64, samples: &mut Samples) -> io::Result<()> {
        sys::set_timer_slack(None)?;
        for _ in 0..n {
            let deadline = Instant::now() + d;
            let late = loop {
                let now = Instant::now();
                if now >= deadline {
                    break now - deadline;
                }
                crate::peers::mio_poll(&mut self.poll, &mut self.events, Some(deadline - now))?;
            };
            samples.record(late.as_nanos() as f64);
        }
        Ok(())
    }
}

/// polling: `Poller::wait` with the time left until the deadline.
struct PollingTimer {
    poller: polling::Poller,
    events: polling::Events,
}

impl Lateness for PollingTimer {
    fn sample(&mut self, d: Duration, n: u64, samples: &mut Samples) -> io::Result<()> {
        sys::set_timer_slack(None)?;
        for _ in 0..n {
            let deadline = Instant::now() + d;
            let late = loop {
                let now = Instant::now();
                if now >= deadline {
                    break now - deadline;
                }
                self.events.clear();
                self.poller.wait(&mut self.events, Some(deadline - now))?;
            };
            samples.record(late.as_nanos() as f64);
        }
        Ok(())
    }
}

/// tokio: `sleep_until` on a current-thread runtime.
struct TokioTimer {
    rt: tokio::runtime::Runtime,
}

impl Lateness for TokioTimer {
    fn sample(&mut self, d: Duration, n: u64, samples: &mut Samples) -> io::Result<()> {
        sys::set_timer_slack(None)?;
        self.rt.block_on(async {
            for _ in 0..n {
                let deadline = tokio::time::Instant::now() + d;
                tokio::time::sleep_until(deadline).await;
                let late = tokio::time::Instant::now().saturating_duration_since(deadline);
                samples.record(late.as_nanos() as f64);
            }
        });
        Ok(())
    }
}

fn timers(env: &Env<'_>) -> io::Result<Timers> {
    let mut out: Vec<(String, Box<dyn Lateness>)> = vec![(REFERENCE.to_owned(), Box::new(Sleep))];
    for monitor in Monitor::ALL {
        if env.wants(monitor.variant()) {
            out.push((
                monitor.variant().to_owned(),
                Box::new(AioTimer::new(monitor)?),
            ));
        }
    }
    if env.wants("mio") {
        let timer = MioTimer {
            poll: mio::Poll::new()?,
            events: mio::Events::with_capacity(8),
        };
        out.push(("mio".to_owned(), Box::new(timer)));
    }
    if env.wants("polling") {
        let timer = PollingTimer {
            poller: polling::Poller::new()?,
            events: polling::Events::new(),
        };
        out.push(("polling".to_owned(), Box::new(timer)));
    }
    if env.wants("tokio") {
        out.push((
            "tokio".to_owned(),
            Box::new(TokioTimer {
                rt: tokio_runtime()?,
            }),
        ));
    }
    Ok(out.into_iter().map(|(n, t)| (n, RefCell::new(t))).collect())
}

/// Allocations of re-armed timers in steady state (100 us), under `plan`.
pub(crate) fn steady_state(env: &Env<'_>, plan: &Plan) -> io::Result<Group> {
    let slack = sys::timer_slack().ok();
    let timers = timers(env)?;
    let d = DURATIONS[0].0;
    let mut variants = variants(&timers, d, 4);
    let title = "steady state: a timer re-armed every 100 us";
    let rows = env.measure_with(plan, title, &mut variants);
    drop(variants);
    let _ = sys::set_timer_slack(slack);
    Ok(Group::new(
        "allocations/timers",
        title,
        "lateness",
        REFERENCE,
        rows?,
        Vec::new(),
    ))
}

type Timers = Vec<(String, RefCell<Box<dyn Lateness>>)>;

fn variants(timers: &Timers, d: Duration, per_round: u64) -> Vec<Variant<'_>> {
    timers
        .iter()
        .map(|(name, t)| {
            let v = Variant::sampled(name.clone(), move |n, samples| {
                t.borrow_mut().sample(d, n, samples)
            })
            .fixed_batch(per_round);
            if name.starts_with("aio") {
                v.expect_no_allocs()
            } else {
                v
            }
        })
        .collect()
}

/// Measures both durations.
///
/// # Errors
///
/// Setting up a loop failed, or a wait failed.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("timers", DURATIONS.len());
    let mut report = ScenarioReport {
        name: "timers".to_owned(),
        about: ABOUT.to_owned(),
        ..ScenarioReport::default()
    };
    let slack = sys::timer_slack().ok();
    for (d, label, per_round) in DURATIONS {
        let per_round = if env.plan.is_quick() { 2 } else { per_round };
        let plan = Plan {
            // Warm-up samples are whole timers: keep it short.
            warmup: env.plan.warmup.min(Duration::from_millis(30)),
            ..env.plan
        };
        let timers = timers(env)?;
        let mut variants = variants(&timers, d, per_round);
        let title = format!("timer lateness, {label} timers");
        let rows = env.measure_with(&plan, &title, &mut variants)?;
        drop(variants);
        drop(timers);
        let id = format!("timers/{label}");
        let group = Group::new(
            id.clone(),
            title,
            "lateness",
            REFERENCE,
            rows,
            vec![
                "clock_nanosleep and aio at 1 ns of timer slack (what an aio context sets on its thread); \
                 mio, polling and tokio at the thread's default slack"
                    .to_owned(),
                "mio and tokio round timeouts up to whole milliseconds".to_owned(),
            ],
        );
        for monitor in Monitor::ALL {
            let v = monitor.variant();
            let ratio = group
                .row(v)
                .zip(group.row(REFERENCE))
                .map(|(m, r)| m.p99_ns / r.p99_ns);
            if group.row(v).is_some() {
                report.targets.push(Target::at_most(
                    &id,
                    v,
                    format!("p99 <= 1.30x {REFERENCE} p99"),
                    ratio,
                    1.3,
                    "x",
                ));
            }
        }
        report.groups.push(group);
    }
    // Leave the thread as aio contexts leave it.
    let _ = sys::set_timer_slack(slack);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_times_timers() {
        std::thread::spawn(|| {
            Env::quick(|env| {
                for (name, timer) in timers(env).unwrap() {
                    let mut samples = Samples::default();
                    timer
                        .borrow_mut()
                        .sample(Duration::from_micros(100), 3, &mut samples)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(samples.len(), 3, "{name}");
                    assert!(
                        samples.values().iter().all(|ns| (0.0..1e9).contains(ns)),
                        "{name}"
                    );
                }
            });
        })
        .join()
        .unwrap();
    }
}
