//! Nanosecond waits through `ppoll`: a sub-millisecond timeout neither
//! spins nor becomes a millisecond, and a timer fires after one wait and
//! not before its deadline.

use fdmon_poll::PollMonitor;

#[test]
fn a_100us_timeout_sleeps_at_least_100us_and_well_under_a_millisecond() {
    aio_core::testing::assert_short_waits_are_precise(&mut PollMonitor::new());
}

#[test]
fn a_200us_timer_fires_after_one_wait_not_before_its_deadline() {
    aio_core::testing::assert_short_timers_fire_after_one_wait(Box::new(PollMonitor::new()));
}
