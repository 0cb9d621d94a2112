//! [`TcpStream`]: a connection whose reads and writes wait without blocking the thread.

use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::net::{self, Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll};

use super::io::StreamIo;
use super::{socket, OwnedReadHalf, OwnedWriteHalf};
use crate::reactor::{Direction, Source};

/// A TCP connection.
///
/// Reads and writes take `&mut self`, so one task uses it at a time; to read in one task and
/// write in another, split it with [`into_split`](Self::into_split).
///
/// ```
/// use mini::net::{TcpListener, TcpStream};
///
/// mini::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
///     let (mut server, _) = listener.accept().await?;
///
///     client.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpStream {
    /// Inline, not shared: a server reads it on every operation, and one less pointer to
    /// follow is one less cache line per message. Only `into_split` moves it into an `Rc`.
    io: StreamIo,
}

impl TcpStream {
    /// Connects to `addr`, trying each address it resolves to until one accepts.
    ///
    /// Name resolution (for a host name rather than an IP address) uses the system resolver,
    /// which blocks the thread.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match connect_one(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the address resolved to nothing")
        }))
    }

    /// Takes over a connected std stream that is already non-blocking.
    pub(crate) fn from_nonblocking(stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream { io: StreamIo(Source::new(stream)?) })
    }

    /// Takes over a connected stream made with `std::net`, switching it to non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_nonblocking(stream)
    }

    /// Reads some bytes into `buf` and returns how many; `0` means the peer closed its side
    /// (or `buf` is empty).
    pub fn read<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        self.io.read(buf)
    }

    /// The poll form of [`read`](Self::read), into memory that need not be initialised (a
    /// `Vec`'s spare capacity, the read buffer of a library such as hyper): the kernel writes
    /// the bytes, so nothing is zeroed first. On `Ready(Ok(n))` the first `n` elements of `buf`
    /// are initialised; `0` means the peer closed its side (or `buf` is empty).
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use mini::net::{TcpListener, TcpStream};
    ///
    /// mini::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (mut server, _) = listener.accept().await?;
    ///     client.write_all(b"hi").await?;
    ///     let mut buf: Vec<u8> = Vec::with_capacity(16);
    ///     let n = poll_fn(|cx| server.poll_read_uninit(cx, buf.spare_capacity_mut())).await?;
    ///     // SAFETY: the read initialised the first `n` bytes of the spare capacity.
    ///     unsafe { buf.set_len(n) };
    ///     assert_eq!(buf, b"hi");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll_read_uninit(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read_uninit(cx, buf)
    }

    /// Reads exactly `buf.len()` bytes; an `UnexpectedEof` error if the stream ends first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.io.read_exact(buf).await
    }

    /// Writes some of `buf` and returns how many bytes were taken.
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        self.io.write(buf)
    }

    /// Writes all of `buf`, waiting while the peer is slow to read (TCP flow control).
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.io.write_all(buf).await
    }

    /// Does nothing: the stream keeps no buffer of its own. Here for the habit of calling it.
    pub async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Shuts down the reading side, the writing side, or both (`Shutdown::Write` sends the peer
    /// an end of stream, while replies can still be read).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.socket().shutdown(how)
    }

    /// Waits until a read would probably not block. With [`try_read`](Self::try_read), lets
    /// a task hold no buffer while its connection is idle and borrow one only once data has
    /// arrived. A new stream counts as readable until a read finds it empty.
    pub fn readable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        self.io.ready(Direction::Read)
    }

    /// Reads without waiting: some bytes, `0` at the end of the stream, or a `WouldBlock`
    /// error if there is nothing to read now (then [`readable`](Self::readable) waits).
    ///
    /// ```
    /// use mini::net::{TcpListener, TcpStream};
    ///
    /// mini::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     client.write_all(b"hi").await?;
    ///     let mut buf = [0; 16];
    ///     let n = loop {
    ///         server.readable().await?;
    ///         match server.try_read(&mut buf) {
    ///             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
    ///             other => break other?,
    ///         }
    ///     };
    ///     assert_eq!(&buf[..n], b"hi");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read(buf)
    }

    /// Writes without waiting: how many bytes the kernel took, or a `WouldBlock` error if it
    /// has no room now (then [`writable`](Self::writable) waits).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_write(buf)
    }

    /// Waits until a write would probably not block.
    pub fn writable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        self.io.ready(Direction::Write)
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.socket().peer_addr()
    }

    /// The local address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.socket().local_addr()
    }

    /// Turns Nagle's algorithm off (`true`): small writes are sent at once instead of being
    /// held back to be merged.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.socket().set_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.socket().nodelay()
    }

    /// Splits the stream into a reading half and a writing half that can move to different
    /// tasks. The socket closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let io = Rc::new(self.io);
        (OwnedReadHalf::new(io.clone()), OwnedWriteHalf::new(io))
    }
}

async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::from_nonblocking(socket::start_connect(addr)?)?;
    let source = &stream.io.0;
    // A new source counts as writable until tried; here we must wait for the kernel's word
    // that the handshake is over, in success or failure.
    source.clear_ready(Direction::Write);
    poll_fn(|cx| source.poll_ready(cx, Direction::Write)).await?;
    if let Some(e) = stream.io.socket().take_error()? {
        return Err(e);
    }
    Ok(stream)
}

/// The socket's descriptor, for socket options this type does not offer (`SO_SNDBUF`, ...).
impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.socket().as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.socket().as_fd()
    }
}

super::io::impl_async_io!(TcpStream: AsyncRead, AsyncWrite);
