//! The ring's fd registered with the thread that enters it
//! (`IORING_REGISTER_RING_FDS`, Linux 5.18). An `io_uring_enter` that
//! names the ring by its index in the thread's table of registered rings
//! spares the kernel the fd lookup and the reference count on the ring's
//! file that every other enter costs (an atomic increment and decrement
//! in a process with more than one thread).
//!
//! The table is the thread's own: an index means this ring only on the
//! thread that registered it, so every other thread (a monitor moved away
//! from its first thread) enters by the fd as before.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use io_uring::EnterFlags;

/// `IORING_REGISTER_RING_FDS` and `IORING_UNREGISTER_RING_FDS`, from
/// `<linux/io_uring.h>`.
const REGISTER_RING_FDS: libc::c_uint = 20;
const UNREGISTER_RING_FDS: libc::c_uint = 21;

/// `struct io_uring_rsrc_update`: one entry of the thread's table.
#[repr(C)]
struct RsrcUpdate {
    /// The index (`u32::MAX` when registering: the kernel picks a free one
    /// and writes it here).
    offset: u32,
    resv: u32,
    /// The ring's fd when registering.
    data: u64,
}

/// Where the ring is registered, if it is: the index in the table of the
/// thread that registered it.
#[derive(Debug, Default)]
pub(crate) struct RingFd {
    registered: Option<Registered>,
    /// Registration was tried (it is tried once: a kernel that refuses it
    /// refuses it every time).
    tried: bool,
}

#[derive(Debug, Clone, Copy)]
struct Registered {
    index: u32,
    thread: u64,
}

impl RingFd {
    /// Registers `ring` with the calling thread, the first time it is
    /// called. A kernel without registered rings (before 5.18), or one
    /// whose table is full, leaves the ring entered by its fd: slower by
    /// the lookup, no less correct.
    pub(crate) fn register_once(&mut self, ring: BorrowedFd<'_>) {
        if std::mem::replace(&mut self.tried, true) {
            return;
        }
        let mut update = RsrcUpdate {
            offset: u32::MAX,
            resv: 0,
            data: ring.as_raw_fd() as u64,
        };
        // SAFETY: `update` is a live `io_uring_rsrc_update` for the one
        // entry the call is told of (`nr_args` = 1), which the kernel reads
        // and writes the chosen index back to; `ring` is an open fd.
        let registered = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                ring.as_raw_fd(),
                REGISTER_RING_FDS,
                std::ptr::from_mut(&mut update),
                1,
            )
        };
        if registered == 1 {
            self.registered = Some(Registered {
                index: update.offset,
                thread: thread_id(),
            });
        }
    }

    /// What to enter the ring with from the calling thread: its index and
    /// the flag that says it is one, on the thread that registered it;
    /// `ring` itself and no flag elsewhere.
    pub(crate) fn for_enter(&self, ring: BorrowedFd<'_>) -> (RawFd, u32) {
        match self.registered {
            Some(Registered { index, thread }) if thread == thread_id() => {
                (index as RawFd, EnterFlags::REGISTERED_RING.bits())
            }
            _ => (ring.as_raw_fd(), 0),
        }
    }

    /// Takes the ring out of the table, if the calling thread is the one
    /// that put it there: the entry holds a reference to the ring, which
    /// would otherwise outlive the monitor until that thread ends. (From
    /// another thread it cannot be reached, and stays until then.)
    pub(crate) fn unregister(&mut self, ring: BorrowedFd<'_>) {
        let Some(Registered { index, thread }) = self.registered else {
            return;
        };
        if thread != thread_id() {
            return;
        }
        self.registered = None;
        let update = RsrcUpdate {
            offset: index,
            resv: 0,
            data: 0,
        };
        // SAFETY: `update` is a live `io_uring_rsrc_update` naming the one
        // entry (`nr_args` = 1) this thread registered; the kernel only
        // reads it. `ring` is an open io_uring fd, as the call requires.
        unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                ring.as_raw_fd(),
                UNREGISTER_RING_FDS,
                std::ptr::from_ref(&update),
                1,
            )
        };
    }

    /// Whether the calling thread enters the ring by its index.
    pub(crate) fn is_registered_here(&self) -> bool {
        self.registered.is_some_and(|r| r.thread == thread_id())
    }
}

/// A number for the calling thread, unique for the life of the process
/// (unlike a thread-local's address, which a later thread may reuse).
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id)
}
