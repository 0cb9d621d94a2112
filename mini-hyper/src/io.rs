//! [`MiniIo`]: a mini `TcpStream` as hyper's `rt::Read` and `rt::Write`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::AsyncWrite;
use hyper::rt::{Read, ReadBufCursor, Write};
use mini::net::TcpStream;

/// A [`TcpStream`] that hyper can read and write (hyper's I/O traits are its own, not
/// `futures-io`'s, so a stream needs this wrapper, as tokio's needs `hyper_util::rt::TokioIo`).
#[derive(Debug)]
pub struct MiniIo {
    stream: TcpStream,
}

impl MiniIo {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream) -> MiniIo {
        MiniIo { stream }
    }

    /// The stream, for its socket options and addresses.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

impl Read for MiniIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // hyper's read buffer is mostly uninitialised spare capacity: the kernel writes into it
        // directly, and nothing is zeroed first.
        // SAFETY: `as_mut` hands out the cursor's unfilled part, possibly uninitialised, and we
        // must not de-initialise any of it: `poll_read_uninit` only lets recv(2) write into it.
        let unfilled = unsafe { buf.as_mut() };
        let n = ready!(self.get_mut().stream.poll_read_uninit(cx, unfilled))?;
        // SAFETY: `poll_read_uninit` returned `n`: the first `n` bytes of the unfilled part,
        // where the cursor advances over, were written by the kernel, so are initialised.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl Write for MiniIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    /// Nothing to flush: the stream keeps no buffer.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends the peer an end of stream (`shutdown(Write)`); replies can still be read.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }

    /// True: `writev` sends a response's head and body in one call, without copying them into
    /// one buffer first.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }
}
