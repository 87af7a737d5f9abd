//! [`Pass`]: the data that one pass of the loop carries from phase to phase
//! (busy poll, wait, dispatch), in the signatures instead of in loose
//! arguments.

/// What one pass of the loop carries from phase to phase.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pass {
    /// The pass's number: orders readiness across nesting levels.
    pub(crate) iteration: u64,
    /// When it started (0 if it had no use for the clock).
    pub(crate) start: u64,
    /// The latest reading of the clock.
    pub(crate) now: u64,
    /// How long the wait may block, in ns (`None`: forever).
    pub(crate) timeout: Option<u64>,
    /// When the wait ended, for adapting poll times.
    pub(crate) waited: u64,
}

impl Pass {
    /// A pass that dispatches what an outer loop collected: no clock, no
    /// adaptive polling (the outer loop decided how long to sleep).
    pub(crate) fn outer(iteration: u64) -> Pass {
        Pass {
            iteration,
            start: 0,
            now: 0,
            timeout: Some(0),
            waited: 0,
        }
    }

    /// Whether the wait may block.
    pub(crate) fn may_block(&self) -> bool {
        self.timeout != Some(0)
    }

    /// How long the wait blocked: what poll times adapt to.
    pub(crate) fn block_ns(&self) -> u64 {
        self.waited.saturating_sub(self.start)
    }
}
