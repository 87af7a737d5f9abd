//! Which file a raw fd names: checked at registration, so that registering
//! a closed fd fails the same way on every monitor (`ppoll` would only
//! report `POLLNVAL` later, and io_uring only in a completion), and kept, so
//! that an fd closed while registered, its number reused by another file,
//! can be caught. A monitor that tracks files itself (epoll, see
//! [`FdMonitor::tracks_files`]) makes both checks for the fds it watches,
//! and the core asks it instead.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use crate::handler::Node;
use crate::monitor::FdMonitor;
use crate::registry::Registry;

/// The file an fd names: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// Matches no open file: for an fd that was closed before its identity
    /// could be taken.
    const GONE: FileIdentity = FileIdentity {
        dev: u64::MAX,
        ino: u64::MAX,
    };

    /// The file `fd` names; `EBADF` if it is not open in this process.
    pub(crate) fn of(fd: RawFd) -> io::Result<FileIdentity> {
        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a whole `struct stat` into the buffer it is
        // given, which is one, and touches nothing else; on an fd that is
        // not open it fails with EBADF and writes nothing.
        if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstat succeeded, so it filled the buffer.
        let stat = unsafe { stat.assume_init() };
        Ok(FileIdentity {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// Whether `fd` still names this file.
    pub(crate) fn is_still(self, fd: RawFd) -> bool {
        FileIdentity::of(fd).is_ok_and(|now| now == self)
    }
}

/// Whether `node`'s fd still names the file it was registered for: the
/// monitor says if it tracks files and watches the fd, else the identity
/// taken at registration does (with none, there is nothing to compare).
pub(crate) fn names_its_file(
    monitor: &mut dyn FdMonitor,
    registry: &Registry,
    node: &Node,
) -> bool {
    match registry.registration(node) {
        Some(registration) if monitor.tracks_files() => {
            monitor.watches_current_file(node.fd, registration)
        }
        _ => node.file_is_current(),
    }
}

/// Before a move from a monitor that tracks files to one that does not:
/// takes the identity of every file that the old monitor kept track of
/// instead of the core, so that [`names_its_file`] goes on knowing. A
/// registration that the old monitor says was closed or reused gets an
/// identity that matches no file.
pub(crate) fn identify_tracked(old: &mut dyn FdMonitor, registry: &Registry) {
    for node in registry.nodes().filter(|node| node.file.get().is_none()) {
        let current = registry
            .registration(node)
            .is_none_or(|registration| old.watches_current_file(node.fd, registration));
        let file = match current {
            true => FileIdentity::of(node.fd).unwrap_or(FileIdentity::GONE),
            false => FileIdentity::GONE,
        };
        node.file.set(Some(file));
    }
}

/// Anything that names a file descriptor: a [`RawFd`], a
/// [`BorrowedFd`](std::os::fd::BorrowedFd), or a reference to anything that
/// has one (`&File`, `&TcpStream`, `&EventNotifier`, ...).
///
/// Raw numbers are accepted so that an fd received from elsewhere (over a
/// socket, from C) can be registered as it is; a negative or closed one is
/// refused with an error, and generations make a number reused after close
/// harmless.
pub trait FdSource {
    /// The fd number.
    fn raw_fd(&self) -> RawFd;
}

impl FdSource for RawFd {
    fn raw_fd(&self) -> RawFd {
        *self
    }
}

impl FdSource for std::os::fd::BorrowedFd<'_> {
    fn raw_fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

impl<T: std::os::fd::AsRawFd + ?Sized> FdSource for &T {
    fn raw_fd(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}
