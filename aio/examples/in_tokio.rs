//! A context inside a tokio runtime: an fd handler, a timer and a remote
//! wake-up served by the context while a tokio task runs beside it.
//!
//! Run with `cargo run -p aio --features tokio --example in_tokio`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio::prelude::*;

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ctx = AioContext::new()?;
    println!("context on {}", ctx.backend());

    // An fd handler: an event notifier that another thread sets.
    let kick = Rc::new(EventNotifier::new()?);
    let kicks = Rc::new(Cell::new(0));
    let (k, n) = (kick.clone(), kicks.clone());
    ctx.set_fd_handler(
        &*kick,
        Some(FdHandler::new().on_read(move |_ctx| {
            k.test_and_clear().unwrap();
            n.set(n.get() + 1);
            println!("kick {}", n.get());
        })),
    )?;

    // A timer that re-arms itself every 10 ms.
    let ticks = Rc::new(Cell::new(0));
    let tick = Rc::new(std::cell::RefCell::new(None::<Timer>));
    let (t, slot) = (ticks.clone(), tick.clone());
    *tick.borrow_mut() = Some(ctx.timer(move |_ctx| {
        t.set(t.get() + 1);
        slot.borrow()
            .as_ref()
            .unwrap()
            .arm_in(Duration::from_millis(10));
    }));
    tick.borrow()
        .as_ref()
        .unwrap()
        .arm_in(Duration::from_millis(10));

    // Another thread schedules work on the context.
    let remote = ctx.remote();
    let sender = std::thread::spawn(move || {
        for i in 0..3 {
            std::thread::sleep(Duration::from_millis(15));
            remote
                .schedule(move |_ctx| println!("remote job {i}"))
                .unwrap();
        }
    });

    runtime.block_on(async {
        let tokio_task = async {
            for i in 0..5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                println!("tokio task step {i}");
                kick.set().unwrap();
            }
        };
        tokio::select! {
            result = aio::tokio::drive(&ctx) => { result?; }
            () = tokio_task => {}
        }
        Ok::<(), std::io::Error>(())
    })?;
    sender.join().unwrap();
    println!("{} kicks, {} ticks", kicks.get(), ticks.get());
    tick.borrow_mut().take();
    Ok(())
}
