//! Bottom halves and one-shot jobs, from the home thread and from others.

use std::cell::RefCell;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use crate::testing::{Count, DropProbe, Harness};

/// Scheduled then `poll(true)`: it runs once and `poll` returns true; the
/// next `poll(false)` finds nothing.
pub fn bh_schedule_runs_once(h: &Harness) {
    let f = h.fixture();
    let runs = Count::new();
    let r = runs.clone();
    let bh = f.ctx.bh(move |_| r.hit());
    bh.schedule();
    assert!(bh.is_scheduled());
    assert!(f.poll(true).unwrap(), "a scheduled bottom half is progress");
    assert_eq!(runs.get(), 1);
    assert!(!bh.is_scheduled());
    assert!(!f.poll(false).unwrap(), "nothing left to run");
    assert_eq!(runs.get(), 1);
}

/// Scheduling is idempotent until it runs.
pub fn bh_schedule_is_idempotent(h: &Harness) {
    let f = h.fixture();
    let runs = Count::new();
    let r = runs.clone();
    let bh = f.ctx.bh(move |_| r.hit());
    for _ in 0..5 {
        bh.schedule();
    }
    bh.remote().schedule().unwrap();
    assert!(f.poll(true).unwrap());
    assert!(!f.poll(false).unwrap());
    assert_eq!(runs.get(), 1);
}

/// A bottom half that schedules itself runs once per `poll`.
pub fn bh_rescheduling_itself_runs_once_per_poll(h: &Harness) {
    let f = h.fixture();
    let runs = Count::new();
    let slot: Rc<RefCell<Option<crate::BottomHalf>>> = Rc::default();
    let (r, s) = (runs.clone(), Rc::clone(&slot));
    *slot.borrow_mut() = Some(f.ctx.bh(move |_| {
        r.hit();
        s.borrow().as_ref().unwrap().schedule();
    }));
    slot.borrow().as_ref().unwrap().schedule();
    for i in 1..=10 {
        assert!(f.poll(true).unwrap());
        assert_eq!(runs.get(), i, "one run per poll");
    }
    slot.borrow().as_ref().unwrap().cancel();
    assert!(!f.poll(false).unwrap());
    assert_eq!(runs.get(), 10);
    slot.borrow_mut().take(); // break the cycle
}

/// Cancelled before it runs: it does not run.
pub fn bh_cancel_before_run(h: &Harness) {
    let f = h.fixture();
    let runs = Count::new();
    let r = runs.clone();
    let bh = f.ctx.bh(move |_| r.hit());
    bh.schedule();
    bh.cancel();
    assert!(!f.poll(false).unwrap());
    assert_eq!(runs.get(), 0);
    bh.schedule();
    assert!(f.poll(false).unwrap(), "it can be scheduled again");
    assert_eq!(runs.get(), 1);
}

/// Dropped (deleted) before it runs: it does not run, and its callback is
/// dropped at once.
pub fn bh_drop_before_run(h: &Harness) {
    let f = h.fixture();
    let (runs, drops) = (Count::new(), Count::new());
    let (r, probe) = (runs.clone(), DropProbe::new(&drops));
    let bh = f.ctx.bh(move |_| {
        let _ = &probe;
        r.hit();
    });
    bh.schedule();
    let remote = bh.remote();
    drop(bh);
    assert_eq!(drops.get(), 1, "deleting drops the callback");
    assert_eq!(remote.schedule(), Err(crate::Gone::BottomHalf));
    assert!(!f.poll(false).unwrap());
    assert_eq!(runs.get(), 0);
}

/// A bottom half that deletes itself from its own callback runs once and
/// is dropped once.
pub fn bh_deletes_itself(h: &Harness) {
    let f = h.fixture();
    let (runs, drops) = (Count::new(), Count::new());
    let slot: Rc<RefCell<Option<crate::BottomHalf>>> = Rc::default();
    let (r, s, probe) = (runs.clone(), Rc::clone(&slot), DropProbe::new(&drops));
    *slot.borrow_mut() = Some(f.ctx.bh(move |_| {
        let _ = &probe;
        r.hit();
        s.borrow_mut().take();
    }));
    slot.borrow().as_ref().unwrap().schedule();
    assert!(f.poll(true).unwrap());
    assert_eq!((runs.get(), drops.get()), (1, 1));
    assert!(!f.poll(false).unwrap());
    assert_eq!((runs.get(), drops.get()), (1, 1));
}

/// Four bottom halves that reschedule themselves 1, 2, 3 and 4 times and
/// then delete themselves, all at once: each runs its own count.
pub fn bh_four_delete_themselves(h: &Harness) {
    let f = h.fixture();
    let drops = Count::new();
    let mut runs = Vec::new();
    let mut slots = Vec::new();
    for want in 1..=4 {
        let count = Count::new();
        let slot: Rc<RefCell<Option<crate::BottomHalf>>> = Rc::default();
        let (c, s, probe) = (count.clone(), Rc::clone(&slot), DropProbe::new(&drops));
        *slot.borrow_mut() = Some(f.ctx.bh(move |_| {
            let _ = &probe;
            c.hit();
            if c.get() == want {
                s.borrow_mut().take();
            } else {
                s.borrow().as_ref().unwrap().schedule();
            }
        }));
        slot.borrow().as_ref().unwrap().schedule();
        runs.push(count);
        slots.push(slot);
    }
    for _ in 0..6 {
        f.poll(false).unwrap();
    }
    let counts: Vec<usize> = runs.iter().map(Count::get).collect();
    assert_eq!(counts, [1, 2, 3, 4]);
    assert_eq!(drops.get(), 4);
    assert!(slots.iter().all(|s| s.borrow().is_none()));
}

/// One-shot jobs run once, in the order they were scheduled.
pub fn oneshot_runs_once_in_order(h: &Harness) {
    let f = h.fixture();
    let order = Rc::new(RefCell::new(Vec::new()));
    for i in 0..3 {
        let o = Rc::clone(&order);
        f.ctx.schedule_oneshot(move |_| o.borrow_mut().push(i));
    }
    assert!(f.poll(true).unwrap());
    assert!(!f.poll(false).unwrap());
    assert_eq!(*order.borrow(), [0, 1, 2]);
}

/// A bottom half scheduled while bottom halves run, or inside a nested
/// `poll`, runs exactly once.
pub fn bh_scheduled_during_run_or_nested_runs_once(h: &Harness) {
    let f = h.fixture();
    let (inner_runs, nested_runs) = (Count::new(), Count::new());
    let ir = inner_runs.clone();
    let inner = Rc::new(f.ctx.bh(move |_| ir.hit()));
    let nr = nested_runs.clone();
    let nested = Rc::new(f.ctx.bh(move |_| nr.hit()));
    let (i, n) = (Rc::clone(&inner), Rc::clone(&nested));
    let outer = f.ctx.bh(move |ctx| {
        i.schedule(); // during the run: next iteration
        n.schedule();
        ctx.poll(false).unwrap(); // a nested poll runs `nested` (and `inner`)
    });
    outer.schedule();
    f.poll(true).unwrap();
    f.poll(false).unwrap();
    f.poll(false).unwrap();
    assert_eq!(inner_runs.get(), 1);
    assert_eq!(nested_runs.get(), 1);
}

/// A nested `poll` from a bottom half finishes the jobs its parent had not
/// reached yet (so a nested wait for them cannot hang), each once.
pub fn bh_nested_poll_runs_parents_remaining_jobs(h: &Harness) {
    let f = h.fixture();
    let second_runs = Count::new();
    let seen_in_nested = Rc::new(std::cell::Cell::new(false));
    let s = second_runs.clone();
    let seen = Rc::clone(&seen_in_nested);
    let watched = second_runs.clone();
    f.ctx.schedule_oneshot(move |ctx| {
        ctx.poll(false).unwrap();
        seen.set(watched.get() == 1);
    });
    f.ctx.schedule_oneshot(move |_| s.hit());
    f.poll(false).unwrap();
    assert!(
        seen_in_nested.get(),
        "the nested poll ran the parent's next job"
    );
    assert_eq!(second_runs.get(), 1);
}

/// An idle bottom half runs within 10 ms without counting as progress.
pub fn bh_idle_runs_within_10ms(h: &Harness) {
    let f = h.fixture_manual();
    let runs = Count::new();
    let r = runs.clone();
    let bh = f.ctx.bh(move |_| r.hit());
    bh.schedule_idle();
    let start = f.ctx.now_ns();
    let progress = f.poll(true).unwrap();
    assert_eq!(runs.get(), 1);
    assert!(!progress, "an idle bottom half is not progress");
    assert!(
        f.ctx.now_ns() - start <= 10_000_000,
        "it waited at most 10 ms"
    );
}

/// A bottom half scheduled from another thread wakes a blocked `poll(true)`.
pub fn bh_from_another_thread_wakes_poll(h: &Harness) {
    let f = h.fixture();
    let runs = Count::new();
    let r = runs.clone();
    let bh = f.ctx.bh(move |_| r.hit());
    let remote = bh.remote();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let home = crate::testing::ThreadProbe::current();
    let thread = thread::spawn(move || {
        home.wait_until_blocked();
        remote.schedule().unwrap();
    });
    while runs.get() == 0 {
        f.poll(true).unwrap();
    }
    thread.join().unwrap();
    assert_eq!(runs.get(), 1);
}

/// A closure sent from another thread runs once, on the home thread.
pub fn remote_closure_runs_on_home_thread(h: &Harness) {
    let f = h.fixture();
    let remote = f.ctx.remote();
    let home = thread::current().id();
    let (tx, rx) = std::sync::mpsc::channel();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let sender = thread::spawn(move || {
        for i in 0..3 {
            let tx = tx.clone();
            remote
                .schedule(move |_| tx.send((i, thread::current().id())).unwrap())
                .unwrap();
        }
    });
    let mut got = Vec::new();
    while got.len() < 3 {
        f.poll(true).unwrap();
        got.extend(rx.try_iter());
    }
    sender.join().unwrap();
    assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(got.iter().all(|(_, id)| *id == home));
}
