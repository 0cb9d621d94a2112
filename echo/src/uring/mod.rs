//! Asynchronous model, completion-based: one thread hands the kernel whole operations through
//! an io_uring and is told when each is *done*. No readiness step at all: the loop never asks
//! whether a socket could be read; it has asked the kernel to read it, and learns what was read.
//!
//! The readiness servers (`select`, [`epoll`](crate::epoll)) wait for "socket 7 is readable",
//! then make the `recv` system call themselves, then `send`. Here the three become entries in a
//! queue shared with the kernel: the loop writes submission entries (accept on the listener,
//! receive on this socket, send these bytes), enters the kernel **once** per turn to submit them
//! all and sleep, and wakes up to completion entries ("the receive on socket 7 put 64 bytes in
//! buffer 12", "the send took 64 bytes"). The copies happen inside the kernel, between the wait
//! and the wake-up; the loop only reacts to their results.
//!
//! # The operations, in the model's idiom
//!
//! - **Multishot accept.** One submission on the listener posts a completion for every
//!   connection, with its new descriptor: no accept call per connection.
//! - **Multishot receive with a provided buffer ring** ([`bufs`]). One submission per connection
//!   posts a completion each time bytes arrive. It names no buffer: the kernel takes one from a
//!   ring of buffers the server lent it, so an idle connection holds no memory. (A buffer per
//!   connection would cost 16 KiB per idle connection, as in the `select` server; the ring
//!   costs a fixed pool, touched as it is used.)
//! - **Send** exactly the received bytes, transformed in place (`--upper`), from the same
//!   buffer: no copy. A short send is sent on from where it stopped. One send per connection is
//!   in flight at a time, since two may complete out of order; received buffers queue behind it.
//!   The buffer goes back to the ring when its send completes.
//! - **Flow control.** A connection whose peer does not read its replies has its sends stall, so
//!   its queue grows; at four buffers (`MAX_HELD`) its receive is cancelled, and posted again
//!   only when the queue is empty. Then TCP flow control holds the client back, and the
//!   server's memory stays bounded by the ring, whatever the clients do.
//! - **Close** on end of stream (a receive of 0 bytes) once the last send has completed; on an
//!   error or `--idle-timeout`, after cancelling what is in flight.
//!
//! # The one rule: nothing freed under the kernel
//!
//! A readiness server hands the kernel a buffer only for the length of a system call. Here the
//! kernel holds buffers and descriptors *between* system calls, for as long as an operation is
//! in flight, and writes into the buffer whenever the bytes arrive. So no buffer may be freed
//! or reused, and no descriptor closed, before the operation's last completion has come back,
//! whatever else happens to the connection: an error, a timeout, a peer that resets. Closing
//! therefore cancels the operations in flight (`AsyncCancel`) and waits for their completions
//! (each says `ECANCELED`, or that it finished first) before it gives the buffers back and
//! closes the socket. [`conn::Conn`] keeps that rule, and every `unsafe` push of an entry argues
//! it; the buffer memory is never freed at all ([`bufs`]). Rust's borrow checker cannot see the
//! kernel, and neither can Miri: the argument is in the code and the test is to close
//! connections with operations in flight, many times, under load (`tests/e2e`).
//!
//! # What the thread does while waiting
//!
//! It sleeps in `io_uring_enter(2)`, which also submitted the turn's new entries: one system
//! call per turn, whatever the number of connections served in it. The ring is set up with
//! `SINGLE_ISSUER` and `DEFER_TASKRUN`, so the kernel finishes the operations (copies the
//! received bytes, posts the completions) when this thread enters, in a batch, instead of
//! interrupting it. The wait has a timeout only while accepting is paused or an idle deadline
//! is coming. Never `SQPOLL`: a kernel thread polling the queue would burn a core.
//!
//! # Cost and limits
//!
//! - An idle connection costs one slot of the table (a descriptor, its peer address, an empty
//!   queue, a few flags: about 100 bytes) and its armed receive in the kernel. No buffer.
//! - The buffer pool is fixed ([`bufs::SIZE`] times 1024, 16 MiB of address space, resident as
//!   it is touched). When every buffer is held, receives end with `ENOBUFS` and are posted again
//!   once buffers come back.
//! - One thread, so one core at most. Linux 6.0 or later (multishot receive), and io_uring must
//!   be allowed: seccomp profiles (Docker's default), `kernel.io_uring_disabled` and a small
//!   `RLIMIT_MEMLOCK` block it; then `echo --runtime uring` says why and exits with status 1.
//! - Out of descriptors, the multishot accept ends with `EMFILE`; the waiting clients are closed
//!   ([`Shedder`]) and the accept posted again; other shortages pause it
//!   for [`crate::ACCEPT_PAUSE`].
//!
//! # Files
//!
//! This file holds the loop ([`serve`]) and its state ([`Server`]). The rest: [`ring`] sets up
//! the ring and names operations in `user_data`, [`bufs`] is the buffer ring, [`accept`] takes
//! connections in, [`table`] files them under their key, and [`conn`] is a connection's state
//! and the submissions it calls for.

mod accept;
mod bufs;
mod conn;
mod ring;
mod table;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::io;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use log::debug;

use self::bufs::Buffers;
use self::conn::Settled;
use self::ring::{Completion, Key, Op, Ring};
use self::table::Conns;
use crate::options::{self, ConnOptions};
use crate::shed::Shedder;

/// A ring and its buffers, ready to serve. Made before the server announces its address, so
/// that a system where io_uring is blocked gets a clear error instead of a listener.
pub struct Setup {
    ring: Ring,
    bufs: Buffers,
}

impl Setup {
    /// Sets up the ring and registers the buffer ring; the error names the likely cause (seccomp,
    /// `kernel.io_uring_disabled`, an old kernel, `RLIMIT_MEMLOCK`) and suggests `--runtime epoll`.
    pub fn new() -> io::Result<Setup> {
        let ring = Ring::new().map_err(ring::explain)?;
        let bufs = Buffers::new(&ring).map_err(ring::explain)?;
        Ok(Setup { ring, bufs })
    }
}

/// Serves echo on `listener` until the process exits, on `setup` (made here if `None`).
pub fn serve(
    listener: TcpListener,
    setup: Option<Setup>,
    upper: bool,
    opts: ConnOptions,
) -> io::Result<Infallible> {
    let Setup { ring, bufs } = match setup {
        Some(setup) => setup,
        None => Setup::new()?,
    };
    // Non-blocking, for the shedder's accepts (the ring's never block the thread anyway).
    listener.set_nonblocking(true)?;
    let mut server = Server {
        ring,
        bufs,
        listener,
        upper,
        conns: Conns::default(),
        accepting: false,
        accept_paused_until: None,
        starved: Vec::new(),
        given_back: 0,
        opts,
        shedder: Shedder::new(),
        idle: BinaryHeap::new(),
        next_serial: 0,
    };
    server.arm_accept()?;
    let mut completions = Vec::new();
    loop {
        // 1. Submit the entries queued since the last turn and sleep until some operation is
        //    done (or a deadline of `timeout` comes): one system call.
        server.ring.wait(server.timeout())?;

        // 2. Take each completion: it changes one connection's state (or brings a new one), and
        //    that connection queues what its new state calls for.
        server.ring.completions(&mut completions);
        for &c in &completions {
            server.on_completion(c)?;
        }

        // 3. Receives that ran out of buffers go again once buffers came back.
        server.rearm_starved()?;

        // 4. Close the connections idle for too long (`--idle-timeout`); end an accept pause.
        server.close_idle()?;
        server.arm_accept()?;
    }
}

/// The loop's state.
struct Server {
    /// The ring: every operation goes through it.
    ring: Ring,
    /// The receive buffers, lent to the kernel through the buffer ring.
    bufs: Buffers,
    /// The listening socket, non-blocking. Declared after `ring`, so that a server that stops
    /// drops the ring (which cancels the multishot accept) before it closes the listener.
    listener: TcpListener,
    /// Whether replies are upper-cased (`--upper`).
    upper: bool,
    /// The open connections (and those closing, until their last completion).
    conns: Conns,
    /// The multishot accept is in flight.
    accepting: bool,
    /// While accepting is paused for want of resources: until when.
    accept_paused_until: Option<Instant>,
    /// Connections whose receive ended with `ENOBUFS` (each marked `starved`).
    starved: Vec<Key>,
    /// [`Buffers::given_back`] when the starved were last served.
    given_back: u64,
    /// `--max-connections`, `--idle-timeout`, `--send-buffer`.
    opts: ConnOptions,
    /// Closes the waiting clients when out of descriptors.
    shedder: Shedder,
    /// With `--idle-timeout`: (deadline, serial, slot) of each connection, earliest first, as in
    /// the epoll server: a deadline is at most the real one, and stale entries are recognised
    /// by their serial.
    idle: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    /// The serial of the next connection accepted.
    next_serial: u64,
}

impl Server {
    /// How long the next wait may sleep (`None`: until a completion).
    fn timeout(&self) -> Option<Duration> {
        let accept_due = self.accept_paused_until.filter(|_| !self.accepting);
        let idle_due = self.idle.peek().map(|Reverse((at, _, _))| *at);
        let due = accept_due.into_iter().chain(idle_due).min()?;
        Some(due.saturating_duration_since(Instant::now()))
    }

    /// Hands one completion to what it concerns.
    fn on_completion(&mut self, c: Completion) -> io::Result<()> {
        match c.op {
            Op::Accept => self.on_accept(c),
            Op::Recv(key) => {
                let Some(conn) = self.conns.get_mut(key) else {
                    // Cannot happen (see `Conns`); if it did, the buffer would still go back.
                    if let Some(bid) = io_uring::cqueue::buffer_select(c.flags) {
                        self.bufs.take(bid);
                        self.bufs.give_back(bid);
                    }
                    return Ok(());
                };
                if conn.on_recv(c, &mut self.bufs, self.upper) {
                    self.starved.push(key);
                }
                self.settle(key)
            }
            Op::Send(key) => {
                let Some(conn) = self.conns.get_mut(key) else { return Ok(()) };
                conn.on_send(c, &mut self.bufs);
                self.settle(key)
            }
            Op::Cancel => Ok(()), // what it cancelled reports by itself
        }
    }

    /// Lets connection `key` queue what its state calls for, and drops it when it is done.
    fn settle(&mut self, key: Key) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(key) else { return Ok(()) };
        if conn.settle(key, &mut self.ring, &mut self.bufs)? == Settled::Done {
            if let Some(mut conn) = self.conns.remove(key) {
                conn.release(&mut self.bufs);
                debug!("closed {}", conn.peer);
            } // dropping `conn` closes its socket: nothing of it is in flight
        }
        Ok(())
    }

    /// Posts the receives that ended for want of buffers again, if buffers came back since.
    fn rearm_starved(&mut self) -> io::Result<()> {
        if self.starved.is_empty() || self.bufs.given_back() == self.given_back {
            return Ok(());
        }
        self.given_back = self.bufs.given_back();
        for key in std::mem::take(&mut self.starved) {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.starved = false;
                self.settle(key)?;
            }
        }
        Ok(())
    }

    /// Closes the connections that moved no byte for `--idle-timeout`, and puts the due entries
    /// of the others back with their real deadlines.
    fn close_idle(&mut self) -> io::Result<()> {
        let Some(timeout) = self.opts.idle_timeout else { return Ok(()) };
        let now = Instant::now();
        while let Some(&Reverse((at, serial, slot))) = self.idle.peek() {
            if at > now {
                break;
            }
            self.idle.pop();
            let key = Key::new(slot, serial);
            let Some(conn) = self.conns.get_mut(key) else { continue };
            if conn.serial != serial || conn.closing() {
                continue;
            }
            let due = conn.last_active.map_or(now + timeout, |at| at + timeout);
            if due > now {
                self.idle.push(Reverse((due, serial, slot)));
            } else {
                options::log_idle(conn.peer, timeout);
                conn.close();
                self.settle(key)?;
            }
        }
        Ok(())
    }
}
