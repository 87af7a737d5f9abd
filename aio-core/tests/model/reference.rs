//! The reference model of the `model` test: what the context must have done to
//! the handlers of a program, kept as a plain state machine that the
//! program's driver tells what it does (registrations, readiness, `poll`
//! calls) and what the context did (callbacks run and dropped), and the
//! rules that are checked against it. The rules broken are collected, with
//! a log of runs and drops, for the failure message.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aio_core::Token;

/// How many fds a program works on.
pub(super) const FDS: usize = 4;

/// Every handler a program makes gets a new id.
pub(super) type Id = u32;

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
pub(super) struct Model {
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
    pub(super) fn install(&mut self, fd: usize) -> Id {
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
    pub(super) fn remove(&mut self, fd: usize) -> Option<Id> {
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

    pub(super) fn begin_poll(&mut self) {
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

    pub(super) fn end_poll(&mut self, progress: bool) {
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
    pub(super) fn enter(&mut self, id: Id, fd: usize) {
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

    pub(super) fn leave(&mut self, id: Id) {
        if self.running.pop() != Some(id) {
            self.violation(format!("handler {id} returned out of order"));
        }
    }

    /// A callback of handler `id` is dropped.
    pub(super) fn dropped(&mut self, id: Id) {
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
    pub(super) fn check_quiescent(&mut self) {
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

    /// Makes `fd` readable in the model, or not.
    pub(super) fn set_readable(&mut self, fd: usize, readable: bool) {
        self.readable[fd] = readable;
    }

    /// The handler `fd` has.
    pub(super) fn handler_of(&self, fd: usize) -> Option<Id> {
        self.reg[fd]
    }

    /// How many `poll` calls are on the stack.
    pub(super) fn depth(&self) -> usize {
        self.levels.len()
    }

    /// Records the token the context gave handler `id` of `fd`.
    pub(super) fn note_token(&mut self, id: Id, fd: usize, token: Option<Token>) {
        if token.is_none() {
            self.violation(format!("no token for fd {fd} after registering {id}"));
        }
        self.handlers.get_mut(&id).expect("known id").token = token;
    }

    /// The token of `fd`'s handler, if it has one, with an event injected
    /// for it in the next top-level iteration.
    pub(super) fn inject_current(&mut self, fd: usize) -> Option<Token> {
        let id = self.reg[fd]?;
        let token = self.handlers[&id].token?;
        self.injected.push(id);
        Some(token)
    }

    /// The token of a removed or replaced handler (the n-th one, wrapping).
    pub(super) fn stale_token(&self, n: usize) -> Option<Token> {
        let stale: Vec<Token> = self
            .handlers
            .values()
            .filter(|h| h.removed.is_some())
            .filter_map(|h| h.token)
            .collect();
        (!stale.is_empty()).then(|| stale[n % stale.len()])
    }

    /// A handler removed or replaced outside `poll` is dropped by the call.
    pub(super) fn check_dropped_at_once(&mut self, id: Id) {
        let drops = self.handlers[&id].drops.len();
        if drops != 1 {
            self.violation(format!(
                "handler {id}, removed outside poll, was dropped {drops} times by the removal"
            ));
        }
    }

    /// A top-level `poll` is about to be called: what must run in it.
    pub(super) fn begin_top(&mut self) -> TopStart {
        let candidates: Vec<(usize, Id)> = (0..FDS)
            .filter_map(|fd| {
                let id = self.reg[fd]?;
                (self.readable[fd] || self.injected.contains(&id)).then_some((fd, id))
            })
            .collect();
        self.top = Some(TopPoll::default());
        TopStart {
            candidates,
            runs: self.runs(),
        }
    }

    /// The top-level `poll` begun with `start` returned: each handler that
    /// had a readable fd and that nobody removed or replaced ran (once,
    /// without nested calls), and none removed during it was dropped while
    /// callbacks still ran.
    pub(super) fn end_top(&mut self, start: TopStart) {
        let top = self.top.take().expect("the top-level poll");
        for (fd, id) in start.candidates {
            if top.touched.contains(&id) {
                continue;
            }
            let runs = self.handlers[&id].runs - start.runs[&id];
            if runs == 0 {
                self.violation(format!(
                    "handler {id} of fd {fd} was ready, untouched, and did not run"
                ));
            } else if runs != 1 && !top.nested {
                self.violation(format!(
                    "handler {id} of fd {fd} ran {runs} times in one poll without nesting"
                ));
            }
        }
        let late: Vec<String> = top
            .touched
            .iter()
            .filter_map(|id| {
                let h = &self.handlers[id];
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
        self.violations.extend(late);
    }

    /// What must hold between operations, with the context's handler
    /// count `handler_count`.
    pub(super) fn check_between(&mut self, handler_count: usize) {
        self.check_quiescent();
        let want = self.registered();
        if want != handler_count {
            self.violation(format!(
                "handler_count is {handler_count}, the model has {want}"
            ));
        }
    }

    /// The context is being dropped: its handlers go with it.
    pub(super) fn context_dropped(&mut self) {
        self.ctx_dropped = true;
    }

    /// What must hold once the context is gone, `probed` being the drops
    /// that the probes counted: every handler dropped once, none inside
    /// `poll`.
    pub(super) fn check_end(&mut self, probed: usize) {
        let mut found = Vec::new();
        for (id, h) in &self.handlers {
            if h.drops.len() != 1 {
                found.push(format!(
                    "handler {id} was dropped {} times in all",
                    h.drops.len()
                ));
            } else if h.removed.is_none() && h.drops[0].polls != 0 {
                found.push(format!("handler {id} was dropped inside poll at the end"));
            }
        }
        let total = self.handlers.len();
        if probed != total {
            found.push(format!(
                "the probes counted {probed} drops for {total} handlers"
            ));
        }
        self.violations.extend(found);
        self.check_quiescent();
    }

    /// The rules broken so far, with the log, if any was.
    pub(super) fn verdict(&self) -> Result<(), String> {
        if self.violations.is_empty() {
            return Ok(());
        }
        Err(format!(
            "  {}\nlog (runs and drops): {:?}",
            self.violations.join("\n  "),
            self.log
        ))
    }
}

/// What a top-level `poll` must do, noted before it is called.
pub(super) struct TopStart {
    /// The handlers with a readable fd or an injected event, and their fds.
    candidates: Vec<(usize, Id)>,
    /// How many times each handler had run.
    runs: BTreeMap<Id, u32>,
}
