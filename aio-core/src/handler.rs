//! `FdHandler`, the callbacks of one fd as the user builds them, and `Node`,
//! the same callbacks once registered, with the per-handler state the loop
//! keeps (deletion mark, polling state, dispatch sequence).
//!
//! Each callback sits in its own `RefCell`: a callback that is running is
//! mutably borrowed, so the loop can see that it must not call it again (a
//! nested `poll` leaves that handler's readiness for later) without any flag
//! to keep in step.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;

use crate::AioContext;
use crate::fd::FileIdentity;
use crate::monitor::{Interest, Registration, Token};

/// A callback that runs on the home thread and may use the context.
pub(crate) type Callback = Box<dyn FnMut(&AioContext)>;
/// A `poll_begin` or `poll_end` hook, as
/// [`AioContext::set_fd_poll`] takes it.
pub type PollHook = Box<dyn FnMut()>;
type Hook = PollHook;
type Check = Box<dyn FnMut() -> bool>;

/// The callbacks of one fd, built up and then registered with
/// [`AioContext::set_fd_handler`].
///
/// * `read` runs when the fd is readable, hung up or in error; `write` when
///   it is writable or in error.
/// * `poll` is a cheap check with no side effects ("did the ring index
///   move?"); when it says yes, `poll_ready` does the work in the dispatch
///   phase. Together they let the loop busy-poll instead of sleeping.
/// * `poll_begin` and `poll_end` run when the loop starts and stops busy
///   polling this handler, so a device can suppress its notifications while
///   it is being polled. They always come in pairs.
/// * An *external* handler serves client requests; it is held back while
///   [`AioContext::disable_external`] is in force.
///
/// ```
/// use aio_core::FdHandler;
///
/// let handler = FdHandler::new()
///     .on_read(|_ctx| { /* drain the fd */ })
///     .on_poll(|| false, |_ctx| { /* process the ring */ })
///     .external(true);
/// # let _ = handler;
/// ```
#[derive(Default)]
#[must_use = "a handler does nothing until it is registered with set_fd_handler"]
pub struct FdHandler {
    read: Option<Callback>,
    write: Option<Callback>,
    poll: Option<(Check, Callback)>,
    poll_begin: Option<Hook>,
    poll_end: Option<Hook>,
    external: bool,
}

impl FdHandler {
    /// A handler with no callbacks yet.
    pub fn new() -> FdHandler {
        FdHandler::default()
    }

    /// The callback for readable, hung-up or failed fds.
    pub fn on_read(mut self, f: impl FnMut(&AioContext) + 'static) -> FdHandler {
        self.read = Some(Box::new(f));
        self
    }

    /// The callback for writable or failed fds.
    pub fn on_write(mut self, f: impl FnMut(&AioContext) + 'static) -> FdHandler {
        self.write = Some(Box::new(f));
        self
    }

    /// The busy-poll pair: `poll` checks for work without side effects, and
    /// `ready` does the work when `poll` said yes.
    pub fn on_poll(
        mut self,
        poll: impl FnMut() -> bool + 'static,
        ready: impl FnMut(&AioContext) + 'static,
    ) -> FdHandler {
        self.poll = Some((Box::new(poll), Box::new(ready)));
        self
    }

    /// Runs when the loop starts busy polling this handler.
    pub fn on_poll_begin(mut self, f: impl FnMut() + 'static) -> FdHandler {
        self.poll_begin = Some(Box::new(f));
        self
    }

    /// Runs when the loop stops busy polling this handler (before it blocks,
    /// or when the handler is removed or evicted while being polled).
    pub fn on_poll_end(mut self, f: impl FnMut() + 'static) -> FdHandler {
        self.poll_end = Some(Box::new(f));
        self
    }

    /// Marks the handler as serving external clients (default `false`).
    pub fn external(mut self, external: bool) -> FdHandler {
        self.external = external;
        self
    }

    pub(crate) fn is_external(&self) -> bool {
        self.external
    }

    /// What the fd must be watched for, from the callbacks present.
    pub(crate) fn interest(&self) -> Interest {
        let mut interest = Interest::NONE;
        if self.read.is_some() {
            interest = interest | Interest::READABLE;
        }
        if self.write.is_some() {
            interest = interest | Interest::WRITABLE;
        }
        interest
    }

    /// Whether the handler has anything to run at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.read.is_none() && self.write.is_none() && self.poll.is_none()
    }
}

impl fmt::Debug for FdHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdHandler")
            .field("read", &self.read.is_some())
            .field("write", &self.write.is_some())
            .field("poll", &self.poll.is_some())
            .field("poll_begin", &self.poll_begin.is_some())
            .field("poll_end", &self.poll_end.is_some())
            .field("external", &self.external)
            .finish()
    }
}

/// Who a node belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A user's handler; `true` if external.
    User { external: bool },
    /// The context's own notifier: never progress, never external.
    Context,
}

/// A registered handler.
pub(crate) struct Node {
    pub(crate) fd: RawFd,
    /// The file `fd` named when the handler was registered. `None` where
    /// the monitor keeps track of the file itself (epoll, in release
    /// builds), or for a doorbell that is not a file of its own (as in the
    /// loom models). A move to a monitor that does not track files fills it
    /// in.
    pub(crate) file: Cell<Option<FileIdentity>>,
    /// Changes with the interest: a monitor may still deliver readiness
    /// for the old registration, which must not resolve any more.
    token: Cell<Token>,
    pub(crate) owner: Owner,
    interest: Cell<Interest>,
    read: Option<RefCell<Callback>>,
    write: Option<RefCell<Callback>>,
    poll: Option<PollHooks>,
    /// Removed or replaced: never called again.
    pub(crate) deleted: Cell<bool>,
    /// The iteration that last dispatched fd readiness / `poll_ready` to it;
    /// readiness observed by an earlier iteration is stale.
    pub(crate) fd_seq: Cell<u64>,
    pub(crate) ready_seq: Cell<u64>,
    /// The iteration whose ready list holds an fd event for it: its
    /// `poll_ready` does not run in that iteration.
    pub(crate) fd_event: Cell<u64>,
    pub(crate) polled: PolledState,
}

struct PollHooks {
    check: RefCell<Check>,
    ready: RefCell<Callback>,
    /// Replaceable after registration ([`AioContext::set_fd_poll`]).
    begin: RefCell<Option<Hook>>,
    end: RefCell<Option<Hook>>,
}

/// The adaptive-polling state of one handler.
#[derive(Default)]
pub(crate) struct PolledState {
    /// On the polled list.
    pub(crate) listed: Cell<bool>,
    /// `poll_begin` ran and `poll_end` has not yet.
    pub(crate) begun: Cell<bool>,
    /// This handler's poll time.
    pub(crate) ns: Cell<u64>,
    /// When it leaves the polled list if `poll` finds no work (0: not set).
    pub(crate) idle_deadline: Cell<u64>,
}

impl Node {
    /// A node that serves nothing: what a removed handler's node holds
    /// while it waits to be reused.
    pub(crate) fn vacant() -> Node {
        Node {
            fd: -1,
            file: Cell::new(None),
            token: Cell::new(Token(0)),
            owner: Owner::User { external: false },
            interest: Cell::new(Interest::NONE),
            read: None,
            write: None,
            poll: None,
            deleted: Cell::new(false),
            fd_seq: Cell::new(0),
            ready_seq: Cell::new(0),
            fd_event: Cell::new(0),
            polled: PolledState::default(),
        }
    }

    /// Makes the node serve `handler` on `fd`, every field set where it is:
    /// a node is a few hundred bytes, and registering a handler should not
    /// copy one around. (The pattern names every field, so a new one
    /// cannot be forgotten here.)
    pub(crate) fn fill(
        &mut self,
        fd: RawFd,
        file: Option<FileIdentity>,
        token: Token,
        handler: FdHandler,
    ) {
        let Node {
            fd: node_fd,
            file: node_file,
            token: node_token,
            owner,
            interest,
            read,
            write,
            poll,
            deleted,
            fd_seq,
            ready_seq,
            fd_event,
            polled,
        } = self;
        *node_fd = fd;
        node_file.set(file);
        node_token.set(token);
        *owner = Owner::User {
            external: handler.external,
        };
        interest.set(handler.interest());
        *read = handler.read.map(RefCell::new);
        *write = handler.write.map(RefCell::new);
        *poll = handler.poll.map(|(check, ready)| PollHooks {
            check: RefCell::new(check),
            ready: RefCell::new(ready),
            begin: RefCell::new(handler.poll_begin),
            end: RefCell::new(handler.poll_end),
        });
        deleted.set(false);
        fd_seq.set(0);
        ready_seq.set(0);
        fd_event.set(0);
        let PolledState {
            listed,
            begun,
            ns,
            idle_deadline,
        } = polled;
        listed.set(false);
        begun.set(false);
        ns.set(0);
        idle_deadline.set(0);
    }

    /// Makes the node the context's own notifier: `drain` is its read
    /// callback.
    pub(crate) fn fill_notifier(
        &mut self,
        fd: RawFd,
        file: Option<FileIdentity>,
        token: Token,
        drain: Callback,
    ) {
        self.fill(fd, file, token, FdHandler::new());
        self.owner = Owner::Context;
        self.interest.set(Interest::READABLE);
        self.read = Some(RefCell::new(drain));
    }

    /// Takes the callbacks out of a removed node, to be dropped by the
    /// caller when it holds no borrow (their captures may reach the
    /// context); the node serves nothing after.
    pub(crate) fn take_callbacks(&mut self) -> impl Sized + use<> {
        self.fd = -1;
        self.file.set(None);
        (self.read.take(), self.write.take(), self.poll.take())
    }

    /// What the monitor must watch for this node, external handlers'
    /// holding back aside.
    pub(crate) fn registration(&self) -> Option<Registration> {
        let interest = self.interest.get();
        (!interest.is_empty()).then_some(Registration {
            token: self.token.get(),
            interest,
        })
    }

    /// The token that the node's readiness comes with.
    pub(crate) fn token(&self) -> Token {
        self.token.get()
    }

    pub(crate) fn interest(&self) -> Interest {
        self.interest.get()
    }

    /// Watches for `interest` from now on, under a new token.
    pub(crate) fn set_interest(&self, interest: Interest, token: Token) {
        self.interest.set(interest);
        self.token.set(token);
    }

    /// The directions that have a callback, which an interest may ask for.
    pub(crate) fn served(&self) -> Interest {
        let mut served = Interest::NONE;
        if self.read.is_some() {
            served = served.with(Interest::READABLE);
        }
        if self.write.is_some() {
            served = served.with(Interest::WRITABLE);
        }
        served
    }

    pub(crate) fn is_external(&self) -> bool {
        self.owner == Owner::User { external: true }
    }

    /// Whether running it counts as progress.
    pub(crate) fn counts_as_progress(&self) -> bool {
        self.owner != Owner::Context
    }

    pub(crate) fn has_poll(&self) -> bool {
        self.poll.is_some()
    }

    /// Whether `fd` still names the file it named at registration (or the
    /// node has no file to compare).
    pub(crate) fn file_is_current(&self) -> bool {
        self.file.get().is_none_or(|file| file.is_still(self.fd))
    }

    /// Runs the read callback unless it is missing or already running.
    pub(crate) fn run_read(&self, ctx: &AioContext) -> bool {
        run_callback(self.read.as_ref(), ctx)
    }

    /// Runs the write callback unless it is missing or already running.
    pub(crate) fn run_write(&self, ctx: &AioContext) -> bool {
        run_callback(self.write.as_ref(), ctx)
    }

    /// Runs `poll_ready` unless it is missing or already running.
    pub(crate) fn run_poll_ready(&self, ctx: &AioContext) -> bool {
        run_callback(self.poll.as_ref().map(|p| &p.ready), ctx)
    }

    /// Asks `poll` whether there is work. A handler whose `poll_ready` is
    /// running is not asked: its answer could not be acted on until the
    /// callback returns.
    pub(crate) fn check_poll(&self) -> bool {
        let Some(hooks) = &self.poll else {
            return false;
        };
        if hooks.ready.try_borrow_mut().is_err() {
            return false;
        }
        match hooks.check.try_borrow_mut() {
            Ok(mut check) => check(),
            Err(_) => false,
        }
    }

    /// Calls `poll_begin` if it has not run since the last `poll_end`.
    pub(crate) fn begin_polling(&self) {
        if self.polled.begun.replace(true) {
            return;
        }
        if let Some(hooks) = &self.poll {
            run_hook(&hooks.begin);
        }
    }

    /// Calls `poll_end` if `poll_begin` ran.
    pub(crate) fn end_polling(&self) {
        if !self.polled.begun.replace(false) {
            return;
        }
        if let Some(hooks) = &self.poll {
            run_hook(&hooks.end);
        }
    }

    /// Replaces `poll_begin` and `poll_end`, keeping the pairs whole: a
    /// handler being polled has the old `poll_end` run, then the new
    /// `poll_begin`. `Unsupported` for a handler without a `poll` callback,
    /// whose hooks would never run; `ResourceBusy` if a hook is running.
    pub(crate) fn set_poll_hooks(&self, begin: Option<Hook>, end: Option<Hook>) -> io::Result<()> {
        let Some(hooks) = &self.poll else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "fd {}'s handler has no poll callback for poll_begin and poll_end to go with",
                    self.fd
                ),
            ));
        };
        if hooks.begin.try_borrow_mut().is_err() || hooks.end.try_borrow_mut().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "poll_begin or poll_end is running",
            ));
        }
        let begun = self.polled.begun.get();
        self.end_polling();
        *hooks.begin.borrow_mut() = begin;
        *hooks.end.borrow_mut() = end;
        if begun {
            self.begin_polling();
        }
        Ok(())
    }
}

fn run_hook(hook: &RefCell<Option<Hook>>) {
    if let Ok(mut hook) = hook.try_borrow_mut()
        && let Some(hook) = hook.as_mut()
    {
        hook();
    }
}

fn run_callback(callback: Option<&RefCell<Callback>>, ctx: &AioContext) -> bool {
    match callback.map(RefCell::try_borrow_mut) {
        Some(Ok(mut f)) => {
            f(ctx);
            true
        }
        _ => false,
    }
}
