//! Async sockets: `TcpListener`, `TcpStream`, `UnixStream`.

use std::fmt;
use std::io;
use std::net::{self, Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net as unix;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use rustix::io::Errno;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::Async;

/// A TCP listener whose `accept` tasks can await.
pub struct TcpListener {
    inner: Async<net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first address it resolves to that binds).
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpListener::bind`].
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::from_std(net::TcpListener::bind(addr)?)
    }

    /// Wraps a listener of the standard library (made non-blocking).
    ///
    /// # Errors
    ///
    /// If the fd refuses non-blocking mode.
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: Async::new(listener)?,
        })
    }

    /// Waits for a connection.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpListener::accept`].
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.read_with(net::TcpListener::accept).await?;
        Ok((TcpStream::from_std(stream)?, peer))
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpListener")
            .field(self.inner.get_ref())
            .finish()
    }
}

/// A TCP connection, with the futures-io traits.
pub struct TcpStream {
    inner: Async<net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` without blocking the loop.
    ///
    /// # Errors
    ///
    /// The connection's error (refused, unreachable, ...).
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::INET,
            SocketAddr::V6(_) => AddressFamily::INET6,
        };
        let fd = connecting(family, &addr)?;
        let stream = Async::new(net::TcpStream::from(fd))?;
        connected(&stream, |s| s.take_error()).await?;
        Ok(TcpStream { inner: stream })
    }

    /// Wraps a stream of the standard library (made non-blocking).
    ///
    /// # Errors
    ///
    /// If the fd refuses non-blocking mode.
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Async::new(stream)?,
        })
    }

    /// The stream of the standard library inside.
    pub fn get_ref(&self) -> &net::TcpStream {
        self.inner.get_ref()
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::set_nodelay`].
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.get_ref().set_nodelay(nodelay)
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().local_addr()
    }

    /// Shuts down one or both halves.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::shutdown`].
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.get_ref().shutdown(how)
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpStream").field(self.get_ref()).finish()
    }
}

/// A Unix stream socket, with the futures-io traits.
pub struct UnixStream {
    inner: Async<unix::UnixStream>,
}

impl UnixStream {
    /// A connected pair.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixStream::pair`].
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = unix::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Connects to the socket at `path`, without blocking the loop.
    ///
    /// # Errors
    ///
    /// The connection's error.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = rustix::net::SocketAddrUnix::new(path.as_ref())?;
        let fd = connecting(AddressFamily::UNIX, &addr)?;
        let stream = Async::new(unix::UnixStream::from(fd))?;
        connected(&stream, |s| s.take_error()).await?;
        Ok(UnixStream { inner: stream })
    }

    /// Wraps a stream of the standard library (made non-blocking).
    ///
    /// # Errors
    ///
    /// If the fd refuses non-blocking mode.
    pub fn from_std(stream: unix::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: Async::new(stream)?,
        })
    }

    /// The stream of the standard library inside.
    pub fn get_ref(&self) -> &unix::UnixStream {
        self.inner.get_ref()
    }

    /// Shuts down one or both halves.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixStream::shutdown`].
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.get_ref().shutdown(how)
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixStream").field(self.get_ref()).finish()
    }
}

/// A non-blocking stream socket of `family` whose connection to `addr` is
/// under way.
fn connecting(family: AddressFamily, addr: &impl SocketAddrArg) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&fd, addr) {
        // A Unix socket whose listener's backlog is full says EAGAIN.
        Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::AGAIN) => Ok(fd),
        Err(e) => Err(e.into()),
    }
}

/// Waits until a connection under way is made: the socket turns writable,
/// and `take_error` (`SO_ERROR`) says how it went.
async fn connected<T: AsFd>(
    stream: &Async<T>,
    take_error: impl Fn(&T) -> io::Result<Option<io::Error>>,
) -> io::Result<()> {
    stream.writable().await?;
    match take_error(stream.get_ref())? {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The futures-io traits of a stream wrapper, by way of its `Async`;
/// closing shuts down the writing half.
macro_rules! stream_io {
    ($ty:ty) => {
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &self.inner).poll_read(cx, buf)
            }
        }

        impl AsyncRead for &$ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &self.inner).poll_read(cx, buf)
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &self.inner).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }

        impl AsyncWrite for &$ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &self.inner).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }
    };
}

stream_io!(TcpStream);
stream_io!(UnixStream);
