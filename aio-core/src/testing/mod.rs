//! Test support (feature `testing`): the conformance suite that every
//! [`FdMonitor`](crate::FdMonitor) must pass, a simulated monitor, and
//! small helpers.
//!
//! A backend crate runs the whole suite with one line in a test file:
//!
//! ```no_run
//! # mod my_backend { pub use aio_core::testing::SleepMonitor as MyMonitor; }
//! // tests/conformance.rs of a backend crate
//! aio_core::conformance_tests!(aio_core::testing::Harness::new(|| {
//!     Ok(Box::new(my_backend::MyMonitor::new()))
//! }));
//! ```

mod alloc;
mod checks;
mod faults;
mod harness;
mod inline_engine;
#[cfg(all(test, loom))]
mod loom_models;
mod ops_harness;
mod sim;
mod sleep;
mod steady_state;
pub mod suite;
mod test_monitor;
mod thread_probe;
mod timing;
mod watchdog;

pub use alloc::{
    COUNTED_RUNS, CountingAlloc, WARM_UP_RUNS, allocations_in, allocations_in_runs, live_growth_in,
    thread_allocations, thread_live,
};
pub use checks::{assert_still_works, clearing, counting};
pub use faults::{Fault, Faults};
pub use harness::{Count, DropProbe, Fixture, Harness, TestEvent};
pub use inline_engine::InlineEngine;
pub use ops_harness::OpsHarness;
pub use sim::{SimMonitor, SimWorld};
pub use sleep::SleepMonitor;
pub use steady_state::{
    assert_busy_polling_does_not_allocate, assert_iterations_do_not_allocate,
    assert_operations_do_not_allocate, assert_socket_operations_do_not_allocate,
};
pub use test_monitor::{Calls, TestMonitor};
pub use thread_probe::ThreadProbe;
pub use timing::{
    TIMING_TRIALS, assert_short_timers_fire_after_one_wait, assert_short_waits_are_precise,
};
pub use watchdog::Watchdog;

/// The token of the handler registered for `fd`, for tests that inject
/// events by hand.
pub fn token_of(ctx: &crate::AioContext, fd: std::os::fd::RawFd) -> Option<crate::Token> {
    ctx.inner
        .registry
        .borrow()
        .by_fd(fd)
        .map(|node| node.token())
}

/// Emits one `#[test]` per conformance case, each run on a fresh fixture
/// from the given [`Harness`] expression.
///
/// ```no_run
/// aio_core::conformance_tests!(aio_core::testing::Harness::sim());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        // The cases that also run under an outer loop (they go through
        // `Fixture::poll`, which is `AioContext::poll` here), then the rest.
        $crate::outer_loop_tests!($harness);
        $crate::__conformance_cases! { $harness;
            handlers::handler_removes_itself,
            handlers::handler_removes_other_ready_handler,
            handlers::handler_replaces_itself,
            handlers::nested_poll_from_callback,
            handlers::poll_nested_past_the_limit_is_refused,
            handlers::interest_change_keeps_the_callbacks,
            handlers::interest_change_refuses_bad_input,
            handlers::callbacks_see_the_readiness,
            handlers::fds_closed_while_registered_are_reported,
            handlers::stale_event_never_reaches_new_handler,
            handlers::external_handlers_held_back_while_disabled,
            handlers::disabled_external_fd_does_not_spin,
            handlers::removing_unknown_fd_is_noop,
            handlers::bad_fds_are_refused,
            polling::poll_yes_runs_poll_ready,
            polling::poll_begin_end_pair_up,
            polling::poll_hooks_set_later_keep_the_poll_time,
            polling::final_poll_after_poll_end_catches_work,
            polling::poll_time_grows_and_shrinks,
            polling::polling_off_never_polls,
            polling::covered_loop_asks_poll_callbacks_and_kernel_every_50us,
            polling::plain_handler_served_in_the_poll_window,
            polling::idle_polled_handlers_leave_after_7s,
            polling::a_handler_that_joins_later_leaves_7s_after_it_joined,
            remote::notify_wakes_blocking_poll_without_progress,
            remote::notify_before_poll_is_not_lost,
            remote::notify_burst_costs_one_doorbell_write,
            remote::run_returns_when_a_callback_stops_it,
            remote::run_returns_when_another_thread_stops_it,
            remote::run_until_returns_when_the_condition_holds,
        }
    };
}

/// Emits one `#[test]` per case that applies to a context driven by another
/// event loop (bottom halves, event notifiers, timers, remote wake-ups),
/// each run through [`Fixture::poll`] on a harness
/// [driven by an outer loop](Harness::driven_by_outer_loop).
///
/// ```no_run
/// # use aio_core::testing::{Harness, SleepMonitor};
/// aio_core::outer_loop_tests!(Harness::new(|| Ok(Box::new(SleepMonitor::new()))).driven_by_outer_loop());
/// ```
#[macro_export]
macro_rules! outer_loop_tests {
    ($harness:expr) => {
        $crate::__conformance_cases! { $harness;
            bh::bh_schedule_runs_once,
            bh::bh_schedule_is_idempotent,
            bh::bh_rescheduling_itself_runs_once_per_poll,
            bh::bh_cancel_before_run,
            bh::bh_drop_before_run,
            bh::bh_deletes_itself,
            bh::bh_four_delete_themselves,
            bh::oneshot_runs_once_in_order,
            bh::bh_scheduled_during_run_or_nested_runs_once,
            bh::bh_nested_poll_runs_parents_remaining_jobs,
            bh::bh_idle_runs_within_10ms,
            bh::bh_from_another_thread_wakes_poll,
            bh::remote_closure_runs_on_home_thread,
            notifiers::notifier_add_remove_unset,
            notifiers::notifier_set_runs_handler_once,
            notifiers::notifier_set_makes_blocking_poll_return,
            notifiers::notifier_resetting_itself_runs_each_poll,
            timers::timer_fires_at_deadline_not_before,
            timers::timer_rearms_from_callback,
            timers::timers_fire_in_order_and_cancel,
            timers::blocking_poll_sleeps_until_nearest_timer,
            timers::blocking_poll_wakes_for_timer_real_clock,
            remote::notify_wakes_outer_loop,
        }
    };
}

/// Emits one `#[test]` per case of the operations suite, each on a fresh
/// context from an [`OpsHarness`].
///
/// ```no_run
/// use aio_core::{ContextBuilder, testing::{InlineEngine, OpsHarness, SleepMonitor}};
/// aio_core::ops_conformance_tests!(OpsHarness::new("inline", || {
///     ContextBuilder::new(Box::new(SleepMonitor::new()))
///         .ops_fallback(|_| Box::new(InlineEngine::new()))
///         .build()
/// }));
/// ```
#[macro_export]
macro_rules! ops_conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_cases! { $harness;
            ops::written_data_reads_back_equal,
            ops::reads_stop_at_the_end_and_bad_fds_fail,
            ops::vectored_reads_and_writes_round_trip,
            ops::thousands_in_flight_complete_once_each,
            ops::a_cancelled_read_completes_once_with_its_buffer,
            ops::completions_come_in_finishing_order,
            ops::a_context_dropped_with_ops_in_flight_frees_each_buffer_once,
            sockets::a_socket_pair_sends_and_receives,
            sockets::accept_and_connect_over_loopback,
            sockets::socket_errors_come_back_as_errors,
            sockets::waiting_socket_requests_are_cancelled,
            sockets::a_context_dropped_with_socket_requests_waiting_returns,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($harness:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::suite::$module::$case(&$harness);
            }
        )*
    };
}
