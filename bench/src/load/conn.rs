//! One connection of the load generator: a task that sends a message, checks its reply, and
//! sends the next, within the limits set by the control task through [`Shared`] (stopping,
//! pausing, measuring).
//!
//! # One hand-written future
//!
//! A connection must read and write at once: with a pipeline, a server that stops reading while
//! its reply is unsent (as every `echo` server does) would deadlock with a client that writes K
//! messages before reading any. [`Conn::poll`] is therefore a plain `poll` function over the
//! stream's `AsyncRead`/`AsyncWrite`: in one turn it writes what the pipeline allows and reads
//! what has come back, and returns `Pending` only when neither made progress (the reactor then
//! holds a waker for each direction it waited on).
//!
//! # Cost per message
//!
//! Nothing is allocated per message. Every message is a window of one pseudo-random
//! `Shared::pattern`, written straight from it; replies land in one scratch buffer shared by all
//! connections (only one task runs at a time, and it checks the bytes before it yields) and are
//! compared with the same window; latencies go into a preallocated histogram. Sockets have
//! `TCP_NODELAY`, so small messages leave at once. With one message in flight a message costs
//! one `sendto` and one `recvfrom` (no read that says `EWOULDBLOCK`, see step 2 of
//! [`Conn::poll`]) and a share of an `epoll_wait`, about as much as it costs the server: at many
//! connections the load generator and the server saturate their cores together, which the
//! load generator's own busy figure shows.

use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use mini::net::TcpStream;

use super::Shared;

/// Rounds of write-and-read a connection may do before it lets the others run.
const POLL_BUDGET: usize = 16;

/// One connection's state: how far its messages and replies have got.
pub(super) struct Conn {
    id: usize,
    stream: TcpStream,
    shared: Rc<Shared>,
    /// Messages fully written.
    sent: u64,
    /// Bytes of message `sent` written so far.
    write_pos: usize,
    /// Whether `began` holds the start of message `sent` already (its first write may wait).
    stamped: bool,
    /// Replies fully received (and checked).
    done: u64,
    /// Bytes of reply `done` received so far.
    read_pos: usize,
    /// When each message in flight began, message `m` at `m % pipeline`.
    began: Box<[Instant]>,
}

impl Conn {
    pub(super) fn new(id: usize, stream: TcpStream, shared: Rc<Shared>) -> Conn {
        let began = vec![Instant::now(); shared.pipeline].into();
        Conn {
            id,
            stream,
            shared,
            sent: 0,
            write_pos: 0,
            stamped: false,
            done: 0,
            read_pos: 0,
            began,
        }
    }

    /// The task: run the loop until stopped, report a failure, count itself out.
    pub(super) async fn run(mut self) {
        if let Err(why) = poll_fn(|cx| self.poll(cx)).await {
            self.shared.fail(why);
        }
        self.shared.running.set(self.shared.running.get() - 1);
    }

    /// Writes and reads as far as the socket allows; `Ready` once stopped with nothing owed.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let shared = Rc::clone(&self.shared);
        for _ in 0..POLL_BUDGET {
            let mut progressed = false;

            // 1. Write: finish the message begun, or begin one if the pipeline has room.
            let room = self.sent - self.done < shared.pipeline as u64;
            // A message is in flight from its stamp on (see `in_flight`), so a stamped one is
            // written even when paused, though its first write found the socket full.
            let may_begin = !shared.stopping.get() && !shared.paused.get();
            if self.stamped || (room && may_begin) {
                if !self.stamped {
                    self.began[(self.sent % shared.pipeline as u64) as usize] = Instant::now();
                    self.stamped = true;
                    shared.in_flight.set(shared.in_flight.get() + 1);
                }
                let rest = &shared.message(self.sent)[self.write_pos..];
                match Pin::new(&mut self.stream).poll_write(cx, rest) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(self.error("send", "wrote 0 bytes")))
                    }
                    Poll::Ready(Ok(n)) => {
                        progressed = true;
                        self.write_pos += n;
                        if self.write_pos == shared.size {
                            (self.sent, self.write_pos, self.stamped) = (self.sent + 1, 0, false);
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.error("send", e))),
                    Poll::Pending => {}
                }
            }

            // 2. Read what has come back of the replies owed, and check it. The buffer is larger
            //    than what is owed, so the read comes back short and the runtime forgets the
            //    socket's readiness: the next read waits for an event instead of making a system
            //    call that would only say EWOULDBLOCK. More bytes than owed is a server error.
            let owed =
                (self.sent - self.done) as usize * shared.size + self.write_pos - self.read_pos;
            if owed > 0 {
                let mut scratch = shared.scratch.borrow_mut();
                match Pin::new(&mut self.stream).poll_read(cx, &mut scratch[..]) {
                    Poll::Ready(Ok(0)) => {
                        let why = format!("closed with {owed} reply bytes owed");
                        return Poll::Ready(Err(self.error("receive", why)));
                    }
                    Poll::Ready(Ok(n)) if n > owed => {
                        let why =
                            format!("got {n} bytes when {owed} were owed: more than was sent");
                        return Poll::Ready(Err(self.error("receive", why)));
                    }
                    Poll::Ready(Ok(n)) => {
                        progressed = true;
                        self.take_replies(&shared, &scratch[..n])?;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.error("receive", e))),
                    Poll::Pending => {}
                }
            }

            // 3. Done, paused with nothing owed, or wait for the socket (the reactor holds our
            //    waker for each direction that returned Pending).
            let idle = self.sent == self.done && !self.stamped;
            if shared.stopping.get() && idle {
                return Poll::Ready(Ok(()));
            }
            if shared.paused.get() && idle {
                shared.parked.borrow_mut().push(cx.waker().clone());
                return Poll::Pending;
            }
            if !progressed {
                return Poll::Pending;
            }
        }
        // Budget spent while the socket kept up: let the other connections have a turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Checks `bytes`, the next reply bytes, against what was sent; completes the messages whose
    /// last byte they hold, recording their latencies when measuring.
    fn take_replies(&mut self, shared: &Shared, mut bytes: &[u8]) -> Result<(), String> {
        let now = Instant::now();
        while !bytes.is_empty() {
            let expected = &shared.message(self.done)[self.read_pos..];
            let n = expected.len().min(bytes.len());
            if bytes[..n] != expected[..n] {
                return Err(self.mismatch(&bytes[..n], &expected[..n]));
            }
            (self.read_pos, bytes) = (self.read_pos + n, &bytes[n..]);
            if self.read_pos == shared.size {
                if shared.measuring.get() {
                    let began = self.began[(self.done % shared.pipeline as u64) as usize];
                    let ns = now.duration_since(began).as_nanos() as u64;
                    shared.latency.borrow_mut().saturating_record(ns.max(1));
                    shared.messages.set(shared.messages.get() + 1);
                }
                if self.done == 0 {
                    shared.answered.set(shared.answered.get() + 1);
                }
                (self.done, self.read_pos) = (self.done + 1, 0);
                shared.in_flight.set(shared.in_flight.get() - 1);
                // Only a pause waits for the last reply.
                if shared.in_flight.get() == 0 && shared.paused.get() {
                    shared.wake_drain_waiter();
                }
            }
        }
        Ok(())
    }

    fn error(&self, what: &str, why: impl std::fmt::Display) -> String {
        format!("connection {}: {what} failed after {} replies: {why}", self.id, self.done)
    }

    fn mismatch(&self, got: &[u8], expected: &[u8]) -> String {
        let i = got.iter().zip(expected).position(|(g, e)| g != e).unwrap_or(0);
        format!(
            "connection {}: wrong reply: message {} ({} B), byte {}: sent {:#04x}, got {:#04x}",
            self.id,
            self.done,
            self.shared.size,
            self.read_pos + i,
            expected[i],
            got[i]
        )
    }
}
