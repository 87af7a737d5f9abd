//! `raw-io_uring`: a readiness loop on io_uring written by hand with the
//! best set-up the kernel allows, so that the io_uring monitor's own
//! overhead shows against the ring itself and not only against epoll.
//!
//! Every fd has one multishot `POLL_ADD` (armed once; re-armed only if the
//! kernel ends it), the ring is `SINGLE_ISSUER | DEFER_TASKRUN` where the
//! kernel has it (else `COOP_TASKRUN`, else plain), and an iteration is the
//! eventfd write, one `io_uring_enter` with a zero timeout (which also runs
//! the deferred task work that posts the completion) and the read. The
//! ring fd is not registered: the io-uring crate keeps that registration
//! per `Submitter`, which lives only as long as one call here.
//!
//! Multishot poll is edge-like (a completion per wake-up), which a
//! reference may use: the loop reads the eventfd to empty every time.
//!
//! `raw-io_uring-level` is the same ring with one-shot polls, each re-armed
//! (in the next iteration's `io_uring_enter`) after its completion: the
//! hand-written form of what keeps readiness level-triggered on a ring, as
//! QEMU's io_uring monitor and aio's do, so that the io_uring monitor's own
//! cost shows against the ring used the same way.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use fdmon_uring::io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::Iterate;
use crate::scenarios::check_done;
use crate::sys;

/// The multishot variant's name.
pub(super) const NAME: &str = "raw-io_uring";
/// The one-shot (level-triggered) variant's name.
pub(super) const LEVEL: &str = "raw-io_uring-level";

/// The submission queue's size; set-up submits the `K` polls in batches of
/// this many.
const ENTRIES: u32 = 256;

/// The user data of the active fd's poll; the idle ones carry their index.
const ACTIVE: u64 = u64::MAX;

/// The hand-written io_uring readiness loop.
pub(super) struct RawUring {
    ring: IoUring,
    active: OwnedFd,
    /// Whether the polls are multishot (else one-shot, re-armed).
    multishot: bool,
    /// The set-up flags the kernel took, for the report.
    setup: &'static str,
}

impl RawUring {
    /// A ring watching `idle` and an active eventfd of its own, with
    /// multishot polls or one-shot ones.
    ///
    /// # Errors
    ///
    /// The kernel refused every ring set-up, or a poll request.
    pub(super) fn new(idle: &[OwnedFd], multishot: bool) -> io::Result<RawUring> {
        let (ring, setup) = ring()?;
        let active = sys::eventfd()?;
        let mut loop_ = RawUring {
            ring,
            active,
            multishot,
            setup,
        };
        for (i, fd) in idle.iter().enumerate() {
            loop_.arm(fd.as_raw_fd(), i as u64)?;
        }
        loop_.arm(loop_.active.as_raw_fd(), ACTIVE)?;
        loop_.ring.submit()?;
        Ok(loop_)
    }

    /// The set-up flags the kernel took.
    pub(super) fn setup(&self) -> &'static str {
        self.setup
    }

    /// The variant's name.
    pub(super) fn name(&self) -> &'static str {
        if self.multishot { NAME } else { LEVEL }
    }

    /// Queues a poll for readability of `fd`, submitting first if the
    /// queue is full.
    fn arm(&mut self, fd: i32, user_data: u64) -> io::Result<()> {
        let poll = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(self.multishot)
            .build()
            .user_data(user_data);
        if self.ring.submission().is_full() {
            self.ring.submit()?;
        }
        push(&mut self.ring, &poll)
    }
}

impl Iterate for RawUring {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let zero = types::Timespec::new();
        let args = types::SubmitArgs::new().timespec(&zero);
        let (fd, name) = (self.active.as_raw_fd(), self.name());
        let mut served = 0;
        for _ in 0..n {
            sys::write_one(fd)?;
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) => return Err(e),
            }
            let mut rearm = false;
            for cqe in self.ring.completion() {
                if cqe.user_data() != ACTIVE {
                    return Err(io::Error::other(format!("{name}: an idle fd fired")));
                }
                if cqe.result() < 0 {
                    return Err(io::Error::from_raw_os_error(-cqe.result()));
                }
                rearm |= !cqueue::more(cqe.flags());
                if sys::read_one(fd)? {
                    served += 1;
                }
            }
            if rearm {
                self.arm(fd, ACTIVE)?;
            }
        }
        check_done(name, n, served)
    }
}

/// The ring with the best task-running set-up the kernel takes.
fn ring() -> io::Result<(IoUring, &'static str)> {
    let defer = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(ENTRIES);
    if let Ok(ring) = defer {
        return Ok((ring, "SINGLE_ISSUER | DEFER_TASKRUN"));
    }
    let coop = IoUring::builder().setup_coop_taskrun().build(ENTRIES);
    if let Ok(ring) = coop {
        return Ok((ring, "COOP_TASKRUN"));
    }
    Ok((IoUring::new(ENTRIES)?, "no task-running flags"))
}

/// Queues a poll request. Its fd outlives the ring: the idle fds are
/// declared before every loop and dropped after it, and the active one is
/// a field declared after the ring, so dropped after it.
fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    // SAFETY: a poll request points to no memory of ours, and its fd
    // outlives the ring (see above).
    unsafe { ring.submission().push(entry) }
        .map_err(|_| io::Error::other("raw-io_uring: the submission queue is full"))
}
