//! The two halves of a [`TcpStream`](super::TcpStream), for reading in one task and writing in
//! another. Each direction has its own waker slot in the reactor, so the two never disturb each
//! other.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use super::io::StreamIo;
use crate::reactor::Direction;

/// The reading half of a [`TcpStream`](super::TcpStream), made by
/// [`into_split`](super::TcpStream::into_split).
#[derive(Debug)]
pub struct OwnedReadHalf {
    io: Rc<StreamIo>,
}

/// The writing half of a [`TcpStream`](super::TcpStream), made by
/// [`into_split`](super::TcpStream::into_split).
#[derive(Debug)]
pub struct OwnedWriteHalf {
    io: Rc<StreamIo>,
}

impl OwnedReadHalf {
    pub(crate) fn new(io: Rc<StreamIo>) -> Self {
        OwnedReadHalf { io }
    }

    /// Reads some bytes into `buf`; `0` means the peer closed its side.
    pub fn read<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        self.io.read(buf)
    }

    /// Reads exactly `buf.len()` bytes; an `UnexpectedEof` error if the stream ends first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.io.read_exact(buf).await
    }

    /// Waits until a read would probably not block.
    pub fn readable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        self.io.ready(Direction::Read)
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.socket().peer_addr()
    }
}

impl OwnedWriteHalf {
    pub(crate) fn new(io: Rc<StreamIo>) -> Self {
        OwnedWriteHalf { io }
    }

    /// Writes some of `buf` and returns how many bytes were taken.
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        self.io.write(buf)
    }

    /// Writes all of `buf`, waiting while the peer is slow to read.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.io.write_all(buf).await
    }

    /// Does nothing: there is no buffer to flush.
    pub async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Shuts down the writing side: the peer reads an end of stream.
    pub fn shutdown(&self) -> io::Result<()> {
        self.io.socket().shutdown(Shutdown::Write)
    }

    /// Waits until a write would probably not block.
    pub fn writable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        self.io.ready(Direction::Write)
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.socket().peer_addr()
    }
}

super::io::impl_async_io!(OwnedReadHalf: AsyncRead);
super::io::impl_async_io!(OwnedWriteHalf: AsyncWrite);
