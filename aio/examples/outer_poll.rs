//! A context driven by a plain `poll(2)` loop of the program's own, the way
//! QEMU nests its contexts in the glib main loop: `prepare`, sleep on the
//! context's loop fd (beside the program's own fds), `check`, `dispatch`.
//!
//! Run with `cargo run -p aio --example outer_poll`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio::prelude::*;
use rustix::event::{PollFd, PollFlags, Timespec, poll};

fn main() -> std::io::Result<()> {
    let ctx = AioContext::new()?;
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let timer = ctx.timer(move |_ctx| f.set(f.get() + 1));
    timer.arm_in(Duration::from_millis(5));
    let remote = ctx.remote();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2));
        remote
            .schedule(|_ctx| println!("a job from another thread"))
            .unwrap();
    });

    let (mut loop_fd, mut moves) = (ctx.loop_fd()?, ctx.monitor_moves());
    while fired.get() == 0 {
        let timeout = ctx.prepare()?;
        if ctx.monitor_moves() != moves {
            // The context moved to another monitor: watch its fd instead.
            (loop_fd, moves) = (ctx.loop_fd()?, ctx.monitor_moves());
        }
        let mut fds = [PollFd::new(&loop_fd, PollFlags::IN)];
        let timeout = timeout.map(|t| Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if ctx.check()? {
            ctx.dispatch()?;
        }
    }
    println!("the timer fired; the context ran on {}", ctx.backend());
    Ok(())
}
