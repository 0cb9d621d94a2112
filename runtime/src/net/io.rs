//! The byte-stream operations behind [`TcpStream`](super::TcpStream) and its two halves, written
//! once on the registered socket they share.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::net;
use std::os::fd::AsRawFd;
use std::task::{ready, Context, Poll};

use crate::reactor::{Direction, Source};

/// A connected, registered, non-blocking TCP socket.
#[derive(Debug)]
pub(crate) struct StreamIo(pub(crate) Source<net::TcpStream>);

impl StreamIo {
    pub(crate) fn socket(&self) -> &net::TcpStream {
        self.0.get_ref()
    }

    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(self.0.poll_io(cx, Direction::Read, |mut s| s.read(buf)))?;
        self.after_read(n, buf.len());
        Poll::Ready(Ok(n))
    }

    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let read = |s: &net::TcpStream| super::socket::recv_uninit(s.as_raw_fd(), buf);
        let n = ready!(self.0.poll_io(cx, Direction::Read, read))?;
        self.after_read(n, buf.len());
        Poll::Ready(Ok(n))
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.try_io(Direction::Read, |mut s| s.read(buf))?;
        self.after_read(n, buf.len());
        Ok(n)
    }

    /// A read that did not fill the buffer emptied the kernel's: waiting now saves the syscall
    /// that would only say EWOULDBLOCK.
    fn after_read(&self, n: usize, len: usize) {
        if n > 0 && n < len {
            self.0.clear_ready(Direction::Read);
        }
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // std's write on a TcpStream is send(MSG_NOSIGNAL): a reset peer is an EPIPE error,
        // never a SIGPIPE that kills the process.
        let n = ready!(self.0.poll_io(cx, Direction::Write, |mut s| s.write(buf)))?;
        self.after_write(n, buf.len());
        Poll::Ready(Ok(n))
    }

    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.try_io(Direction::Write, |mut s| s.write(buf))?;
        self.after_write(n, buf.len());
        Ok(n)
    }

    /// A short write filled the kernel's buffer: the next one would only say EWOULDBLOCK.
    fn after_write(&self, n: usize, len: usize) {
        if n < len {
            self.0.clear_ready(Direction::Write);
        }
    }

    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // writev has no MSG_NOSIGNAL flag; Rust programs ignore SIGPIPE from the start, so a
        // reset peer is an EPIPE error here too.
        self.0.poll_io(cx, Direction::Write, |mut s| s.write_vectored(bufs))
    }

    // `read`, `write` and `ready` are plain `poll_fn` futures rather than `async fn`s: each
    // `async fn` layer is one more state machine, with its own state byte, inside the caller's
    // future, and a server polls these once per message.

    pub(crate) fn read<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        poll_fn(move |cx| self.poll_read(cx, buf))
    }

    pub(crate) fn write<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        poll_fn(move |cx| self.poll_write(cx, buf))
    }

    pub(crate) async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    pub(crate) fn ready(&self, dir: Direction) -> impl Future<Output = io::Result<()>> + '_ {
        poll_fn(move |cx| self.0.poll_ready(cx, dir))
    }
}

/// Implements the `futures-io` traits for a type with an `io` field holding a [`StreamIo`]
/// (inline in the stream, in an `Rc` shared by the two halves), once for all of them.
/// `poll_close` shuts down the writing side.
macro_rules! impl_async_io {
    ($type:ty: $($trait:ident),+) => {
        $($crate::net::io::impl_async_io!(@ $trait $type);)+
    };
    (@ AsyncRead $type:ty) => {
        impl futures_io::AsyncRead for $type {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_read(cx, buf)
            }
        }
    };
    (@ AsyncWrite $type:ty) => {
        impl futures_io::AsyncWrite for $type {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_write_vectored(cx, bufs)
            }

            /// Nothing to flush: the stream keeps no buffer.
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            /// Shuts down the writing side.
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.io.socket().shutdown(std::net::Shutdown::Write))
            }
        }
    };
}
pub(crate) use impl_async_io;
