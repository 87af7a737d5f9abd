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
//! The depth recorded at a drop is counted by the test around its own calls
//! of `poll`, so a drop as the outermost `poll` ends is seen inside that
//! call: hence "no callback running, no nested call on the stack, after the
//! last callback and before the call returns".

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use aio_core::testing::{self, Count, DropProbe, Harness, SimWorld, TestEvent};
use aio_core::{AioContext, FdHandler, Readiness, ReadyEvent, Token};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// How many fds a program works on.
const FDS: usize = 4;
/// How many `poll` calls may be on the stack: the top-level one and two
/// nested levels.
const MAX_POLLS: usize = 3;

/// Every handler a program makes gets a new id.
type Id = u32;

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

/// What the log records, in the order it happened.
#[derive(Clone, Copy)]
enum Entry {
    /// A read callback started, with `polls` calls of `poll` on the stack.
    Run { id: Id, polls: usize },
    /// A callback was dropped.
    Drop {
        id: Id,
        polls: usize,
        running: usize,
    },
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Run { id, polls } => write!(f, "run {id} (polls {polls})"),
            Entry::Drop { id, polls, running } => {
                write!(f, "drop {id} (polls {polls}, running {running})")
            }
        }
    }
}

/// Where the program was when something happened.
#[derive(Clone, Copy, Debug)]
struct When {
    /// The model's clock: one tick per logged thing.
    at: u64,
    /// `poll` calls on the stack.
    polls: usize,
    /// Callbacks on the stack.
    running: usize,
}

#[derive(Debug)]
struct Handler {
    fd: usize,
    registered_at: u64,
    token: Option<Token>,
    removed: Option<When>,
    runs: u32,
    drops: Vec<When>,
}

/// One `poll` call on the stack.
#[derive(Debug)]
struct Level {
    started: u64,
    /// Which fds were readable when the iteration began.
    readable: [bool; FDS],
    /// The handlers with an injected event for this iteration.
    injected: Vec<Id>,
    /// The handlers that ran in this iteration.
    ran: BTreeSet<Id>,
    /// Whether any callback ran during this call, nested ones included.
    any_run: bool,
}

/// What a top-level poll keeps track of.
#[derive(Debug, Default)]
struct TopPoll {
    /// Handlers removed or replaced during it.
    touched: BTreeSet<Id>,
    /// Whether a callback called `poll`.
    nested: bool,
    /// When the last callback started.
    last_run: u64,
}

/// The model, and the log of what the context did.
#[derive(Debug, Default)]
struct Model {
    tick: u64,
    next_id: Id,
    /// Which handler each fd has.
    reg: [Option<Id>; FDS],
    /// Which fds are readable.
    readable: [bool; FDS],
    /// Handlers with an injected event for the next top-level iteration.
    injected: Vec<Id>,
    levels: Vec<Level>,
    running: Vec<Id>,
    handlers: BTreeMap<Id, Handler>,
    top: Option<TopPoll>,
    /// The context is being dropped: its handlers go with it.
    ctx_dropped: bool,
    log: Vec<Entry>,
    violations: Vec<String>,
}

impl Model {
    fn now(&mut self) -> When {
        self.tick += 1;
        When {
            at: self.tick,
            polls: self.levels.len(),
            running: self.running.len(),
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// A new handler for `fd`, replacing the one there.
    fn install(&mut self, fd: usize) -> Id {
        let when = self.now();
        let id = self.next_id;
        self.next_id += 1;
        if let Some(old) = self.reg[fd] {
            self.retire(old, when);
        }
        self.reg[fd] = Some(id);
        self.handlers.insert(
            id,
            Handler {
                fd,
                registered_at: when.at,
                token: None,
                removed: None,
                runs: 0,
                drops: Vec::new(),
            },
        );
        id
    }

    /// Removes the handler of `fd`, if any.
    fn remove(&mut self, fd: usize) -> Option<Id> {
        let when = self.now();
        let old = self.reg[fd].take()?;
        self.retire(old, when);
        Some(old)
    }

    fn retire(&mut self, id: Id, when: When) {
        self.handlers.get_mut(&id).expect("known id").removed = Some(when);
        if let Some(top) = &mut self.top {
            top.touched.insert(id);
        }
    }

    fn begin_poll(&mut self) {
        let when = self.now();
        let injected = if self.levels.is_empty() {
            std::mem::take(&mut self.injected)
        } else {
            if let Some(top) = &mut self.top {
                top.nested = true;
            }
            Vec::new()
        };
        self.levels.push(Level {
            started: when.at,
            readable: self.readable,
            injected,
            ran: BTreeSet::new(),
            any_run: false,
        });
    }

    fn end_poll(&mut self, progress: bool) {
        let level = self.levels.pop().expect("a poll level");
        if progress != level.any_run {
            self.violation(format!(
                "poll at depth {} returned progress {progress}, but a callback {} during it",
                self.levels.len() + 1,
                if level.any_run { "ran" } else { "did not run" }
            ));
        }
    }

    /// Handler `id` of `fd` starts its read callback.
    fn enter(&mut self, id: Id, fd: usize) {
        let when = self.now();
        self.log.push(Entry::Run {
            id,
            polls: when.polls,
        });
        if let Some(top) = &mut self.top {
            top.last_run = when.at;
        }
        if self.reg[fd] != Some(id) {
            let what = format!(
                "handler {id} ran, but fd {fd} has handler {:?} (removed at {:?})",
                self.reg[fd], self.handlers[&id].removed
            );
            self.violation(what);
        }
        if self.running.contains(&id) {
            let what = format!("handler {id} was re-entered (running: {:?})", self.running);
            self.violation(what);
        }
        let (registered_at, home) = (self.handlers[&id].registered_at, self.handlers[&id].fd);
        if home != fd {
            self.violation(format!("handler {id} of fd {home} ran for fd {fd}"));
        }
        match self.levels.last_mut() {
            None => {
                self.violation(format!("handler {id} ran outside poll"));
            }
            Some(level) => {
                let started = level.started;
                let seen = level.readable[fd] || level.injected.contains(&id);
                let again = !level.ran.insert(id);
                if registered_at > started {
                    self.violation(format!(
                        "handler {id} ran in an iteration that began (tick {started}) \
                         before it was registered (tick {registered_at})"
                    ));
                }
                if !seen {
                    self.violation(format!(
                        "handler {id} ran, but fd {fd} was not readable when the \
                         iteration began and no event was injected for it"
                    ));
                }
                if again {
                    self.violation(format!("handler {id} ran twice in one iteration"));
                }
            }
        }
        for level in &mut self.levels {
            level.any_run = true;
        }
        self.handlers.get_mut(&id).expect("known id").runs += 1;
        self.running.push(id);
    }

    fn leave(&mut self, id: Id) {
        if self.running.pop() != Some(id) {
            self.violation(format!("handler {id} returned out of order"));
        }
    }

    /// A callback of handler `id` is dropped.
    fn dropped(&mut self, id: Id) {
        let when = self.now();
        self.log.push(Entry::Drop {
            id,
            polls: when.polls,
            running: when.running,
        });
        let registered = self.handlers[&id].removed.is_none();
        if registered && !self.ctx_dropped {
            self.violation(format!("handler {id} was dropped while registered"));
        }
        if self.running.contains(&id) {
            self.violation(format!("handler {id} was dropped while running"));
        }
        self.handlers
            .get_mut(&id)
            .expect("known id")
            .drops
            .push(when);
    }

    /// What must hold between operations.
    fn check_quiescent(&mut self) {
        let mut found = Vec::new();
        for (id, h) in &self.handlers {
            let Some(removed) = h.removed else {
                if !h.drops.is_empty() && !self.ctx_dropped {
                    found.push(format!("registered handler {id} was dropped"));
                }
                continue;
            };
            let [dropped] = h.drops[..] else {
                found.push(format!(
                    "handler {id}, removed at {removed:?}, was dropped {} times, not once, \
                     by the end of the operation",
                    h.drops.len()
                ));
                continue;
            };
            if dropped.at < removed.at {
                found.push(format!(
                    "handler {id} was dropped ({dropped:?}) before it was removed ({removed:?})"
                ));
            }
            if removed.polls == 0 {
                if dropped.polls != 0 {
                    found.push(format!(
                        "handler {id} was removed outside poll ({removed:?}), but dropped \
                         inside ({dropped:?})"
                    ));
                }
            } else if dropped.running != 0 || dropped.polls > 1 {
                found.push(format!(
                    "handler {id} was removed inside poll ({removed:?}) and dropped before \
                     the outermost poll ended ({dropped:?})"
                ));
            }
        }
        self.violations.extend(found);
    }

    fn runs(&self) -> BTreeMap<Id, u32> {
        self.handlers.iter().map(|(id, h)| (*id, h.runs)).collect()
    }

    fn registered(&self) -> usize {
        self.reg.iter().flatten().count()
    }
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
    let mut model = shared.model.borrow_mut();
    if token.is_none() {
        model.violation(format!("no token for fd {fd} after registering {id}"));
    }
    model.handlers.get_mut(&id).expect("known id").token = token;
}

fn run_script(shared: &Rc<Shared>, ctx: &AioContext, id: Id, fd: usize, script: &Script) {
    shared.model.borrow_mut().enter(id, fd);
    for step in &script.0 {
        match step {
            Step::ClearOwn => {
                shared.events[fd].clear();
                shared.model.borrow_mut().readable[fd] = false;
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
                let depth = shared.model.borrow().levels.len();
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
            let old = shared.model.borrow().reg[*fd];
            let (id, handler) = make_handler(shared, *fd, script.clone());
            ctx.set_fd_handler(shared.fds[*fd], Some(handler))
                .expect("registration");
            note_token(shared, ctx, id, *fd);
            if let Some(old) = old {
                dropped_at_once(shared, old);
            }
        }
        Op::Remove(fd) => {
            let old = shared.model.borrow_mut().remove(*fd);
            ctx.set_fd_handler(shared.fds[*fd], None).expect("removal");
            if let Some(old) = old {
                dropped_at_once(shared, old);
            }
        }
        Op::Set(fd) => {
            shared.events[*fd].set();
            shared.model.borrow_mut().readable[*fd] = true;
        }
        Op::Clear(fd) => {
            shared.events[*fd].clear();
            shared.model.borrow_mut().readable[*fd] = false;
        }
        Op::Poll => top_level_poll(shared, ctx),
        Op::InjectCurrent(fd) => {
            let mut model = shared.model.borrow_mut();
            if let Some(id) = model.reg[*fd]
                && let Some(token) = model.handlers[&id].token
            {
                inject(shared, token);
                model.injected.push(id);
            }
        }
        Op::InjectStale(n) => {
            let model = shared.model.borrow();
            let stale: Vec<Token> = model
                .handlers
                .values()
                .filter(|h| h.removed.is_some())
                .filter_map(|h| h.token)
                .collect();
            if !stale.is_empty() {
                inject(shared, stale[n % stale.len()]);
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

/// A handler removed or replaced outside `poll` is dropped by the call.
fn dropped_at_once(shared: &Shared, id: Id) {
    let mut model = shared.model.borrow_mut();
    let drops = model.handlers[&id].drops.len();
    if drops != 1 {
        model.violation(format!(
            "handler {id}, removed outside poll, was dropped {drops} times by the removal"
        ));
    }
}

fn top_level_poll(shared: &Shared, ctx: &AioContext) {
    let (candidates, before) = {
        let mut model = shared.model.borrow_mut();
        let candidates: Vec<(usize, Id)> = (0..FDS)
            .filter_map(|fd| {
                let id = model.reg[fd]?;
                (model.readable[fd] || model.injected.contains(&id)).then_some((fd, id))
            })
            .collect();
        model.top = Some(TopPoll::default());
        (candidates, model.runs())
    };
    poll(shared, ctx);
    let mut model = shared.model.borrow_mut();
    let top = model.top.take().expect("the top-level poll");
    for (fd, id) in candidates {
        if top.touched.contains(&id) {
            continue;
        }
        let runs = model.handlers[&id].runs - before[&id];
        if runs == 0 {
            model.violation(format!(
                "handler {id} of fd {fd} was ready, untouched, and did not run"
            ));
        } else if runs != 1 && !top.nested {
            model.violation(format!(
                "handler {id} of fd {fd} ran {runs} times in one poll without nesting"
            ));
        }
    }
    let late: Vec<String> = top
        .touched
        .iter()
        .filter_map(|id| {
            let h = &model.handlers[id];
            let dropped = h.drops.first()?;
            (dropped.at < top.last_run).then(|| {
                format!(
                    "handler {id} was dropped ({dropped:?}) while the outermost poll still \
                     ran callbacks (the last began at tick {})",
                    top.last_run
                )
            })
        })
        .collect();
    model.violations.extend(late);
}

fn fail(shared: &Shared, harness: &Harness, op: Option<(usize, &Op)>) -> Result<(), TestCaseError> {
    let model = shared.model.borrow();
    if shared.conflict.get() {
        return Err(TestCaseError::fail("a drop found the model borrowed"));
    }
    if model.violations.is_empty() {
        return Ok(());
    }
    let at = match op {
        Some((i, op)) => format!("{harness:?}, after operation {i} ({op:?})"),
        None => format!("{harness:?}, at the end"),
    };
    Err(TestCaseError::fail(format!(
        "{at}:\n  {}\nlog (runs and drops): {:?}",
        model.violations.join("\n  "),
        model.log
    )))
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
        {
            let mut model = shared.model.borrow_mut();
            model.check_quiescent();
            let (want, got) = (model.registered(), f.ctx.handler_count());
            if want != got {
                model.violation(format!("handler_count is {got}, the model has {want}"));
            }
        }
        fail(&shared, harness, Some((i, op)))?;
    }
    shared.model.borrow_mut().ctx_dropped = true;
    drop(f);
    {
        let mut model = shared.model.borrow_mut();
        let mut found = Vec::new();
        for (id, h) in &model.handlers {
            if h.drops.len() != 1 {
                found.push(format!(
                    "handler {id} was dropped {} times in all",
                    h.drops.len()
                ));
            } else if h.removed.is_none() && h.drops[0].polls != 0 {
                found.push(format!("handler {id} was dropped inside poll at the end"));
            }
        }
        let total = model.handlers.len();
        if shared.drops.get() != total {
            found.push(format!(
                "the probes counted {} drops for {total} handlers",
                shared.drops.get()
            ));
        }
        model.violations.extend(found);
        model.check_quiescent();
    }
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
