//! `bottom-half`: the cost of deferred work, four ways, on every monitor
//! and on tokio (the reference of each comparison):
//!
//! * **one-shot**: `schedule_oneshot` then `poll(false)`, per pair; tokio:
//!   `spawn_local` of a task that is then awaited. Both box (allocate)
//!   per iteration. `vecdeque-box`, the floor: a boxed closure pushed on
//!   a `VecDeque`, popped and run, with no loop around it.
//! * **reused**: one [`BottomHalf`](aio::BottomHalf), `schedule` then
//!   `poll(false)`; tokio: a waiting task woken through a `Notify`, which
//!   answers through another.
//! * **chain**: a bottom half that reschedules itself from its callback,
//!   one run per `poll(false)`; tokio: a task that yields
//!   (`yield_now`), one yield per iteration.
//! * **remote**: another thread pauses [`PAUSE`] (so the home thread is
//!   asleep in its blocking wait), schedules a [`RemoteBh`](aio::RemoteBh), and spins until
//!   the home thread has run it: the round trip of waking a sleeping loop
//!   with work (the pause is not counted). References: `raw-eventfd` (the
//!   other thread writes an eventfd that the home thread waits on in a
//!   blocking `read`) and tokio (`Notify::notify_one` to a task awaiting
//!   it on a current-thread runtime).
//!
//! `local` holds the first three, which run on the home thread; `remote`
//! the fourth, which has a thread of its own; this file runs them and
//! reports.

use std::io;
use std::time::Duration;

use crate::env::{Env, Monitor};
use crate::measure::Variant;
use crate::report::{Group, ScenarioReport, Target};

mod local;
mod remote;

use local::{Form, local_variants, locals};
use remote::{Remote, remotes};

/// The reference of the local comparisons.
pub const TOKIO: &str = "tokio";
/// The floor of the one-shot comparison: a boxed closure through a
/// `VecDeque`.
pub const QUEUE: &str = "vecdeque-box";
/// A one-shot bottom half's target, in ns, where the machine allows it
/// (else [`ONESHOT_OVER_QUEUE`] times [`QUEUE`]'s median).
pub const ONESHOT_NS: f64 = 40.0;
/// How many times [`QUEUE`]'s median a one-shot bottom half may take on a
/// machine where [`ONESHOT_NS`] is out of reach.
pub const ONESHOT_OVER_QUEUE: f64 = 1.5;
/// A reused bottom half's target, in ns.
pub const REUSED_NS: f64 = 30.0;
/// The reference of the remote comparison.
pub const RAW: &str = "raw-eventfd";

/// How long the other thread pauses before each remote round trip, so
/// that the home thread is asleep when the work comes; not counted.
pub const PAUSE: Duration = Duration::from_micros(20);

/// The scenario's one-line description.
pub const ABOUT: &str = "deferred work: one-shot, reused, self-rescheduling, and from another thread to a \
    sleeping loop; figure: ns per run (remote: round trip)";

/// Allocations of reused and self-rescheduling bottom halves and of the
/// remote round trip in steady state, under `plan`.
pub(crate) fn steady_state(env: &Env<'_>, plan: &crate::measure::Plan) -> io::Result<Vec<Group>> {
    let mut groups = Vec::new();
    for form in [Form::Reused, Form::Chain] {
        let locals = locals(env, form)?;
        let mut variants = local_variants(&locals, form);
        let title = format!("steady state: {}", form.title());
        let rows = env.measure_with(plan, &title, &mut variants)?;
        drop(variants);
        let id = format!(
            "allocations/{}",
            form.id().trim_start_matches("bottom-half/")
        );
        groups.push(Group::new(
            format!("{id}-bottom-half"),
            title,
            "ns per run",
            TOKIO,
            rows,
            Vec::new(),
        ));
    }
    let remotes = remotes(env)?;
    let mut variants: Vec<Variant<'_>> = remotes.iter().map(Remote::variant).collect();
    let title = "steady state: bottom half from another thread, both threads";
    let rows = env.measure_with(plan, title, &mut variants)?;
    drop(variants);
    groups.push(Group::new(
        "allocations/remote-bottom-half",
        title,
        "round trip",
        RAW,
        rows,
        Vec::new(),
    ));
    Ok(groups)
}

/// Measures the four comparisons.
///
/// # Errors
///
/// Setting up a context, a runtime or a thread failed, or a batch did not
/// run its work exactly once per iteration.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("bottom-half", 4);
    let mut report = ScenarioReport {
        name: "bottom-half".to_owned(),
        about: ABOUT.to_owned(),
        ..ScenarioReport::default()
    };
    for form in [Form::Oneshot, Form::Reused, Form::Chain] {
        let locals = locals(env, form)?;
        let mut variants = local_variants(&locals, form);
        let rows = env.measure(form.title(), &mut variants)?;
        drop(variants);
        let notes = match form {
            Form::Oneshot => vec![
                "aio boxes the closure (one allocation per iteration); tokio allocates the task"
                    .to_owned(),
            ],
            Form::Reused => {
                vec!["tokio: a task woken through a Notify, answering through another".to_owned()]
            }
            Form::Chain => vec!["tokio: tokio::task::yield_now, one per iteration".to_owned()],
        };
        let group = Group::new(form.id(), form.title(), "ns per run", TOKIO, rows, notes);
        report.targets.extend(targets(form, &group));
        report.groups.push(group);
    }
    let remotes = remotes(env)?;
    let mut variants: Vec<Variant<'_>> = remotes.iter().map(Remote::variant).collect();
    let title = "bottom half from another thread to a sleeping loop: round trip";
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    drop(remotes);
    report.groups.push(Group::new(
        "bottom-half/remote",
        title,
        "round trip",
        RAW,
        rows,
        vec![
            format!(
                "the other thread pauses {} us before each round trip (not counted) and spins until the work has run",
                PAUSE.as_micros()
            ),
            "aio: a RemoteBh scheduled from the other thread; home sleeps: voluntary context switches of the home thread".to_owned(),
        ],
    ));
    Ok(report)
}

/// The targets of a local form: one-shot <= [`ONESHOT_NS`] or
/// <= [`ONESHOT_OVER_QUEUE`]x the queue's floor, whichever is the looser on
/// this machine; reused <= [`REUSED_NS`].
fn targets(form: Form, group: &Group) -> Vec<Target> {
    let (label, limit) = match form {
        Form::Oneshot => {
            let floor = group.row(QUEUE).map_or(0.0, |r| r.median_ns);
            let limit = ONESHOT_NS.max(ONESHOT_OVER_QUEUE * floor);
            let label = format!(
                "<= {ONESHOT_NS} ns or <= {ONESHOT_OVER_QUEUE}x {QUEUE} ({floor:.0} ns): {limit:.0} ns"
            );
            (label, limit)
        }
        Form::Reused => (format!("<= {REUSED_NS} ns"), REUSED_NS),
        Form::Chain => return Vec::new(),
    };
    Monitor::ALL
        .into_iter()
        .filter_map(|monitor| {
            let v = monitor.variant();
            let row = group.row(v)?;
            Some(Target::at_most(
                form.id(),
                v,
                label.clone(),
                Some(row.median_ns),
                limit,
                "ns",
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn every_variant_runs_its_work() {
        Env::quick(|env| {
            for form in [Form::Oneshot, Form::Reused, Form::Chain] {
                for (name, local) in locals(env, form).unwrap() {
                    let mut local = local.borrow_mut();
                    local.run(20).unwrap_or_else(|e| panic!("{name}: {e}"));
                    local.run(5).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
            }
            for remote in remotes(env).unwrap() {
                remote.run(20).unwrap();
                remote.run(5).unwrap();
                assert_eq!(
                    remote.trips.done.load(Ordering::Acquire),
                    25,
                    "{}",
                    remote.name
                );
            }
        });
    }
}
