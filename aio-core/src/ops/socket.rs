//! Socket operations: accept, receive, send and connect, in the shape of
//! the file operations (an owned buffer in and back, the result on the home
//! thread). On io_uring they are the ring's own opcodes, which wait for the
//! socket inside the kernel; on a thread pool a worker waits for the
//! socket's readiness with `poll(2)` and then makes the call without
//! blocking (see [`OpRequest::execute_nonblocking`]), so that a cancel or
//! the context's drop can always stop it.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::buf::{IoBuf, IoBufMut};
use super::request::OpRequest;
use super::table::{OpLogic, Step};
use super::transfer::{EndOfFile, Progress};
use super::{OpHandle, outcome};
use crate::AioContext;
use crate::fd::FdSource;

/// The most one request carries, as for the file operations.
const MAX_REQUEST: usize = 1 << 30;

/// Whether a result asks for the request to be sent again.
fn again(result: i32) -> bool {
    result == -libc::EAGAIN || result == -libc::EINTR
}

/// Room for an IPv4 or IPv6 address, the form the kernel reads and writes.
#[derive(Clone, Copy)]
struct SockAddrRoom(libc::sockaddr_in6);

impl SockAddrRoom {
    fn empty() -> SockAddrRoom {
        SockAddrRoom(libc::sockaddr_in6 {
            sin6_family: 0,
            sin6_port: 0,
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
            sin6_scope_id: 0,
        })
    }

    /// `addr` in the kernel's form, and its length.
    fn of(addr: SocketAddr) -> (SockAddrRoom, libc::socklen_t) {
        let mut room = SockAddrRoom::empty();
        match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: a sockaddr_in (16 bytes) fits in the room's
                // sockaddr_in6 (28); unaligned, so no alignment is assumed.
                unsafe { std::ptr::write_unaligned((&raw mut room.0).cast(), sin) };
                (room, size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            SocketAddr::V6(v6) => {
                room.0 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                (room, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }

    /// The address the kernel wrote (`len` bytes of it), if it is an IPv4
    /// or IPv6 one.
    fn address(&self, len: libc::socklen_t) -> Option<SocketAddr> {
        match i32::from(self.0.sin6_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                let room = (&raw const self.0).cast::<libc::sockaddr_in>();
                // SAFETY: the kernel wrote a whole sockaddr_in at the
                // room's start (its family and length say so); read
                // unaligned, so no alignment is assumed.
                let sin = unsafe { std::ptr::read_unaligned(room) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(self.0.sin6_addr.s6_addr),
                    u16::from_be(self.0.sin6_port),
                    u32::from_be(self.0.sin6_flowinfo),
                    self.0.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// An accept and its callback.
struct Accept<F> {
    fd: RawFd,
    room: SockAddrRoom,
    len: libc::socklen_t,
    /// The new socket, owned from its completion on: closed if the
    /// operation is dropped without its callback (the context's drop).
    accepted: Option<OwnedFd>,
    error: i32,
    done: F,
}

impl<F> OpLogic for Accept<F>
where
    F: FnOnce(&AioContext, io::Result<(OwnedFd, Option<SocketAddr>)>) + 'static,
{
    fn request(&mut self) -> OpRequest {
        self.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        OpRequest::Accept {
            fd: self.fd,
            addr: (&raw mut self.room.0).cast(),
            addrlen: &raw mut self.len,
            flags: libc::SOCK_CLOEXEC,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        if again(result) {
            return Step::Again;
        }
        if result >= 0 {
            // SAFETY: the kernel (or the worker) accepted a connection
            // whose new fd is the result: nothing else owns it.
            self.accepted = Some(unsafe { OwnedFd::from_raw_fd(result) });
        } else {
            self.error = -result;
        }
        Step::Done
    }

    fn finish(self, ctx: &AioContext) {
        let outcome = match self.accepted {
            Some(fd) => Ok((fd, self.room.address(self.len))),
            None => Err(io::Error::from_raw_os_error(match self.error {
                0 => libc::EIO,
                e => e,
            })),
        };
        (self.done)(ctx, outcome);
    }
}

/// A receive into `buf` (one call: what arrived, up to its capacity).
struct Recv<B, F> {
    fd: RawFd,
    buf: B,
    result: i32,
    done: F,
}

impl<B, F> OpLogic for Recv<B, F>
where
    B: IoBufMut,
    F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
{
    fn request(&mut self) -> OpRequest {
        OpRequest::Recv {
            fd: self.fd,
            buf: self.buf.as_mut_ptr(),
            len: self.buf.capacity().min(MAX_REQUEST) as u32,
            flags: 0,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        if again(result) {
            return Step::Again;
        }
        self.result = result;
        Step::Done
    }

    fn finish(mut self, ctx: &AioContext) {
        let n = usize::try_from(self.result).unwrap_or(0);
        // SAFETY: a receive of `n` bytes wrote the buffer's first `n`.
        unsafe { self.buf.set_filled(n) };
        let outcome = match self.result {
            r if r < 0 => Err(io::Error::from_raw_os_error(-r)),
            _ => Ok(n),
        };
        (self.done)(ctx, outcome, self.buf);
    }
}

/// A send of all of `buf` (the rest of a short send is sent again).
struct Send<B, F> {
    fd: RawFd,
    buf: B,
    progress: Progress,
    done: F,
}

impl<B, F> OpLogic for Send<B, F>
where
    B: IoBuf,
    F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
{
    fn request(&mut self) -> OpRequest {
        let done = self.progress.done;
        OpRequest::Send {
            fd: self.fd,
            // Inside the buffer: `done <= total`.
            buf: self.buf.as_ptr().wrapping_add(done),
            len: (self.progress.total - done).min(MAX_REQUEST) as u32,
            flags: 0,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        self.progress.step(result, EndOfFile::IsAnError)
    }

    fn finish(self, ctx: &AioContext) {
        (self.done)(ctx, self.progress.outcome(), self.buf);
    }
}

/// A connect and its callback.
struct Connect<F> {
    fd: RawFd,
    room: SockAddrRoom,
    len: libc::socklen_t,
    error: Option<i32>,
    done: F,
}

impl<F> OpLogic for Connect<F>
where
    F: FnOnce(&AioContext, io::Result<()>) + 'static,
{
    fn request(&mut self) -> OpRequest {
        OpRequest::Connect {
            fd: self.fd,
            addr: (&raw const self.room.0).cast(),
            addrlen: self.len,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        if result == -libc::EAGAIN {
            return Step::Again;
        }
        self.error = (result < 0).then_some(-result);
        Step::Done
    }

    fn finish(self, ctx: &AioContext) {
        (self.done)(ctx, outcome(0, self.error).map(drop));
    }
}

impl AioContext {
    /// Accepts a connection on the listening socket `fd`, and calls `done`
    /// on the home thread with the new socket (close-on-exec, in blocking
    /// mode, which suits both paths) and the peer's address (`None` if it
    /// is neither IPv4 nor IPv6, a Unix socket's).
    ///
    /// On io_uring the accept waits on the context's ring; elsewhere a
    /// thread pool's worker waits for the listener with `poll(2)`, then
    /// accepts: the worker is held while it waits, but a
    /// [cancel](OpHandle::cancel) or the context's drop stops it
    /// (`ECANCELED`) on both paths. `done` always runs, once, as for
    /// [`read_at`](AioContext::read_at). A connection accepted as the
    /// context is dropped is closed with it.
    pub fn accept<F>(&self, fd: impl FdSource, done: F) -> OpHandle
    where
        F: FnOnce(&AioContext, io::Result<(OwnedFd, Option<SocketAddr>)>) + 'static,
    {
        self.start_op(Accept {
            fd: fd.raw_fd(),
            room: SockAddrRoom::empty(),
            len: 0,
            accepted: None,
            error: 0,
            done,
        })
    }

    /// Receives from the socket `fd` into `buf`, and calls `done` on the
    /// home thread with the number of bytes received (0: the peer shut
    /// its side down) and the buffer. One receive: what has arrived, up to
    /// the buffer's capacity (a `Vec<u8>`'s length is set to the count).
    /// As [`accept`](AioContext::accept) for the paths and cancellation.
    pub fn recv<B, F>(&self, fd: impl FdSource, buf: B, done: F) -> OpHandle
    where
        B: IoBufMut,
        F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
    {
        self.start_op(Recv {
            fd: fd.raw_fd(),
            buf,
            result: 0,
            done,
        })
    }

    /// Sends all of `buf` on the socket `fd` (the rest of a short send is
    /// sent again), and calls `done` on the home thread with the number of
    /// bytes sent and the buffer. A peer that has gone gives `EPIPE`, never
    /// `SIGPIPE`. As [`accept`](AioContext::accept) for the paths and
    /// cancellation; a send cancelled after part of it went reports
    /// `ECANCELED`, the part that went is not said.
    pub fn send<B, F>(&self, fd: impl FdSource, buf: B, done: F) -> OpHandle
    where
        B: IoBuf,
        F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
    {
        let total = buf.len();
        self.start_op(Send {
            fd: fd.raw_fd(),
            buf,
            progress: Progress::of(total),
            done,
        })
    }

    /// Connects the socket `fd` to `addr`, and calls `done` on the home
    /// thread when the connection is made (or has failed:
    /// `ECONNREFUSED`, ...). A non-blocking socket is connected in the
    /// background on both paths; on the pool path a blocking socket's
    /// connect holds its worker until the kernel is done with it, and a
    /// cancel does not cut it short. As [`accept`](AioContext::accept)
    /// otherwise.
    pub fn connect<F>(&self, fd: impl FdSource, addr: SocketAddr, done: F) -> OpHandle
    where
        F: FnOnce(&AioContext, io::Result<()>) + 'static,
    {
        let (room, len) = SockAddrRoom::of(addr);
        self.start_op(Connect {
            fd: fd.raw_fd(),
            room,
            len,
            error: None,
            done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_go_to_the_kernels_form_and_back() {
        for addr in [
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap(),
            "[::1]:443".parse().unwrap(),
            "[fe80::1%3]:9".parse().unwrap(),
        ] {
            let (room, len) = SockAddrRoom::of(addr);
            assert_eq!(room.address(len), Some(addr));
        }
        assert_eq!(SockAddrRoom::empty().address(28), None);
        let (room, _) = SockAddrRoom::of("[::1]:443".parse().unwrap());
        assert_eq!(room.address(8), None, "too short for its family");
    }
}
