//! One connection of the io_uring server: its socket, the buffers it holds, which of its
//! operations are in flight, and [`Conn::settle`], which submits what its state calls for.
//!
//! Completions change the state ([`Conn::on_recv`], [`Conn::on_send`]); `settle` then looks at
//! the state as a whole and queues the operations it lacks: the send of the oldest buffer, the
//! multishot receive (or its cancellation, for flow control), the cancellation of everything
//! when the connection is being closed. Keeping all submissions in one place is what makes the
//! two rules of the [module docs](super) easy to check: one send at a time, and nothing freed
//! or closed while an operation of this connection is in flight.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use io_uring::{cqueue, opcode, types};

use super::bufs::{self, Buffers};
use super::ring::{Completion, Key, Op, Ring};
use crate::transform;

/// Buffers a connection may hold unsent before its receive is cancelled: its peer is not taking
/// the replies as fast as it sends. The receive is posted again once all of them are sent.
const MAX_HELD: usize = 4;

/// What [`Conn::settle`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// The connection goes on (or waits for the completions of its cancelled operations).
    Open,
    /// Nothing of it is in flight and it is finished: drop it.
    Done,
}

/// The multishot receive of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recv {
    /// None in flight.
    Idle,
    /// Posted; each arriving segment brings a completion with a buffer.
    Armed,
    /// Posted and a cancellation asked for; its last completion has not come yet.
    Cancelling,
}

/// A buffer that holds reply bytes not yet sent.
#[derive(Debug, Clone, Copy)]
struct Held {
    bid: u16,
    len: u32,
}

/// One open connection.
///
/// # Invariant: nothing freed under the kernel
///
/// While `recv` is not `Idle` or `sending` is set, an operation of this connection is in flight:
/// the socket must stay open and the front buffer of `out` must stay held. The connection is
/// dropped (closing `fd`) and its buffers given back only when [`Conn::settle`] returns
/// [`Settled::Done`], which it does only with neither in flight.
pub(super) struct Conn {
    /// The socket (blocking mode is fine: io_uring never blocks the thread on it). Closed on
    /// drop, which happens only with no operation in flight.
    fd: OwnedFd,
    /// Who is on the other end, for the logs.
    pub(super) peer: SocketAddr,
    /// Tells this connection from a later one in the same slot.
    pub(super) serial: u64,
    /// Received and transformed bytes not yet sent, oldest first; each entry holds its buffer.
    out: VecDeque<Held>,
    /// Bytes of `out`'s front already sent (a short send leaves the rest).
    sent: u32,
    /// The multishot receive.
    recv: Recv,
    /// A send of `out`'s front is in flight.
    sending: bool,
    /// Flow control: `out` reached [`MAX_HELD`]; no receive until it is empty.
    paused: bool,
    /// The receive ended with `ENOBUFS` (the buffer ring was empty): it is posted again when
    /// buffers come back, by [`Server::rearm_starved`](super::Server::rearm_starved).
    pub(super) starved: bool,
    /// The peer finished sending (a receive returned 0).
    read_closed: bool,
    /// Being closed after an error or a timeout: cancellations are asked for, and the connection
    /// waits for its operations' last completions.
    closing: bool,
    /// The cancellation of everything in flight is queued (once is enough).
    cancelled: bool,
    /// With `--idle-timeout`, when a byte last moved either way (or the connection was
    /// accepted); `None` without one, so that the clock is not read for every message.
    pub(super) last_active: Option<Instant>,
}

impl Conn {
    /// `timed`: an idle timeout applies, so the connection notes when bytes move.
    pub(super) fn new(fd: OwnedFd, peer: SocketAddr, serial: u64, timed: bool) -> Conn {
        Conn {
            fd,
            peer,
            serial,
            out: VecDeque::new(),
            sent: 0,
            recv: Recv::Idle,
            sending: false,
            paused: false,
            starved: false,
            read_closed: false,
            closing: false,
            cancelled: false,
            last_active: timed.then(Instant::now),
        }
    }

    /// Whether the connection is being closed.
    pub(super) fn closing(&self) -> bool {
        self.closing
    }

    /// Starts closing the connection: everything in flight is cancelled by the next
    /// [`Conn::settle`], which says `Done` once the last completion is in.
    pub(super) fn close(&mut self) {
        self.closing = true;
    }

    /// Takes a completion of the receive. Bytes are transformed in their buffer and queued for
    /// sending; end of stream and errors are noted. Returns whether the receive ended for want
    /// of buffers (`ENOBUFS`): then the caller lists the connection as starved.
    pub(super) fn on_recv(&mut self, c: Completion, bufs: &mut Buffers, upper: bool) -> bool {
        if !c.more() {
            self.recv = Recv::Idle; // the multishot receive is over; `settle` may post another
        }
        // A completion that names a buffer hands it over: it is ours now (see `Buffers`).
        let buffer = cqueue::buffer_select(c.flags);
        if let Some(bid) = buffer {
            bufs.take(bid);
        }
        let (bid, len) = match (buffer, c.result) {
            (Some(bid), n) if n > 0 && !self.closing => (bid, n as u32),
            (buffer, _) => {
                // No bytes to keep (end of stream may come with an empty buffer), or closing.
                if let Some(bid) = buffer {
                    bufs.give_back(bid);
                }
                match c.error() {
                    None if c.result == 0 => self.read_closed = true, // end of stream
                    None if self.closing => {}                        // bytes nobody will read
                    None => self.fail(&io::Error::other("bytes received without a buffer")),
                    Some(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        self.starved = true;
                        return true;
                    }
                    Some(e) if e.raw_os_error() == Some(libc::ECANCELED) => {} // we asked
                    Some(e) => self.fail(&e),
                }
                return false;
            }
        };
        // Keep the buffer until its bytes are sent.
        transform::apply(&mut bufs.get(bid)[..len as usize], upper);
        self.out.push_back(Held { bid, len });
        touch(&mut self.last_active);
        if self.out.len() >= MAX_HELD {
            self.paused = true;
        }
        false
    }

    /// Takes the completion of the send. A short send leaves the rest for the next one; a
    /// finished buffer goes back to the ring.
    pub(super) fn on_send(&mut self, c: Completion, bufs: &mut Buffers) {
        self.sending = false;
        let n = match c.error() {
            _ if c.result > 0 => c.result as u32,
            Some(e) if e.raw_os_error() == Some(libc::ECANCELED) && self.closing => return,
            Some(e) => return self.fail(&e),
            None => {
                return self.fail(&io::Error::new(io::ErrorKind::WriteZero, "send took no byte"))
            }
        };
        touch(&mut self.last_active);
        let Some(front) = self.out.front() else { return };
        self.sent += n;
        if self.sent < front.len {
            return; // a short send: `settle` sends the rest
        }
        bufs.give_back(front.bid);
        self.out.pop_front();
        self.sent = 0;
        if self.out.is_empty() {
            self.paused = false;
        }
    }

    /// Queues what the state calls for (see the [file docs](self)) and says whether the
    /// connection is finished. `key` names it in `user_data`.
    pub(super) fn settle(
        &mut self,
        key: Key,
        ring: &mut Ring,
        bufs: &mut Buffers,
    ) -> io::Result<Settled> {
        let fd = types::Fd(self.fd.as_raw_fd());
        let in_flight = self.sending || self.recv != Recv::Idle;
        if self.closing {
            if !in_flight {
                return Ok(Settled::Done);
            }
            if !self.cancelled {
                let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::fd(fd).all())
                    .build()
                    .user_data(Op::Cancel.user_data());
                // SAFETY: a cancellation names the socket only to match operations; it reads no
                // buffer. The operations it cancels keep their buffer and socket until their
                // last completions, which `in_flight` waits for before `Done`.
                unsafe { ring.push(&cancel) }?;
                self.cancelled = true;
            }
            return Ok(Settled::Open);
        }
        // 1. Send the oldest reply bytes, one send at a time: two sends in flight on one socket
        //    may complete out of order.
        if let (false, Some(front)) = (self.sending, self.out.front()) {
            let bytes = &bufs.get(front.bid)[self.sent as usize..front.len as usize];
            let send = opcode::Send::new(fd, bytes.as_ptr(), bytes.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(Op::Send(key).user_data());
            // SAFETY: the bytes are in buffer `front.bid`, which this connection holds until the
            // send's completion (`on_send` gives it back only after), in memory that is never
            // freed (see `Buffers`). The socket closes only when the connection is dropped,
            // which waits for the completion too (`sending` is set below).
            unsafe { ring.push(&send) }?;
            self.sending = true;
        }
        // 2. Receive while the peer's replies keep flowing, else stop receiving (flow control).
        let want = !self.read_closed && !self.paused && !self.starved;
        match (want, self.recv) {
            (true, Recv::Idle) => {
                let recv = opcode::RecvMulti::new(fd, bufs::GROUP)
                    .build()
                    .user_data(Op::Recv(key).user_data());
                // SAFETY: the receive names no buffer of ours: the kernel takes each from the
                // buffer ring, whose memory is never freed, and hands it over in a completion.
                // The socket stays open until the receive's last completion (`recv` is not
                // `Idle` until then, and the connection is dropped only when it is).
                unsafe { ring.push(&recv) }?;
                self.recv = Recv::Armed;
            }
            (false, Recv::Armed) if self.paused => {
                let cancel = opcode::AsyncCancel::new(Op::Recv(key).user_data())
                    .build()
                    .user_data(Op::Cancel.user_data());
                // SAFETY: a cancellation names neither buffer nor socket, only an operation.
                unsafe { ring.push(&cancel) }?;
                self.recv = Recv::Cancelling;
            }
            _ => {}
        }
        // 3. The peer is done and has every reply: close.
        let done =
            self.read_closed && self.out.is_empty() && !self.sending && self.recv == Recv::Idle;
        Ok(if done { Settled::Done } else { Settled::Open })
    }

    /// Gives back every buffer the connection holds. Called just before it is dropped, when
    /// nothing of it is in flight.
    pub(super) fn release(&mut self, bufs: &mut Buffers) {
        assert!(!self.sending && self.recv == Recv::Idle, "released with an operation in flight");
        for held in self.out.drain(..) {
            bufs.give_back(held.bid);
        }
    }

    /// Logs an error of this connection and starts closing it.
    fn fail(&mut self, e: &io::Error) {
        if !self.closing {
            log::debug!("closing {} after an error: {e}", self.peer);
        }
        self.closing = true;
    }
}

/// Notes in a connection's `last_active` that bytes moved, if an idle timeout applies.
fn touch(last_active: &mut Option<Instant>) {
    if let Some(at) = last_active {
        *at = Instant::now();
    }
}
