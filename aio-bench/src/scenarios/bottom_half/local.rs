//! The local forms, all on the home thread with polling off: **one-shot**
//! (`schedule_oneshot`; tokio: `spawn_local` and await), **reused** (one
//! [`BottomHalf`] scheduled again and again; tokio: a task woken through a
//! `Notify`) and **chain** (a bottom half that reschedules itself; tokio:
//! `yield_now`). Each is a [`Local`] that runs `n` of them and checks that
//! each ran once.
//!
//! Separate from the remote form, which has a second thread, its own
//! timing and its own references.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use aio::prelude::*;

use super::{QUEUE, TOKIO};
use crate::env::{Env, Monitor};
use crate::measure::Variant;
use crate::peers::tokio_runtime;
use crate::scenarios::check_done;

/// A variant that runs bottom halves on the home thread.
pub(super) trait Local {
    /// Runs `n` of them; fails unless each ran once.
    fn run(&mut self, n: u64) -> io::Result<()>;
}

struct AioOneshot {
    ctx: AioContext,
    ran: Rc<Cell<u64>>,
}

impl Local for AioOneshot {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        for _ in 0..n {
            let ran = Rc::clone(&self.ran);
            self.ctx
                .schedule_oneshot(move |_ctx| ran.set(ran.get() + 1));
            self.ctx.poll(false)?;
        }
        check_done("one-shot", n, self.ran.get() - before)
    }
}

/// The floor of a one-shot bottom half: a boxed closure pushed on a
/// `VecDeque` and popped and run, with no loop around it.
struct QueueOneshot {
    queue: VecDeque<Box<dyn FnOnce()>>,
    ran: Rc<Cell<u64>>,
}

impl Local for QueueOneshot {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        for _ in 0..n {
            let ran = Rc::clone(&self.ran);
            self.queue.push_back(std::hint::black_box(Box::new(move || {
                ran.set(ran.get() + 1)
            })));
            while let Some(f) = self.queue.pop_front() {
                f();
            }
        }
        check_done(QUEUE, n, self.ran.get() - before)
    }
}

struct AioReused {
    // Declared first so it drops before its context.
    bh: BottomHalf,
    ctx: AioContext,
    ran: Rc<Cell<u64>>,
}

impl Local for AioReused {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        for _ in 0..n {
            self.bh.schedule();
            self.ctx.poll(false)?;
        }
        check_done("reused", n, self.ran.get() - before)
    }
}

/// A bottom half that reschedules itself while `left` is not zero.
struct AioChain {
    ctx: AioContext,
    bh: Rc<OnceCell<BottomHalf>>,
    ran: Rc<Cell<u64>>,
    left: Rc<Cell<u64>>,
}

impl AioChain {
    fn new(ctx: AioContext) -> AioChain {
        let (ran, left) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
        let slot: Rc<OnceCell<BottomHalf>> = Rc::new(OnceCell::new());
        let bh = {
            let (ran, left, slot) = (Rc::clone(&ran), Rc::clone(&left), Rc::downgrade(&slot));
            ctx.bh(move |_ctx| {
                ran.set(ran.get() + 1);
                left.set(left.get().saturating_sub(1));
                if left.get() > 0
                    && let Some(slot) = slot.upgrade()
                    && let Some(me) = slot.get()
                {
                    me.schedule();
                }
            })
        };
        let _ = slot.set(bh);
        AioChain {
            ctx,
            bh: slot,
            ran,
            left,
        }
    }
}

impl Local for AioChain {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        self.left.set(n);
        if let Some(bh) = self.bh.get() {
            bh.schedule();
        }
        for _ in 0..n {
            self.ctx.poll(false)?;
        }
        check_done("chain", n, self.ran.get() - before)
    }
}

/// tokio one-shot: `spawn_local` on a `LocalSet`, then await it.
struct TokioOneshot {
    rt: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
    ran: Rc<Cell<u64>>,
}

impl Local for TokioOneshot {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        let ran = &self.ran;
        self.local.block_on(&self.rt, async {
            for _ in 0..n {
                let ran = Rc::clone(ran);
                let task = tokio::task::spawn_local(async move { ran.set(ran.get() + 1) });
                task.await.map_err(io::Error::other)?;
            }
            Ok::<(), io::Error>(())
        })?;
        check_done("tokio one-shot", n, self.ran.get() - before)
    }
}

/// tokio reused: a task on a `LocalSet` waits on one `Notify` and answers
/// on another.
struct TokioReused {
    rt: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
    wake: Rc<tokio::sync::Notify>,
    answer: Rc<tokio::sync::Notify>,
    ran: Rc<Cell<u64>>,
}

impl TokioReused {
    fn new() -> io::Result<TokioReused> {
        let local = tokio::task::LocalSet::new();
        let (wake, answer) = (
            Rc::new(tokio::sync::Notify::new()),
            Rc::new(tokio::sync::Notify::new()),
        );
        let ran = Rc::new(Cell::new(0));
        {
            let (wake, answer, ran) = (Rc::clone(&wake), Rc::clone(&answer), Rc::clone(&ran));
            local.spawn_local(async move {
                loop {
                    wake.notified().await;
                    ran.set(ran.get() + 1);
                    answer.notify_one();
                }
            });
        }
        Ok(TokioReused {
            rt: tokio_runtime()?,
            local,
            wake,
            answer,
            ran,
        })
    }
}

impl Local for TokioReused {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        let (wake, answer) = (&self.wake, &self.answer);
        self.local.block_on(&self.rt, async {
            for _ in 0..n {
                wake.notify_one();
                answer.notified().await;
            }
        });
        check_done("tokio reused", n, self.ran.get() - before)
    }
}

/// tokio chain: a future that yields to the runtime once per iteration.
struct TokioChain {
    rt: tokio::runtime::Runtime,
}

impl Local for TokioChain {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let ran = self.rt.block_on(async {
            let mut ran = 0;
            for _ in 0..n {
                tokio::task::yield_now().await;
                ran += 1;
            }
            ran
        });
        check_done("tokio chain", n, ran)
    }
}

/// The local forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    Oneshot,
    Reused,
    Chain,
}

impl Form {
    pub(super) fn id(self) -> &'static str {
        match self {
            Form::Oneshot => "bottom-half/one-shot",
            Form::Reused => "bottom-half/reused",
            Form::Chain => "bottom-half/chain",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Form::Oneshot => "bottom half, one-shot: schedule_oneshot + poll(false)",
            Form::Reused => "bottom half, reused: schedule + poll(false)",
            Form::Chain => {
                "bottom half, chain: rescheduled by its own callback, one run per poll(false)"
            }
        }
    }

    fn aio(self, monitor: Monitor) -> io::Result<Box<dyn Local>> {
        let ctx = monitor.context(PollParams::OFF)?;
        let ran = Rc::new(Cell::new(0));
        Ok(match self {
            Form::Oneshot => Box::new(AioOneshot { ctx, ran }),
            Form::Reused => {
                let count = Rc::clone(&ran);
                let bh = ctx.bh(move |_ctx| count.set(count.get() + 1));
                Box::new(AioReused { bh, ctx, ran })
            }
            Form::Chain => Box::new(AioChain::new(ctx)),
        })
    }

    fn tokio(self) -> io::Result<Box<dyn Local>> {
        Ok(match self {
            Form::Oneshot => Box::new(TokioOneshot {
                rt: tokio_runtime()?,
                local: tokio::task::LocalSet::new(),
                ran: Rc::new(Cell::new(0)),
            }),
            Form::Reused => Box::new(TokioReused::new()?),
            Form::Chain => Box::new(TokioChain {
                rt: tokio_runtime()?,
            }),
        })
    }
}

/// The local variants of a form, by name.
pub(super) type Locals = Vec<(String, RefCell<Box<dyn Local>>)>;

pub(super) fn locals(env: &Env<'_>, form: Form) -> io::Result<Locals> {
    let mut locals = vec![(TOKIO.to_owned(), RefCell::new(form.tokio()?))];
    if form == Form::Oneshot {
        let queue = QueueOneshot {
            queue: VecDeque::with_capacity(1),
            ran: Rc::new(Cell::new(0)),
        };
        locals.push((QUEUE.to_owned(), RefCell::new(Box::new(queue))));
    }
    for monitor in Monitor::ALL {
        if env.wants(monitor.variant()) {
            locals.push((
                monitor.variant().to_owned(),
                RefCell::new(form.aio(monitor)?),
            ));
        }
    }
    Ok(locals)
}

pub(super) fn local_variants(
    locals: &[(String, RefCell<Box<dyn Local>>)],
    form: Form,
) -> Vec<Variant<'_>> {
    locals
        .iter()
        .map(|(name, l)| {
            let v = Variant::new(name.clone(), move |n| l.borrow_mut().run(n));
            if form != Form::Oneshot && name.starts_with("aio") {
                v.expect_no_allocs()
            } else {
                v
            }
        })
        .collect()
}
