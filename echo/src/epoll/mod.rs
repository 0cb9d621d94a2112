//! Multiplexing model, edge-triggered: one thread sleeps in `epoll_wait(2)`, which names only
//! the sockets that became ready. No runtime: the loop of `mini`'s reactor, written out by hand.
//!
//! `select.rs` hands the kernel the whole watch list on every turn. Here the kernel keeps it:
//! each socket is added to an epoll instance **once** (`epoll_ctl(EPOLL_CTL_ADD)`) for both
//! directions and **edge-triggered** (`EPOLLET`), with a token, its index in the connection
//! table, and `epoll_wait` returns the tokens of the sockets that changed. The interest never
//! changes while a socket lives, so the only calls per operation are the `recv` and the `send`
//! (or `writev`).
//!
//! Edge-triggered means a socket is reported when it *becomes* readable or writable, not on every
//! wait while it stays so. The server must therefore remember readiness itself ([`Conn`]'s flags)
//! and use it up: read until `EAGAIN` or a short read (the socket's queue is then empty, and new
//! bytes bring a new event), write until the reply is sent or `send` falls short (the socket's
//! buffer is full, and room brings a new event). Forgetting that rule loses data silently: the
//! rest would sit in the kernel with no event left to announce it. End of stream is the one
//! readiness never forgotten (`EPOLLRDHUP` is reported once).
//!
//! [`Conn`]: conn::Conn
//!
//! Per connection the loop keeps only what is half done: reply bytes the socket has not taken
//! yet. Every read goes into **one read buffer shared by the whole loop**; the transformed bytes
//! are sent straight from it, and only what `send` leaves over is copied into the connection's
//! `pending` output. While output is pending the connection reads only when the socket has room
//! again, and only as much as fits beside the pending bytes in one buffer; the pending and the new
//! bytes then leave in one `writev(2)`, one system call instead of two. So a connection holds at
//! most one buffer of data, and once its client stops reading (no room ever comes) it is not read
//! at all: TCP flow control reaches the client.
//!
//! # What the thread does while waiting
//!
//! It sleeps in the kernel, inside `epoll_wait` with no timeout, and uses no CPU until a client
//! connects, sends, closes or makes room to receive. The wait has a timeout only while accepting
//! is paused ([`crate::ACCEPT_PAUSE`]) or a connection's idle deadline is coming
//! (`--idle-timeout`), and none at all (it just collects events) while a connection that used up
//! its turn's read budget still has work.
//!
//! # Cost and limits
//!
//! - An idle connection costs one slot of the table (a descriptor, its peer address, an empty
//!   `Vec`, four flags, its last activity and serial: about 100 bytes; with `--idle-timeout` a
//!   heap entry more) plus the kernel's socket and epoll entry. No buffer.
//! - A turn costs in proportion to the sockets that are ready, not to those that are open; there
//!   is no `FD_SETSIZE` cap, only the open-files limit.
//! - One thread, so one core at most. A connection may read [`READS_PER_TURN`] times per turn,
//!   and the listener accept [`ACCEPTS_PER_TURN`] connections, so that one busy client or a burst
//!   of connections cannot starve the others; with work left over, the next wait returns at once.
//! - Linux only (`epoll`, `accept4`), and the bookkeeping is all by hand: each connection's state
//!   is a few flags that every path must keep right; in `mini` the runtime keeps them.
//!
//! # Limits and failures
//!
//! - Out of descriptors, the waiting clients are closed at once ([`Shedder`](crate::shed::Shedder)); the queue is then
//!   empty, so the next client brings a new event.
//! - `--max-connections` is checked against the table at accept.
//! - `--idle-timeout`: each connection notes when a byte last moved. A heap holds one deadline
//!   per connection, at most its real one; the first deadline bounds the wait, and a due entry
//!   either closes its connection or goes back with the real deadline. So a turn costs nothing
//!   per idle connection, as with the rest of this loop.
//! - `writev` has no `MSG_NOSIGNAL`: writing to a peer that reset raises `SIGPIPE`, which Rust
//!   programs ignore (the standard library sets it to `SIG_IGN` before `main`), so the call fails
//!   with `EPIPE` and that connection is closed.
//!
//! # Why this is the ceiling for `mini`
//!
//! `mini` on its epoll backend makes the same system calls: one `epoll_ctl` per socket, one
//! `epoll_wait` per turn, `recv` and `send` until `EWOULDBLOCK`. On top it does a runtime's
//! bookkeeping: it maps each event to a waker, queues the task, polls its boxed future, which
//! calls back into the reactor to try the syscall. This loop does none of that: the event goes
//! straight to the code that uses it (both share one read buffer and keep none per idle
//! connection). So a
//! readiness-based runtime can approach this server's throughput and latency but not pass it; the
//! gap between the two is the runtime's overhead.
//!
//! # Files
//!
//! This file holds the loop ([`serve`]) and its state ([`Server`]): the wait, the events, the
//! connections carried over to the next turn and the idle timeout. The rest, in the order a
//! connection meets it: [`accept`] takes it in, [`table`] files it under its token, [`conn`] is
//! its state and its read/transform/send step, and [`sys`] holds the system calls, each wrapped
//! once.

pub(crate) mod accept;
// The connection's step and the system calls are shared with the signal-driven server
// (`crate::sigio`), which learns readiness another way and uses it up the same way.
pub(crate) mod conn;
pub(crate) mod sys;
mod table;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::io;
use std::mem;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::time::Instant;

use log::debug;

use self::accept::Acceptor;
use self::conn::Step;
use self::sys::Epoll;
use self::table::Conns;
use crate::options::{self, ConnOptions};
use crate::BUF_SIZE;

/// Reads one connection may do per turn before the other ready ones get theirs.
const READS_PER_TURN: usize = 32;

/// Connections one turn may accept before the ready connections are served.
pub(crate) const ACCEPTS_PER_TURN: usize = 128;

/// Events one `epoll_wait` returns at most; any others are returned by the next one.
const MAX_EVENTS: usize = 1024;

/// The listener's token. A connection's token is its index in [`Conns`], far below this.
const LISTENER: u64 = u64::MAX;

/// Serves echo on `listener` until the process exits.
pub fn serve(listener: TcpListener, upper: bool, opts: ConnOptions) -> io::Result<Infallible> {
    // Non-blocking, so that accepting until EAGAIN ends instead of stalling the loop.
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new()?;
    epoll.add(listener.as_fd(), LISTENER, libc::EPOLLIN | libc::EPOLLET)?;
    let mut server = Server {
        epoll,
        // Its first event reports any client already waiting.
        acceptor: Acceptor::new(listener, false),
        upper,
        conns: Conns::default(),
        buf: vec![0; BUF_SIZE].into_boxed_slice(),
        again: Vec::new(),
        opts,
        idle: BinaryHeap::new(),
        next_serial: 0,
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    loop {
        // 1. Sleep until some socket changes (see `timeout_ms` for when not to sleep).
        let n = server.epoll.wait(&mut events, server.timeout_ms())?;

        // 2. Record each event and serve that connection, unless it is queued from the last
        //    turn: then step 3 serves it, so that no connection gets two budgets in one turn.
        let leftovers = mem::take(&mut server.again);
        for event in &events[..n] {
            // Copied out: `epoll_event` is packed on x86-64, so its fields cannot be borrowed.
            let (token, flags) = (event.u64, event.events);
            server.on_event(token, flags);
        }

        // 3. Serve the connections that used up their budget in the last turn.
        for token in leftovers {
            if let Some(conn) = server.conns.get_mut(token) {
                conn.queued = false;
                server.drive(token);
            }
        }

        // 4. Close the connections idle for too long (`--idle-timeout`).
        server.close_idle();

        // 5. Accept last, so that a slot freed in this turn is reused only after every token
        //    recorded in it (events and leftovers) has been handled.
        server.accept_all();
    }
}

/// The loop's state.
struct Server {
    /// The epoll instance; the listener and every connection are in it once.
    epoll: Epoll,
    /// The listening socket, and whether clients wait in its queue.
    acceptor: Acceptor,
    /// Whether replies are upper-cased (`--upper`).
    upper: bool,
    /// The open connections, indexed by their epoll token.
    conns: Conns,
    /// The one read buffer: each read lands here and is sent on from here.
    buf: Box<[u8]>,
    /// Connections that used their read budget with work left (each marked `queued`), to be
    /// served next turn. No event will come for them: the readiness was already reported.
    again: Vec<usize>,
    /// `--max-connections`, `--idle-timeout`, `--send-buffer`.
    opts: ConnOptions,
    /// With `--idle-timeout`: (deadline, serial, token) of each open connection, earliest first.
    /// A deadline is at most the connection's real one (bytes may have moved since); entries of
    /// closed connections stay until they come up, and are recognised by their serial.
    idle: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// The serial of the next connection accepted.
    next_serial: u64,
}

impl Server {
    /// How long the next `epoll_wait` may sleep, in milliseconds (-1: until an event).
    fn timeout_ms(&self) -> libc::c_int {
        if !self.again.is_empty() {
            return 0;
        }
        let idle_due = self.idle.peek().map(|Reverse((at, _, _))| *at);
        match self.acceptor.due().into_iter().chain(idle_due).min() {
            None => -1,
            Some(at) => {
                // Rounded up, so the wait does not end just before what it waits for.
                let left = at.saturating_duration_since(Instant::now());
                left.as_micros().div_ceil(1000).try_into().unwrap_or(libc::c_int::MAX)
            }
        }
    }

    /// Records one event and serves the connection it names.
    fn on_event(&mut self, token: u64, flags: u32) {
        if token == LISTENER {
            self.acceptor.set_ready();
            return;
        }
        let token = token as usize; // tokens are indices into `conns`, so they fit
        let Some(conn) = self.conns.get_mut(token) else {
            return; // cannot happen (see `Conns`), and would be harmless
        };
        conn.note(flags);
        if !conn.queued {
            self.drive(token);
        }
    }

    /// Lets connection `token` do what its readiness allows, and closes it when it is done.
    fn drive(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else { return };
        match conn.drive(&mut self.buf, self.upper) {
            Ok(Step::Wait) => {}
            Ok(Step::Yield) => {
                conn.queued = true;
                self.again.push(token);
            }
            Ok(Step::Done) => {
                debug!("closed {}", conn.peer);
                self.conns.remove(token);
            }
            Err(e) => {
                debug!("closing {} after an error: {e}", conn.peer);
                self.conns.remove(token);
            }
        }
    }

    /// Closes the connections that moved no byte for `--idle-timeout`, and puts the due entries
    /// of the others back with their real deadlines.
    fn close_idle(&mut self) {
        let Some(timeout) = self.opts.idle_timeout else { return };
        let now = Instant::now();
        while let Some(&Reverse((at, serial, token))) = self.idle.peek() {
            if at > now {
                return;
            }
            self.idle.pop();
            let Some(conn) = self.conns.get_mut(token) else { continue };
            if conn.serial != serial {
                continue; // the slot holds a newer connection, which has its own entry
            }
            // A queued connection has work left, so it is not idle; and closing it would break
            // the promise of `Conns` that leftovers stay open until the next turn drives them.
            let due = match conn.last_active {
                Some(at) if !conn.queued => at + timeout,
                _ => now + timeout,
            };
            if due > now {
                self.idle.push(Reverse((due, serial, token)));
            } else {
                options::log_idle(conn.peer, timeout);
                self.conns.remove(token);
            }
        }
    }
}
