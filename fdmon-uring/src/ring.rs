//! The ring: the options it is set up with (size, task-running mode), the
//! checks that the kernel supports what the monitor needs, and the one
//! place that enters the kernel.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aio_core::{Pending, deadline};
use io_uring::EnterFlags;
use io_uring::cqueue::CompletionQueue;
use io_uring::register::Probe;
use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{IoUring, opcode, squeue};

use crate::ring_fd::RingFd;

/// How the kernel runs the task work that turns an fd's wake-up into a
/// completion on the ring, and so whether the loop can see that completion
/// while it spins in user space.
///
/// When a polled fd becomes ready, the kernel does not post the completion
/// from the waker's context: it queues *task work* for the thread that owns
/// the ring. The modes differ in how that work gets run:
///
/// | mode | setup flags | runs when | seen while spinning |
/// |------|-------------|-----------|---------------------|
/// | [`Interrupt`](TaskRun::Interrupt) | none | at once: the thread is interrupted (an IPI if it is on a CPU) | yes, in the completion ring |
/// | [`Cooperative`](TaskRun::Cooperative) | `COOP_TASKRUN` | the thread's next entry into the kernel (a system call, or an interrupt such as the timer tick) | no |
/// | [`CooperativeFlag`](TaskRun::CooperativeFlag) | `COOP_TASKRUN \| TASKRUN_FLAG` | the next entry; the kernel raises `IORING_SQ_TASKRUN` meanwhile | yes, as the flag |
/// | [`Deferred`](TaskRun::Deferred) | `DEFER_TASKRUN \| SINGLE_ISSUER` | the next wait on the ring | no |
/// | [`DeferredFlag`](TaskRun::DeferredFlag) | `DEFER_TASKRUN \| SINGLE_ISSUER \| TASKRUN_FLAG` | the next wait; the flag is raised meanwhile | yes, as the flag |
///
/// In the modes that cannot show readiness in user space the monitor
/// answers [`Pending::Unknown`], like a poll or epoll monitor: the core
/// then asks the kernel with zero-timeout waits, each a system call.
///
/// The deferred modes bind the ring to one thread: the first that waits on
/// it (the ring is set up disabled and enabled by that first wait). A
/// monitor in those modes must stay on that thread afterwards.
///
/// ```
/// use fdmon_uring::TaskRun;
///
/// assert_eq!(TaskRun::default(), TaskRun::DeferredFlag);
/// assert!(TaskRun::CooperativeFlag.shows_readiness());
/// assert!(!TaskRun::Cooperative.shows_readiness());
/// assert_eq!(TaskRun::ALL.len(), 5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TaskRun {
    /// No task-running flag: the kernel interrupts the thread to post each
    /// completion.
    Interrupt,
    /// `IORING_SETUP_COOP_TASKRUN`: no interrupt; completions are posted
    /// when the thread next enters the kernel (Linux 5.19).
    Cooperative,
    /// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG`: no
    /// interrupt, and the kernel raises `IORING_SQ_TASKRUN` in the shared
    /// ring when completions wait to be posted (Linux 5.19).
    CooperativeFlag,
    /// `IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER`:
    /// completions are posted only by a wait on the ring (Linux 6.1).
    Deferred,
    /// `IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
    /// IORING_SETUP_TASKRUN_FLAG`: as [`Deferred`](TaskRun::Deferred), with
    /// the flag raised when completions wait to be posted.
    ///
    /// The default. In the crate's `pingpong` example (two threads, an
    /// eventfd each) the deferred modes have the shortest round trip of the
    /// io_uring modes when the loops block (no interrupt, no task work
    /// outside the wait), and with the flag a loop that busy-polls sees
    /// the completions without a system call: that was the fastest
    /// configuration of all.
    #[default]
    DeferredFlag,
}

impl TaskRun {
    /// Every mode, in the order of the table above.
    pub const ALL: [TaskRun; 5] = [
        TaskRun::Interrupt,
        TaskRun::Cooperative,
        TaskRun::CooperativeFlag,
        TaskRun::Deferred,
        TaskRun::DeferredFlag,
    ];

    /// Whether readiness shows in user space without a system call in this
    /// mode, so that the core can busy-poll fds that have no `poll`
    /// callback.
    pub const fn shows_readiness(self) -> bool {
        matches!(
            self,
            TaskRun::Interrupt | TaskRun::CooperativeFlag | TaskRun::DeferredFlag
        )
    }

    /// The setup flags, as the kernel spells them.
    pub const fn flags(self) -> &'static str {
        match self {
            TaskRun::Interrupt => "none",
            TaskRun::Cooperative => "COOP_TASKRUN",
            TaskRun::CooperativeFlag => "COOP_TASKRUN|TASKRUN_FLAG",
            TaskRun::Deferred => "DEFER_TASKRUN|SINGLE_ISSUER",
            TaskRun::DeferredFlag => "DEFER_TASKRUN|SINGLE_ISSUER|TASKRUN_FLAG",
        }
    }

    const fn flagged(self) -> bool {
        matches!(self, TaskRun::CooperativeFlag | TaskRun::DeferredFlag)
    }

    const fn single_issuer(self) -> bool {
        matches!(self, TaskRun::Deferred | TaskRun::DeferredFlag)
    }

    /// Whether completions wait as task work for the issuer, which does not
    /// wake pollers of the ring fd.
    pub(crate) const fn deferred(self) -> bool {
        self.single_issuer()
    }
}

/// How to set up a [`UringMonitor`](crate::UringMonitor).
///
/// ```
/// use fdmon_uring::{TaskRun, UringMonitor, UringOptions};
///
/// let options = UringOptions::default()
///     .entries(64)
///     .task_run(TaskRun::DeferredFlag);
/// let monitor = UringMonitor::with_options(options)?;
/// assert_eq!(monitor.task_run(), TaskRun::DeferredFlag);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct UringOptions {
    /// Submission queue entries (the completion queue has twice as many);
    /// the kernel rounds up to a power of two and clamps to its maximum.
    /// More registration changes than this in one iteration cost an extra
    /// submission each time the queue fills.
    pub entries: u32,
    /// How completions get posted; see [`TaskRun`].
    pub task_run: TaskRun,
}

impl UringOptions {
    /// The default number of submission queue entries.
    pub const DEFAULT_ENTRIES: u32 = 256;

    /// Sets the number of submission queue entries.
    #[must_use]
    pub fn entries(mut self, entries: u32) -> UringOptions {
        self.entries = entries;
        self
    }

    /// Sets the task-running mode.
    #[must_use]
    pub fn task_run(mut self, task_run: TaskRun) -> UringOptions {
        self.task_run = task_run;
        self
    }
}

impl Default for UringOptions {
    fn default() -> UringOptions {
        UringOptions {
            entries: UringOptions::DEFAULT_ENTRIES,
            task_run: TaskRun::default(),
        }
    }
}

/// An io_uring instance set up for the monitor.
pub(crate) struct Ring {
    uring: IoUring,
    task_run: TaskRun,
    /// Set up disabled (single-issuer modes) and not yet enabled: the first
    /// thread to enter it becomes its issuer.
    disabled: bool,
    /// How many times the monitor entered the kernel with this ring.
    enters: u64,
    /// The ring's fd in its thread's table of registered rings.
    ring_fd: RingFd,
    /// Fault injection: every n-th enter that would submit requests fails
    /// with this errno without submitting (n = 0: never).
    refuse: (u32, i32),
    submits: u32,
    /// How many were refused so far.
    refused: Arc<AtomicU64>,
}

impl Ring {
    /// Sets up a ring and checks that the kernel has what the monitor
    /// needs. Setup errors keep their raw OS error (`ENOSYS`, `EPERM`,
    /// `ENOMEM`, `EINVAL` for unknown flags); a missing feature or opcode
    /// is `Unsupported`, with a message naming it.
    pub(crate) fn open(options: &UringOptions) -> io::Result<Ring> {
        let mut builder = IoUring::builder();
        builder.setup_clamp();
        match options.task_run {
            TaskRun::Interrupt => {}
            TaskRun::Cooperative => {
                builder.setup_coop_taskrun();
            }
            TaskRun::CooperativeFlag => {
                builder.setup_coop_taskrun().setup_taskrun_flag();
            }
            TaskRun::Deferred => {
                builder
                    .setup_defer_taskrun()
                    .setup_single_issuer()
                    .setup_r_disabled();
            }
            TaskRun::DeferredFlag => {
                builder
                    .setup_defer_taskrun()
                    .setup_single_issuer()
                    .setup_r_disabled()
                    .setup_taskrun_flag();
            }
        }
        let uring = builder.build(options.entries.max(1))?;
        let params = uring.params();
        if !params.is_feature_ext_arg() {
            return Err(unsupported("the IORING_FEAT_EXT_ARG feature (Linux 5.11)"));
        }
        if !params.is_feature_nodrop() {
            return Err(unsupported("the IORING_FEAT_NODROP feature (Linux 5.5)"));
        }
        let mut probe = Probe::new();
        uring.submitter().register_probe(&mut probe)?;
        check_opcodes(|code| probe.is_supported(code))?;
        Ok(Ring {
            uring,
            task_run: options.task_run,
            disabled: options.task_run.single_issuer(),
            enters: 0,
            ring_fd: RingFd::default(),
            refuse: (0, 0),
            submits: 0,
            refused: Arc::default(),
        })
    }

    /// Makes every `every`-th enter that would submit requests fail with
    /// `errno`; returns the count of those refused.
    pub(crate) fn refuse_submits(&mut self, every: u32, errno: i32) -> Arc<AtomicU64> {
        self.refuse = (every, errno);
        Arc::clone(&self.refused)
    }

    /// Whether fault injection refuses this submission (counting it).
    fn refused_now(&mut self) -> bool {
        let (every, _) = self.refuse;
        if every == 0 {
            return false;
        }
        self.submits = self.submits.wrapping_add(1);
        let refused = self.submits.is_multiple_of(every);
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    pub(crate) fn task_run(&self) -> TaskRun {
        self.task_run
    }

    pub(crate) fn enters(&self) -> u64 {
        self.enters
    }

    /// Queues one request, first submitting what the queue holds if it is
    /// full.
    ///
    /// `entry` must be a poll add, poll remove or cancel built by this
    /// crate: such requests point to no memory of ours.
    pub(crate) fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        if self.uring.submission().is_full() {
            self.enter(0, None)?;
        }
        // Through `push` the monitor queues only POLL_ADD (an fd and a
        // mask), POLL_REMOVE and ASYNC_CANCEL (a user_data); operations,
        // which point to buffers, go through `push_op`.
        // SAFETY: so the entry points to no memory at all.
        let pushed = unsafe { self.uring.submission().push(entry) };
        pushed.map_err(|_| io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Queues an operation's request, first submitting what the queue
    /// holds if it is full.
    ///
    /// # Safety
    ///
    /// The memory `entry` points to stays valid until its completion has
    /// been reaped.
    pub(crate) unsafe fn push_op(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        if self.uring.submission().is_full() {
            self.enter(0, None)?;
        }
        // SAFETY: the caller keeps the entry's memory valid until its
        // completion (this function's contract).
        let pushed = unsafe { self.uring.submission().push(entry) };
        pushed.map_err(|_| io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Which operation opcodes the kernel has.
    pub(crate) fn probe_ops(&self) -> io::Result<crate::ops::RingOps> {
        let mut probe = Probe::new();
        self.uring.submitter().register_probe(&mut probe)?;
        Ok(crate::ops::RingOps {
            read: probe.is_supported(opcode::Read::CODE),
            write: probe.is_supported(opcode::Write::CODE),
            readv: probe.is_supported(opcode::Readv::CODE),
            writev: probe.is_supported(opcode::Writev::CODE),
            fsync: probe.is_supported(opcode::Fsync::CODE),
            accept: probe.is_supported(opcode::Accept::CODE),
            recv: probe.is_supported(opcode::Recv::CODE),
            send: probe.is_supported(opcode::Send::CODE),
            connect: probe.is_supported(opcode::Connect::CODE),
            cancel: probe.is_supported(opcode::AsyncCancel::CODE),
            ..Default::default()
        })
    }

    /// One `io_uring_enter`: submits whatever the submission queue holds,
    /// runs pending task work and flushes overflowed completions
    /// (`GETEVENTS`), and, with `min_complete = 1`, waits for a completion
    /// for at most `timeout` (`None`: forever).
    ///
    /// An expired timeout (`ETIME`) is not an error. `EINTR` is returned to
    /// the caller, which knows how much time remains.
    pub(crate) fn enter(&mut self, min_complete: u32, timeout: Option<Duration>) -> io::Result<()> {
        if self.disabled {
            self.uring.submitter().register_enable_rings()?;
            self.disabled = false;
        }
        // Registered at the first enter, on the thread that will go on
        // entering (the one a single-issuer ring is bound to).
        self.ring_fd.register_once(self.uring.as_fd());
        let to_submit = u32::try_from(self.uring.submission().len()).unwrap_or(u32::MAX);
        if to_submit > 0 && self.refused_now() {
            // As a kernel short of memory refuses it: nothing is submitted,
            // nothing waited for, the queue stays as it was.
            return Err(io::Error::from_raw_os_error(self.refuse.1));
        }
        let ts = timeout.filter(|_| min_complete > 0).map(timespec);
        let args = ts.as_ref().map(|ts| SubmitArgs::new().timespec(ts));
        self.enters += 1;
        let mut flags = EnterFlags::GETEVENTS;
        if args.is_some() {
            flags |= EnterFlags::EXT_ARG;
        }
        let (fd, registered) = self.ring_fd.for_enter(self.uring.as_fd());
        let arg = args.as_ref().map_or(std::ptr::null(), |args| {
            std::ptr::from_ref(args).cast::<libc::c_void>()
        });
        // The kernel reads `arg` (when given, with the EXT_ARG flag that
        // says so): a `SubmitArgs` is the kernel's `io_uring_getevents_arg`
        // (the type is `repr(transparent)` over it) with no signal mask and
        // a pointer to `ts`. Without EXT_ARG the argument is a null signal
        // mask. `fd` is the ring's fd, or its index in this thread's table
        // with the flag that says so.
        // SAFETY: `args` and `ts` live on this frame until the call returns;
        // the queued requests point to no memory (see `push`) or to memory
        // kept valid until their completion (see `push_op`).
        let entered = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                to_submit,
                min_complete,
                flags.bits() | registered,
                arg,
                std::mem::size_of::<SubmitArgs>(),
            )
        };
        if entered >= 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            e => Err(e),
        }
    }

    /// Whether the calling thread enters the ring by its registered index
    /// rather than by its fd.
    pub(crate) fn entered_by_index(&self) -> bool {
        self.ring_fd.is_registered_here()
    }

    /// The completions posted so far; those iterated over are consumed
    /// when the returned queue is dropped.
    pub(crate) fn completions(&mut self) -> CompletionQueue<'_> {
        self.uring.completion()
    }

    pub(crate) fn has_completions(&mut self) -> bool {
        !self.uring.completion().is_empty()
    }

    /// The ring's fd: readable when completions wait (not when deferred
    /// task work does).
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.uring)
    }

    /// Whether the kernel holds completions that did not fit in the
    /// completion queue: an enter with `GETEVENTS` moves them in.
    pub(crate) fn overflowed(&mut self) -> bool {
        self.uring.submission().cq_overflow()
    }

    /// Whether a non-blocking wait has to enter the kernel: to submit
    /// requests, to run task work, to flush overflowed completions, or
    /// because this mode cannot show whether task work is pending.
    pub(crate) fn must_enter(&mut self) -> bool {
        let sq = self.uring.submission();
        !sq.is_empty()
            || !self.task_run.shows_readiness()
            || sq.cq_overflow()
            || (self.task_run.flagged() && sq.taskrun())
    }

    /// What the ring shows without a system call: in the modes that show
    /// readiness, `Yes` if completions (or overflowed completions, or task
    /// work that posts them) wait; in every mode `Submit` if requests the
    /// kernel has not seen are queued; else `No` in the modes that show
    /// readiness and `Unknown` in the others (a completion can appear there
    /// only when the thread enters the kernel, so the ring alone never
    /// settles the question).
    pub(crate) fn pending(&mut self, queued: bool) -> Pending {
        let shows = self.task_run.shows_readiness();
        if shows && !self.uring.completion().is_empty() {
            return Pending::Yes;
        }
        let sq = self.uring.submission();
        if shows && (sq.cq_overflow() || (self.task_run.flagged() && sq.taskrun())) {
            Pending::Yes
        } else if queued || !sq.is_empty() {
            Pending::Submit
        } else if shows {
            Pending::No
        } else {
            Pending::Unknown
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.ring_fd.unregister(self.uring.as_fd());
    }
}

/// The opcodes the monitor uses, with their kernel names.
const OPCODES: [(u8, &str); 2] = [
    (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD"),
    (opcode::PollRemove::CODE, "IORING_OP_POLL_REMOVE"),
];

/// `Unsupported`, naming the first opcode the kernel lacks, if any.
fn check_opcodes(supported: impl Fn(u8) -> bool) -> io::Result<()> {
    match OPCODES.iter().find(|(code, _)| !supported(*code)) {
        Some((_, name)) => Err(unsupported(name)),
        None => Ok(()),
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("io_uring: the kernel lacks {what}"),
    )
}

/// A relative timeout as the kernel reads it, clamped as
/// [`deadline::KernelTimespec`] says.
fn timespec(d: Duration) -> Timespec {
    let ts = deadline::KernelTimespec::from(d);
    Timespec::new()
        .sec(ts.tv_sec as u64)
        .nsec(ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_sets_up() {
        for task_run in TaskRun::ALL {
            let ring = Ring::open(&UringOptions::default().task_run(task_run));
            assert!(ring.is_ok(), "{task_run:?}: {:?}", ring.err());
        }
    }

    #[test]
    fn an_empty_ring_shows_nothing_or_cannot_tell() {
        for task_run in TaskRun::ALL {
            let mut ring = Ring::open(&UringOptions::default().task_run(task_run)).unwrap();
            let expected = if task_run.shows_readiness() {
                Pending::No
            } else {
                Pending::Unknown
            };
            assert_eq!(ring.pending(false), expected, "{task_run:?}");
        }
    }

    #[test]
    fn a_missing_opcode_is_unsupported_and_named() {
        assert!(check_opcodes(|_| true).is_ok());
        let err = check_opcodes(|code| code != opcode::PollRemove::CODE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("IORING_OP_POLL_REMOVE"), "{err}");
        let err = check_opcodes(|_| false).unwrap_err();
        assert!(err.to_string().contains("IORING_OP_POLL_ADD"), "{err}");
    }

    #[test]
    fn a_zero_timeout_enter_does_not_block() {
        let mut ring = Ring::open(&UringOptions::default()).unwrap();
        ring.enter(0, None).unwrap();
        let start = std::time::Instant::now();
        ring.enter(1, Some(Duration::from_micros(200))).unwrap();
        assert!(start.elapsed() >= Duration::from_micros(200));
    }
}
