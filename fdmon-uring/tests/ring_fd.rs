//! The ring's fd registered with the thread that enters it: that thread
//! enters by the index, any other by the fd, and dropping the monitor on
//! its thread frees the thread's table entry.

mod common;

use std::time::Duration;

use aio_core::FdMonitor;
use fdmon_uring::TaskRun;

/// Whether the kernel has registered rings (Linux 5.18).
fn kernel_registers_rings() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (5, 18)
}

/// One enter that waits (a zero-timeout wait may not enter at all).
fn enter(monitor: &mut impl FdMonitor) {
    monitor
        .wait(&mut Vec::new(), Some(Duration::from_micros(1)))
        .unwrap();
}

#[test]
fn the_first_thread_enters_by_index_and_another_by_the_fd() {
    if !kernel_registers_rings() {
        eprintln!("skipped: this kernel has no registered rings (Linux 5.18)");
        return;
    }
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        assert!(!m.enters_by_index(), "{mode:?}: before the first enter");
        enter(&mut m);
        assert!(m.enters_by_index(), "{mode:?}: after the first enter");
        let mut m = std::thread::spawn(move || {
            assert!(!m.enters_by_index(), "{mode:?}: on another thread");
            if !matches!(mode, TaskRun::Deferred | TaskRun::DeferredFlag) {
                // Entering by the index here would fail (EBADF): this
                // thread's table does not hold the ring.
                enter(&mut m);
            }
            m
        })
        .join()
        .unwrap();
        assert!(m.enters_by_index(), "{mode:?}: back on the first thread");
        enter(&mut m);
    }
}

/// A thread's table holds 16 rings: only if each dropped monitor takes its
/// ring out can a thread go through more.
#[test]
fn a_monitor_dropped_on_its_thread_frees_its_entry() {
    if !kernel_registers_rings() {
        eprintln!("skipped: this kernel has no registered rings (Linux 5.18)");
        return;
    }
    for i in 0..40 {
        let mut m = common::monitor(TaskRun::default());
        enter(&mut m);
        assert!(m.enters_by_index(), "monitor {i} entered by its fd");
    }
}
