//! One connection of the epoll server: its socket, its unsent output, what the kernel said of it,
//! and the step that uses that up ([`Conn::drive`]: read, transform, `send` or `writev`).
//!
//! The rules kept here are the ones the [module docs](super) teach: readiness is forgotten only
//! on proof (`EAGAIN`, or a short `recv` or `send`); a connection with output pending reads only
//! when its socket has room, and only as much as fits beside that output in one buffer; the
//! pending and the new bytes then leave in one `writev`.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::sys::{recv, send, writev};
use super::READS_PER_TURN;
use crate::transform;

/// What a connection needs after [`Conn::drive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// It waits for an event: more bytes, room to send, or the end of the stream.
    Wait,
    /// It used its read budget and can go on without an event: serve it again next turn.
    Yield,
    /// The peer finished sending and has every reply: close it.
    Done,
}

/// One open connection: its socket, its unsent output and what the kernel said of it.
///
/// # Readiness flags
///
/// Edge-triggered epoll reports a change once, so the flags remember it: [`Conn::note`] sets
/// them from events, and they are cleared only on proof, that is `EAGAIN` or a short `recv` or
/// `send`. A set flag may be stale (the call then returns `EAGAIN`); a cleared one is never
/// wrong, because whatever makes the socket ready again brings a new event.
pub(crate) struct Conn {
    /// The socket, non-blocking. Dropping the `Conn` closes it.
    fd: OwnedFd,
    /// Who is on the other end, for the logs.
    pub(crate) peer: SocketAddr,
    /// `pending[sent..]` is reply not yet taken by the socket. Empty and unallocated unless a
    /// `send` fell short; while not empty the connection reads only beside it, within one
    /// buffer, when the socket has room (see [`Conn::drive`]).
    pending: Vec<u8>,
    /// How much of `pending` has been sent.
    sent: usize,
    /// The socket may have bytes (or end of stream, or an error) to read.
    readable: bool,
    /// The socket may have room to send (or an error to report).
    writable: bool,
    /// The peer shut down its sending side (or the connection broke): the socket stays readable
    /// until `recv` returns 0, so a short read proves nothing.
    read_closed: bool,
    /// Until `recv` says `EAGAIN`, a short read proves nothing either: what the kernel said was
    /// lost, or may have been used up by the wrong read ([`Conn::note_unknown`],
    /// [`Conn::note_signal`]). Never set by the epoll server.
    unsure: bool,
    /// In [`Server::again`](super::Server::again): served in the next turn, not by its own events.
    pub(crate) queued: bool,
    /// With `--idle-timeout`, when a byte last moved either way (or the connection was
    /// accepted): the timeout counts from here. `None` without one: nobody asks, and reading
    /// the clock for every message would cost this loop, the benchmarks' reference, CPU.
    pub(crate) last_active: Option<Instant>,
    /// Tells this connection from a later one in the same slot, in
    /// [`Server::idle`](super::Server::idle).
    pub(super) serial: u64,
}

impl Conn {
    /// `timed`: an idle timeout applies, so the connection notes when bytes move.
    pub(crate) fn new(fd: OwnedFd, peer: SocketAddr, serial: u64, timed: bool) -> Conn {
        Conn {
            fd,
            peer,
            pending: Vec::new(),
            sent: 0,
            // The first event, right after registration, sets them.
            readable: false,
            writable: false,
            read_closed: false,
            unsure: false,
            queued: false,
            last_active: timed.then(Instant::now),
            serial,
        }
    }

    /// Records what an event says. Errors and hang-ups count as readable and writable, so that
    /// the next call meets them.
    pub(crate) fn note(&mut self, flags: u32) {
        let any = |mask: libc::c_int| flags & mask as u32 != 0;
        if any(libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) {
            self.readable = true;
        }
        if any(libc::EPOLLRDHUP | libc::EPOLLHUP) {
            self.read_closed = true;
        }
        if any(libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) {
            self.writable = true;
        }
    }

    /// Records that the connection's readiness is unknown: announcements of it were lost (the
    /// signal-driven server's overflow) or never made (before it asked for them). Assumes it
    /// readable and writable, and lets only `EAGAIN` or the end of stream prove it drained: the
    /// end of stream may wait behind the bytes a short read returned, and its announcement is
    /// gone.
    pub(crate) fn note_unknown(&mut self) {
        (self.readable, self.writable, self.unsure) = (true, true, true);
    }

    /// Records what a signal says (`si_band`: the same bits as epoll's flags). A signal does not
    /// tell bytes from the end of the stream: both are `POLLIN`. So when the connection cannot
    /// read at once (its output waits for room, or it is queued), the announcements of the last
    /// bytes and of the end may both be noted before its next read, which returns the bytes,
    /// short of the end; then only `EAGAIN` or the end itself proves it drained.
    pub(crate) fn note_signal(&mut self, band: u32) {
        self.note(band);
        let waits = self.queued || self.sent < self.pending.len();
        if waits && band & libc::POLLIN as u32 != 0 {
            self.unsure = true;
        }
    }

    /// Echoes what the socket allows without waiting, up to [`READS_PER_TURN`] reads: read,
    /// transform, send. `buf` is the loop's read buffer.
    ///
    /// While output is pending, the connection moves only when the socket has room; it then
    /// reads into the part of `buf` the pending output leaves free (so the two fit in one
    /// buffer), and sends both at once ([`Conn::send_both`]).
    pub(crate) fn drive(&mut self, buf: &mut [u8], upper: bool) -> io::Result<Step> {
        for _ in 0..READS_PER_TURN {
            let unsent = self.pending.len() - self.sent;
            // 1. Output waits for room: nothing to do until the socket has some.
            if unsent > 0 && !self.writable {
                return Ok(Step::Wait);
            }
            // 2. Read what has arrived, into the room beside the pending output.
            let room_len = buf.len() - unsent;
            let room = &mut buf[..room_len];
            let mut n = 0;
            if self.readable && !room.is_empty() {
                match recv(self.fd.as_fd(), room) {
                    Ok(0) if unsent == 0 => return Ok(Step::Done),
                    // End of stream with output pending: send it first; `readable` stays set,
                    // and the next `recv` says 0 again.
                    Ok(0) => {}
                    Ok(k) => {
                        n = k;
                        touch(&mut self.last_active);
                        if k < room.len() && !self.read_closed && !self.unsure {
                            self.readable = false; // the queue is empty: new bytes bring an event
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        (self.readable, self.unsure) = (false, false);
                    }
                    Err(e) => return Err(e),
                }
            }
            if n == 0 && unsent == 0 {
                return Ok(Step::Wait);
            }
            // 3. Send the pending output and the new reply; keep what the socket refuses.
            transform::apply(&mut room[..n], upper);
            self.send_both(&room[..n])?;
            if !self.pending.is_empty() {
                return Ok(Step::Wait); // the socket is full (`writable` is cleared)
            }
        }
        let more = if self.pending.is_empty() { self.readable } else { self.writable };
        Ok(if more { Step::Yield } else { Step::Wait })
    }

    /// Sends the pending output and then `new` as far as the socket takes them without
    /// waiting: `send` for one of them, `writev` for both. What the socket refuses becomes the
    /// pending output; once none is left, its buffer is freed (an idle connection holds none).
    fn send_both(&mut self, new: &[u8]) -> io::Result<()> {
        let unsent = &self.pending[self.sent..];
        let total = unsent.len() + new.len();
        let n = match (unsent.is_empty(), new.is_empty()) {
            (true, true) => return Ok(()),
            (true, false) => send(self.fd.as_fd(), new)?,
            (false, true) => send(self.fd.as_fd(), unsent)?,
            (false, false) => writev(self.fd.as_fd(), &[IoSlice::new(unsent), IoSlice::new(new)])?,
        };
        if n > 0 {
            touch(&mut self.last_active);
        }
        if n < total {
            self.writable = false; // the send buffer is full: room brings a new event
        }
        let unsent = unsent.len();
        if n < unsent {
            self.sent += n;
            if !new.is_empty() {
                // Keep only the unsent bytes, then add the new ones: at most one buffer in all.
                self.pending.drain(..self.sent);
                self.sent = 0;
                self.pending.extend_from_slice(new);
            }
        } else {
            self.pending.clear();
            self.sent = 0;
            self.pending.extend_from_slice(&new[n - unsent..]);
            if self.pending.is_empty() {
                self.pending = Vec::new();
            }
        }
        Ok(())
    }
}

/// Notes in a connection's `last_active` that bytes moved, if an idle timeout applies.
fn touch(last_active: &mut Option<Instant>) {
    if let Some(at) = last_active {
        *at = Instant::now();
    }
}
