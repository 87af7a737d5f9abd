//! `InlineEngine`: an operations engine that carries each request out at
//! once, on the home thread, with a plain system call; for tests, docs and
//! monitors without an engine of their own. It can cut transfers short and
//! answer `EAGAIN`, to drive the core's resubmission paths.

use std::cell::Cell;
use std::io;

use crate::{OpCompletion, OpEngine, OpId, OpKind, OpRequest};

/// Carries out each request when it is pushed; its completion is ready at
/// the next iteration.
///
/// ```
/// use aio_core::{ContextBuilder, OpKind, testing::{InlineEngine, SleepMonitor}};
///
/// let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
///     .ops_fallback(|_| Box::new(InlineEngine::new()))
///     .build()?;
/// assert_eq!(ctx.op_engine(OpKind::Read), Some("inline"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct InlineEngine {
    done: Vec<OpCompletion>,
    /// Cut every transfer to at most this many bytes (0: no cut).
    short: usize,
    /// Answer `EAGAIN` to every n-th request first (0: never).
    eagain_every: u32,
    /// Refuse every n-th push with this errno (n = 0: never).
    refuse_every: (u32, i32),
    pushes: u32,
    requests: Cell<u32>,
}

impl InlineEngine {
    /// An engine that does what it is asked.
    pub fn new() -> InlineEngine {
        InlineEngine::default()
    }

    /// Cuts every read and write to at most `bytes` (a short transfer, as
    /// a kernel may make one), so the core must resubmit the rest.
    #[must_use]
    pub fn short_transfers(mut self, bytes: usize) -> InlineEngine {
        self.short = bytes;
        self
    }

    /// Answers every `n`-th request with `EAGAIN` without doing it.
    #[must_use]
    pub fn eagain_every(mut self, n: u32) -> InlineEngine {
        self.eagain_every = n;
        self
    }

    /// Refuses every `n`-th push with `errno`, as a ring whose full
    /// submission queue the kernel would not take (`EBUSY`, `ENOMEM`,
    /// `EAGAIN`) does: the request is not queued.
    #[must_use]
    pub fn refuse_every(mut self, n: u32, errno: i32) -> InlineEngine {
        self.refuse_every = (n, errno);
        self
    }

    /// How many requests it has received.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// `request`, its transfer cut to at most the short length.
    fn cut(&self, mut request: OpRequest) -> OpRequest {
        if let OpRequest::Read { len, .. } | OpRequest::Write { len, .. } = &mut request
            && self.short != 0
        {
            *len = (*len).min(u32::try_from(self.short).unwrap_or(u32::MAX));
        }
        request
    }
}

impl OpEngine for InlineEngine {
    fn name(&self) -> &'static str {
        "inline"
    }

    fn supports(&self, kind: OpKind) -> bool {
        // Not a socket's requests: made on the home thread, one that is not
        // ready would block the loop.
        !matches!(
            kind,
            OpKind::Raw | OpKind::Accept | OpKind::Recv | OpKind::Send | OpKind::Connect
        )
    }

    unsafe fn push(&mut self, id: OpId, request: &OpRequest) -> io::Result<()> {
        self.pushes = self.pushes.wrapping_add(1);
        if let (n @ 1.., errno) = self.refuse_every
            && self.pushes.is_multiple_of(n)
        {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let n = self.requests.get().wrapping_add(1);
        self.requests.set(n);
        if self.eagain_every != 0 && n.is_multiple_of(self.eagain_every) {
            self.done.push(OpCompletion {
                id,
                result: -libc::EAGAIN,
            });
            return Ok(());
        }
        if !self.supports(request.kind()) {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        let request = self.cut(*request);
        // SAFETY: the caller keeps the memory the request points to valid,
        // and ours, until its completion is taken; the cut only shortens it.
        let result = unsafe { request.execute() };
        self.done.push(OpCompletion { id, result });
        Ok(())
    }

    fn cancel(&mut self, _id: OpId) {
        // Every request is already done: there is nothing to stop.
    }

    fn submit_now(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn has_completions(&self) -> bool {
        !self.done.is_empty()
    }

    fn take_completions(&mut self, into: &mut Vec<OpCompletion>) {
        into.append(&mut self.done);
    }
}
