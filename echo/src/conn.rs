//! One non-blocking connection with a fixed buffer: the state the `spin` and `select` servers share.
//!
//! With non-blocking sockets the server, not the kernel, must remember what is half done. Here
//! that is one thing: reply bytes that were read and transformed but that the socket has not taken
//! yet (its send buffer was full). They wait in `buf[start..end]`.
//!
//! # Invariant: read only when nothing is pending
//!
//! [`Conn::read`] is called only while [`Conn::has_pending`] is false. So a connection holds at most
//! one buffer of data, and a client that sends without reading stops being read from: its bytes
//! pile up in the kernel's buffers, its TCP window closes, and its own writes block. That is how
//! flow control reaches the client and why memory stays bounded.
//!
//! It also makes end of input simple: when a read returns 0, every reply is already written, so the
//! connection can be closed at once.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use log::debug;

use crate::options;
use crate::transform;
use crate::BUF_SIZE;

/// Whether a connection stays after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Still open; call again later.
    Open,
    /// The peer finished sending and has every reply: drop the `Conn` to close the socket.
    Done,
}

/// A non-blocking client connection and its pending output.
#[derive(Debug)]
pub struct Conn {
    /// The socket, in non-blocking mode. Dropping the `Conn` closes it.
    pub stream: TcpStream,
    /// Who is on the other end, for the logs.
    pub peer: SocketAddr,
    /// Holds the last read, transformed in place.
    buf: Box<[u8]>,
    /// `buf[start..end]` is the reply not yet written; empty when `start == end`.
    start: usize,
    /// End of the last read in `buf`.
    end: usize,
    /// When a byte last moved either way (or the connection was accepted): `--idle-timeout`
    /// counts from here.
    last_active: Instant,
}

impl Conn {
    /// Wraps a freshly accepted socket, switching it to non-blocking mode.
    pub fn new(stream: TcpStream, peer: SocketAddr) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        // One read at a time, and so the most a connection ever holds.
        let buf = vec![0; BUF_SIZE].into_boxed_slice();
        Ok(Conn { stream, peer, buf, start: 0, end: 0, last_active: Instant::now() })
    }

    /// When the connection will have been idle (no byte read or written) for `timeout`, unless
    /// a byte moves before.
    pub fn idle_deadline(&self, timeout: Duration) -> Instant {
        self.last_active + timeout
    }

    /// True while part of a reply is still waiting for room in the socket.
    pub fn has_pending(&self) -> bool {
        self.start < self.end
    }

    /// Reads what has arrived, if anything, transforms it and starts writing it back.
    ///
    /// Must only be called when nothing is pending (see the module docs).
    pub fn read(&mut self, upper: bool) -> io::Result<Status> {
        debug_assert!(!self.has_pending(), "read with a reply still pending");
        let n = match self.stream.read(&mut self.buf) {
            Ok(0) => return Ok(Status::Done),
            Ok(n) => n,
            // Nothing has arrived: not an error, just nothing to do yet.
            Err(e) if would_wait(&e) => return Ok(Status::Open),
            Err(e) => return Err(e),
        };
        self.last_active = Instant::now();
        transform::apply(&mut self.buf[..n], upper);
        (self.start, self.end) = (0, n);
        // The socket usually has room, so writing now saves the caller a round.
        self.write()?;
        Ok(Status::Open)
    }

    /// Writes as much of the pending reply as the socket takes without waiting.
    pub fn write(&mut self) -> io::Result<()> {
        while self.has_pending() {
            // std's write is send(2) with MSG_NOSIGNAL: a reset peer gives EPIPE, not SIGPIPE.
            match self.stream.write(&self.buf[self.start..self.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.start += n;
                    self.last_active = Instant::now();
                }
                // The send buffer is full; the rest stays pending.
                Err(e) if would_wait(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether the connection stays open after a step that returned `result`. It goes, with a
    /// log line saying why, when the step finished it or failed, or when `idle` (the time now
    /// and `--idle-timeout`) says no byte has moved for that long. The caller drops a connection
    /// that goes, which closes it.
    pub fn stays(&self, result: io::Result<Status>, idle: Option<(Instant, Duration)>) -> bool {
        match result {
            Ok(Status::Open) => match idle {
                Some((now, timeout)) if now >= self.idle_deadline(timeout) => {
                    options::log_idle(self.peer, timeout);
                    false
                }
                _ => true,
            },
            Ok(Status::Done) => {
                debug!("closed {}", self.peer);
                false
            }
            Err(e) => {
                debug!("closing {} after an error: {e}", self.peer);
                false
            }
        }
    }
}

/// True for the errors that mean "try again later" rather than "this connection failed".
pub fn would_wait(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}
