//! [`TcpListener`]: accepting connections without blocking the thread.

use std::io;
use std::net::{self, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use super::{socket, TcpStream};
use crate::reactor::{Direction, Source};

/// A TCP socket that listens for connections.
///
/// ```
/// use mini::net::{TcpListener, TcpStream};
///
/// mini::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let client = mini::spawn(async move { TcpStream::connect(addr).await });
///     let (_server_side, peer) = listener.accept().await?;
///     let client = client.await.unwrap()?;
///     assert_eq!(peer, client.local_addr()?);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpListener {
    source: Source<net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` and starts listening. Binding never waits, so this is not async.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::from_std(net::TcpListener::bind(addr)?)
    }

    /// Takes over a listener made with `std::net` (for example with options of your own),
    /// switching it to non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener { source: Source::new(listener)? })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// If the process is out of descriptors (`EMFILE`), the error is returned; the pending
    /// connection stays queued in the kernel, so retrying at once would spin.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The poll form of [`accept`](Self::accept), for hand-written futures.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let fd = self.source.get_ref().as_raw_fd();
        let (stream, peer) =
            std::task::ready!(self.source.poll_io(cx, Direction::Read, |_| socket::accept(fd)))?;
        trace!("fd {fd}: accepted a connection from {peer}");
        Poll::Ready(Ok((TcpStream::from_nonblocking(stream)?, peer)))
    }

    /// The address this listener is bound to (with the real port if bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }
}

/// The listening socket's descriptor, for options and calls this type does not offer. Accepting
/// through it directly bypasses the runtime (fine for a non-blocking call such as shedding a
/// connection); closing it is the listener's job alone.
impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.source.get_ref().as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.source.get_ref().as_fd()
    }
}
