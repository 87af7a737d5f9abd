//! `allocations`: heap allocations per iteration of the loop's steady-state
//! paths, counted by the benchmark's global allocator on every thread:
//! a loop iteration (64 idle fds), ping-pong (c), a reused and a
//! self-rescheduling bottom half, a bottom half from another thread, a
//! re-armed timer, and remote notification. Each runs briefly, warmed up
//! first, on every monitor and on the peers where they have the same path;
//! the target is zero for every aio row. (Every other scenario counts too:
//! see the `allocs/iter` column; one-shot bottom halves and registrations
//! allocate by design.)

use std::io;
use std::time::Duration;

use crate::env::Env;
use crate::measure::Plan;
use crate::report::{Group, ScenarioReport, Target};
use crate::scenarios::{bottom_half, loop_iteration, ping_pong, remote_notify, timers};

/// The scenario's one-line description.
pub const ABOUT: &str = "heap allocations per iteration of each steady-state path, all threads counted; \
    figures as in the scenario each path comes from";

/// The plan: short, since only the counts matter.
fn plan(env: &Env<'_>) -> Plan {
    if env.plan.is_quick() {
        env.plan
    } else {
        Plan {
            name: "allocations",
            warmup: Duration::from_millis(40),
            rounds: 6,
            batch_time: Duration::from_millis(2),
            ..env.plan
        }
    }
}

/// Measures every steady-state path.
///
/// # Errors
///
/// As the scenarios the paths come from.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("allocations", 7);
    let plan = plan(env);
    let mut groups = vec![
        loop_iteration::steady_state(env, &plan)?,
        ping_pong::steady_state(env, &plan)?,
    ];
    groups.extend(bottom_half::steady_state(env, &plan)?);
    groups.push(timers::steady_state(env, &plan)?);
    groups.push(remote_notify::steady_state(env, &plan)?);
    let targets = targets(&groups);
    Ok(ScenarioReport {
        name: "allocations".to_owned(),
        about: ABOUT.to_owned(),
        groups,
        summaries: Vec::new(),
        targets,
        seconds: 0.0,
    })
}

/// Zero allocations per iteration for every aio row.
fn targets(groups: &[Group]) -> Vec<Target> {
    groups
        .iter()
        .flat_map(|g| {
            g.rows
                .iter()
                .filter(|r| r.name.starts_with("aio"))
                .map(|r| {
                    Target::at_most(
                        &g.id,
                        &r.name,
                        "0 allocations per iteration",
                        r.allocs_per_iter,
                        0.0,
                        "allocs/iter",
                    )
                })
        })
        .collect()
}
