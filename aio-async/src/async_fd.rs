//! `Async<T>`: an fd in non-blocking mode whose readiness tasks can await.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};

use crate::source::{Direction, Source};

/// An fd (a socket, a pipe, anything `AsFd` that the context's monitor can
/// watch) in non-blocking mode, whose readiness tasks can await.
///
/// It is registered with the context of the task that first waits on it,
/// and removed from it when dropped (before the fd is closed). Readiness is
/// level-triggered, as in the context: a task that reads only part of what
/// is there is not left waiting, and readiness that no task waits for stops
/// being watched, so the loop does not spin on it.
///
/// `Async<T>` implements the futures-io [`AsyncRead`] and [`AsyncWrite`]
/// traits when `&T` implements [`Read`] and [`Write`] (sockets, pipes,
/// `File`s of pipes).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::os::unix::net::UnixStream;
/// use aio_async::{Async, Runtime};
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
///
/// # let ctx = aio_core::AioContext::with_monitor(Box::new(aio_core::testing::SleepMonitor::new()))?;
/// let rt = Runtime::new(ctx);
/// let (a, b) = UnixStream::pair()?;
/// let (mut a, mut b) = (Async::new(a)?, Async::new(b)?);
/// rt.block_on(async {
///     a.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<_, std::io::Error>(())
/// })??;
/// # Ok(())
/// # }
/// ```
pub struct Async<T: AsFd> {
    source: Rc<Source>,
    io: Option<T>,
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode; it is registered with the context on
    /// first use.
    ///
    /// # Errors
    ///
    /// If the fd refuses non-blocking mode.
    pub fn new(io: T) -> io::Result<Async<T>> {
        rustix::io::ioctl_fionbio(io.as_fd(), true)?;
        Ok(Async {
            source: Source::new(io.as_fd().as_raw_fd()),
            io: Some(io),
        })
    }

    /// The I/O object.
    pub fn get_ref(&self) -> &T {
        self.io
            .as_ref()
            .expect("the I/O object is there until dropped")
    }

    /// The I/O object, mutably. Do not replace its fd: the registration is
    /// for the one it had.
    pub fn get_mut(&mut self) -> &mut T {
        self.io
            .as_mut()
            .expect("the I/O object is there until dropped")
    }

    /// Removes the registration and gives the I/O object back (still in
    /// non-blocking mode).
    pub fn into_inner(mut self) -> T {
        self.source.deregister();
        self.io
            .take()
            .expect("the I/O object is there until dropped")
    }

    /// Waits until the fd is readable (or hung up, or in error). Readiness
    /// seen before this call does not count: try the I/O first (as
    /// [`read_with`](Async::read_with) does), and wait when it would block.
    /// Like other runtimes' `readable`, it can return while the fd is not
    /// readable (an event that came for an earlier wait that was dropped):
    /// treat `WouldBlock` from the I/O as "wait again".
    ///
    /// # Errors
    ///
    /// If the fd cannot be registered, or its context is gone.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the fd is writable (or in error); see
    /// [`readable`](Async::readable).
    ///
    /// # Errors
    ///
    /// If the fd cannot be registered, or its context is gone.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// The poll form of [`readable`](Async::readable).
    ///
    /// # Errors
    ///
    /// As for `readable`.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.source.poll_ready(Direction::Read, cx)
    }

    /// The poll form of [`writable`](Async::writable).
    ///
    /// # Errors
    ///
    /// As for `writable`.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.source.poll_ready(Direction::Write, cx)
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for
    /// readability in between; gives its result.
    ///
    /// # Errors
    ///
    /// `op`'s error, or the registration's.
    pub async fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut op = op;
        poll_fn(|cx| self.poll_with(Direction::Read, cx, || op(self.get_ref()))).await
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for
    /// writability in between; gives its result.
    ///
    /// # Errors
    ///
    /// `op`'s error, or the registration's.
    pub async fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut op = op;
        poll_fn(|cx| self.poll_with(Direction::Write, cx, || op(self.get_ref()))).await
    }

    fn poll_with<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        poll_io(&self.source, dir, cx, op)
    }
}

/// Tries `op`; while it would block, waits for `dir`.
fn poll_io<R>(
    source: &Rc<Source>,
    dir: Direction,
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<R>,
) -> Poll<io::Result<R>> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => {
                source.clear(dir);
                return Poll::Ready(result);
            }
        }
        ready!(source.poll_ready(dir, cx))?;
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        // Before the fd is closed, as the context asks.
        self.source.deregister();
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Async").field(self.get_ref()).finish()
    }
}

impl<T: AsFd> AsyncRead for Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read_vectored(cx, bufs)
    }
}

impl<T: AsFd> AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(Direction::Read, cx, || self.get_ref().read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(Direction::Read, cx, || self.get_ref().read_vectored(bufs))
    }
}

impl<T: AsFd> AsyncWrite for Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_close(cx)
    }
}

impl<T: AsFd> AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(Direction::Write, cx, || self.get_ref().write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(Direction::Write, cx, || self.get_ref().write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(Direction::Write, cx, || self.get_ref().flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
