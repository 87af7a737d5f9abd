//! A model-based test of fd handlers: random programs register, replace and
//! remove handlers over a few fds, make the fds readable or not, inject raw
//! events and poll; the handlers' callbacks themselves remove, replace and
//! nest. Every callback run and every drop of a callback is logged and
//! checked against a plain model of what the context must do, whatever order
//! it dispatches one iteration in.
//!
//! Checked, after every operation and at the end:
//!
//! 1. a callback runs only while its handler is registered, in an iteration
//!    that began after it was registered and saw its fd readable (or an
//!    event injected for its token), at most once per iteration;
//! 2. a running callback is never re-entered by a nested `poll`;
//! 3. every callback is dropped exactly once, never while registered or
//!    running; a handler removed or replaced outside `poll` at once, one
//!    removed or replaced by a callback only after the last callback of the
//!    outermost `poll` returned, with no nested `poll` left on the stack, and
//!    before that `poll` returns;
//! 4. at a top-level `poll`, a handler that had a readable fd when the
//!    iteration began and that nobody removed or replaced during it runs:
//!    exactly once without nested calls, at least once with them;
//! 5. `poll` reports progress exactly when a callback ran during it, and
//!    `handler_count` follows the model.
//!
//! The model and its rules are in `reference.rs`; this file has the
//! programs, the driver that runs them on a context and tells the model,
//! and the property.
//!
//! The depth recorded at a drop is counted by the test around its own calls
//! of `poll`, so a drop as the outermost `poll` ends is seen inside that
//! call: hence "no callback running, no nested call on the stack, after the
//! last callback and before the call returns".

mod reference;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use aio_core::testing::{self, Count, DropProbe, Harness, SimWorld, TestEvent};
use aio_core::{AioContext, FdHandler, Readiness, ReadyEvent, Token};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reference::{FDS, Id, Model};

/// How many `poll` calls may be on the stack: the top-level one and two
/// nested levels.
const MAX_POLLS: usize = 3;

/// One thing a read callback does when it runs, in order.
#[derive(Clone, Debug)]
enum Step {
    /// Makes its own fd not readable.
    ClearOwn,
    /// Removes the handler of an fd (maybe its own).
    Remove(usize),
    /// Registers a new handler, with this script, on an fd (maybe its own),
    /// replacing the one there.
    Replace(usize, Script),
    /// Calls `poll(false)`, unless that would nest too deep.
    NestedPoll,
}

/// What a read callback does each time it runs; empty: nothing.
#[derive(Clone)]
struct Script(Vec<Step>);

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// One operation of a program, done outside any callback.
#[derive(Clone, Debug)]
enum Op {
    /// Registers a new handler on an fd, or replaces the fd's handler.
    Register(usize, Script),
    /// Removes the fd's handler (nothing if it has none).
    Remove(usize),
    /// Makes the fd readable.
    Set(usize),
    /// Makes the fd not readable.
    Clear(usize),
    /// A top-level `poll(false)`.
    Poll,
    /// Injects an event for the current token of the fd's handler: the next
    /// iteration sees it even if the fd is not readable.
    InjectCurrent(usize),
    /// Injects an event for the token of a removed or replaced handler
    /// (the n-th one, wrapping), which must be dropped.
    InjectStale(usize),
}

/// What the program and its callbacks share.
struct Shared {
    events: Vec<TestEvent>,
    fds: [RawFd; FDS],
    world: Arc<SimWorld>,
    model: RefCell<Model>,
    /// Drops of all callbacks, counted by probes.
    drops: Count,
    /// A drop found the model borrowed (a bug of this test).
    conflict: Cell<bool>,
}

/// Logs the drop of the callback it is moved into.
struct DropGuard {
    id: Id,
    shared: Rc<Shared>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        match self.shared.model.try_borrow_mut() {
            Ok(mut model) => model.dropped(self.id),
            Err(_) => self.shared.conflict.set(true),
        }
    }
}

/// A new handler with `script` for `fd`, entered in the model (which
/// retires the handler the fd had): the caller must register it.
fn make_handler(shared: &Rc<Shared>, fd: usize, script: Script) -> (Id, FdHandler) {
    let id = shared.model.borrow_mut().install(fd);
    let guard = DropGuard {
        id,
        shared: Rc::clone(shared),
    };
    let probe = DropProbe::new(&shared.drops);
    let sh = Rc::clone(shared);
    let handler = FdHandler::new().on_read(move |ctx| {
        let _ = (&guard, &probe);
        run_script(&sh, ctx, id, fd, &script);
    });
    (id, handler)
}

fn note_token(shared: &Shared, ctx: &AioContext, id: Id, fd: usize) {
    let token = testing::token_of(ctx, shared.fds[fd]);
    shared.model.borrow_mut().note_token(id, fd, token);
}

fn run_script(shared: &Rc<Shared>, ctx: &AioContext, id: Id, fd: usize, script: &Script) {
    shared.model.borrow_mut().enter(id, fd);
    for step in &script.0 {
        match step {
            Step::ClearOwn => {
                shared.events[fd].clear();
                shared.model.borrow_mut().set_readable(fd, false);
            }
            Step::Remove(target) => {
                shared.model.borrow_mut().remove(*target);
                ctx.set_fd_handler(shared.fds[*target], None)
                    .expect("removal from a callback");
            }
            Step::Replace(target, script) => {
                let (new, handler) = make_handler(shared, *target, script.clone());
                ctx.set_fd_handler(shared.fds[*target], Some(handler))
                    .expect("replacement from a callback");
                note_token(shared, ctx, new, *target);
            }
            Step::NestedPoll => {
                let depth = shared.model.borrow().depth();
                if depth < MAX_POLLS {
                    poll(shared, ctx);
                }
            }
        }
    }
    shared.model.borrow_mut().leave(id);
}

fn poll(shared: &Shared, ctx: &AioContext) {
    shared.model.borrow_mut().begin_poll();
    let progress = ctx.poll(false).expect("poll(false) on the sim");
    shared.model.borrow_mut().end_poll(progress);
}

/// Does one top-level operation.
fn apply(shared: &Rc<Shared>, ctx: &AioContext, op: &Op) {
    match op {
        Op::Register(fd, script) => {
            let old = shared.model.borrow().handler_of(*fd);
            let (id, handler) = make_handler(shared, *fd, script.clone());
            ctx.set_fd_handler(shared.fds[*fd], Some(handler))
                .expect("registration");
            note_token(shared, ctx, id, *fd);
            if let Some(old) = old {
                shared.model.borrow_mut().check_dropped_at_once(old);
            }
        }
        Op::Remove(fd) => {
            let old = shared.model.borrow_mut().remove(*fd);
            ctx.set_fd_handler(shared.fds[*fd], None).expect("removal");
            if let Some(old) = old {
                shared.model.borrow_mut().check_dropped_at_once(old);
            }
        }
        Op::Set(fd) => {
            shared.events[*fd].set();
            shared.model.borrow_mut().set_readable(*fd, true);
        }
        Op::Clear(fd) => {
            shared.events[*fd].clear();
            shared.model.borrow_mut().set_readable(*fd, false);
        }
        Op::Poll => top_level_poll(shared, ctx),
        Op::InjectCurrent(fd) => {
            let token = shared.model.borrow_mut().inject_current(*fd);
            if let Some(token) = token {
                inject(shared, token);
            }
        }
        Op::InjectStale(n) => {
            let token = shared.model.borrow().stale_token(*n);
            if let Some(token) = token {
                inject(shared, token);
            }
        }
    }
}

fn inject(shared: &Shared, token: Token) {
    shared.world.inject(ReadyEvent {
        token,
        readiness: Readiness::READABLE,
    });
}

fn top_level_poll(shared: &Shared, ctx: &AioContext) {
    let start = shared.model.borrow_mut().begin_top();
    poll(shared, ctx);
    shared.model.borrow_mut().end_top(start);
}

fn fail(shared: &Shared, harness: &Harness, op: Option<(usize, &Op)>) -> Result<(), TestCaseError> {
    if shared.conflict.get() {
        return Err(TestCaseError::fail("a drop found the model borrowed"));
    }
    shared.model.borrow().verdict().map_err(|broken| {
        let at = match op {
            Some((i, op)) => format!("{harness:?}, after operation {i} ({op:?})"),
            None => format!("{harness:?}, at the end"),
        };
        TestCaseError::fail(format!("{at}:\n{broken}"))
    })
}

fn run_program(harness: &Harness, ops: &[Op]) -> Result<(), TestCaseError> {
    let f = harness.fixture();
    let events: Vec<TestEvent> = (0..FDS).map(|_| f.event()).collect();
    let fds = std::array::from_fn(|i| events[i].as_raw_fd());
    let shared = Rc::new(Shared {
        events,
        fds,
        world: Arc::clone(f.world().expect("a sim fixture")),
        model: RefCell::default(),
        drops: Count::new(),
        conflict: Cell::new(false),
    });
    for (i, op) in ops.iter().enumerate() {
        apply(&shared, &f.ctx, op);
        shared
            .model
            .borrow_mut()
            .check_between(f.ctx.handler_count());
        fail(&shared, harness, Some((i, op)))?;
    }
    shared.model.borrow_mut().context_dropped();
    drop(f);
    shared.model.borrow_mut().check_end(shared.drops.get());
    fail(&shared, harness, None)
}

fn leaf_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::ClearOwn),
        1 => (0..FDS).prop_map(Step::Remove),
        2 => Just(Step::NestedPoll),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    let leaf = prop::collection::vec(leaf_step(), 0..=3).prop_map(Script);
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop::collection::vec(
            prop_oneof![
                3 => leaf_step(),
                1 => (0..FDS, inner).prop_map(|(fd, s)| Step::Replace(fd, s)),
            ],
            0..=3,
        )
        .prop_map(Script)
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..FDS, script()).prop_map(|(fd, s)| Op::Register(fd, s)),
        1 => (0..FDS).prop_map(Op::Remove),
        4 => (0..FDS).prop_map(Op::Set),
        1 => (0..FDS).prop_map(Op::Clear),
        5 => Just(Op::Poll),
        1 => (0..FDS).prop_map(Op::InjectCurrent),
        1 => (0..8usize).prop_map(Op::InjectStale),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // A failing program is printed shrunk; no regression file is kept.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn handlers_follow_the_model(ops in prop::collection::vec(op(), 1..80)) {
        // Both modes of the sim: readiness behind a system call, and
        // readiness visible without one.
        run_program(&Harness::sim(), &ops)?;
        run_program(&Harness::sim_observable(), &ops)?;
    }
}
