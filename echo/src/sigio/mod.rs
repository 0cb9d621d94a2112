//! Signal-driven model: the kernel sends the serving thread a signal when a socket becomes
//! ready, and the signal names the socket. The Linux 2.4 way to serve many connections, before
//! `epoll`; here as a raw loop, because its limits are the lesson.
//!
//! # How a signal announces readiness
//!
//! Each socket is set up once with `fcntl` ([`sys::announce`]): `F_SETSIG` picks a real-time
//! signal instead of the plain `SIGIO`, `F_SETOWN_EX` with `F_OWNER_TID` sends it to this thread
//! only, and the `O_ASYNC` flag turns it on. From then on, whenever bytes arrive, a client
//! waits to be accepted, room frees up in the send buffer after a send fell short, or an error or
//! hang-up happens, the kernel queues one signal whose `siginfo` carries the descriptor (`si_fd`)
//! and what became possible (`si_band`: `POLLIN`, `POLLOUT`, `POLLERR`, `POLLHUP`).
//!
//! Nothing runs asynchronously here. Both signals are **blocked** in the serving thread (their
//! default action is to end the process) before any socket gets `O_ASYNC`, so they wait in the
//! thread's queue, and the thread takes them synchronously: it sleeps in `sigtimedwait` until
//! one arrives, then reads the rest from a `signalfd` up to 64 at a time ([`sys::SignalQueue`]).
//! A handler could do almost nothing (only async-signal-safe calls); taken this way, a signal is
//! just an event record, and the loop is the epoll loop with another source of events. The
//! signals go to this thread only: `echo`'s `signals` thread, which waits for SIGINT and SIGTERM
//! with both signals unblocked, never gets one.
//!
//! # Why it is edge-triggered
//!
//! A signal reports a *change*: bytes arrived, room appeared. Nothing repeats it while the
//! socket stays ready, and a socket that was ready before `O_ASYNC` was set is never announced.
//! So each connection remembers its readiness and uses it up exactly as in [`crate::epoll`]
//! (whose connection step [`Conn::drive`] this server shares): read until `EAGAIN` or a short
//! read, send until the reply is out or `send` falls short. Unlike epoll, every arriving segment
//! raises a new signal, not only the first one after the socket was drained, so a busy
//! connection costs about one signal per message, and some name sockets already drained (those
//! find `EAGAIN`, which is harmless).
//!
//! Two cases need more than a short read as proof that a socket is drained, because a signal
//! does not tell bytes from the end of the stream (both are `POLLIN`; epoll says `EPOLLRDHUP`):
//! a new connection, served once without a signal for what came before it was set up
//! ([`Conn::note_unknown`]); and a connection that could not read when its signal came (its
//! output waited for room, or it had used its turn), since its next read may return the last
//! bytes short of an end whose signal is already spent ([`Conn::note_signal`]). Both read until
//! `EAGAIN` or the end.
//!
//! # The bounded queue, and the overflow that names no socket
//!
//! Real-time signals queue, one record each, but the queue is bounded: all pending signals of a
//! user count against `RLIMIT_SIGPENDING` (`ulimit -i`). When a record cannot be queued, the
//! kernel falls back to the plain `SIGIO`, a standard signal that is pending at most once and
//! carries no descriptor: some socket, maybe many, changed, and which ones is lost. The server
//! must then assume every socket may be ready. On `SIGIO` it throws away the queue (those
//! records are covered by what follows, and taking them makes room for new ones), marks every
//! connection readable and writable and the listener ready, and serves them all once, each until
//! `recv` says `EAGAIN` ([`Server::scan`]): a `recv` per connection, most of which say `EAGAIN`.
//! Nothing is lost, but a turn now costs in proportion to the open connections, as in `select`,
//! exactly when the server is busiest. It logs (at most once a second) that it fell back to a scan.
//!
//! # Why epoll replaced it
//!
//! - A signal per readiness change, taken by a system call; `epoll_wait` returns many events per
//!   call, and one per socket however many segments arrived.
//! - The queue is shared by the whole user and bounded; under load it overflows, and the
//!   fallback is a scan of every socket. epoll's ready list holds each socket once, so it
//!   cannot overflow.
//! - Signals are process-wide state: every thread but the serving one must not take them, a
//!   library that blocks or handles them interferes, and `fcntl` needs three calls per socket
//!   (`epoll_ctl` needs one).
//!
//! `docs/io-models.md` measures the cost beside epoll.
//!
//! # Cost and limits
//!
//! - An idle connection costs a slot of the table, indexed by descriptor number (the epoll
//!   server's [`Conn`], about 100 bytes, no buffer), and no signal: a socket with nothing
//!   happening queues nothing, so an idle server sleeps in `sigtimedwait` and uses no CPU.
//! - Same budgets as the epoll loop: `READS_PER_TURN` reads per connection and
//!   [`ACCEPTS_PER_TURN`] accepts per turn; a connection with work left is served next turn.
//! - Out of descriptors, [`Shedder`](crate::shed::Shedder) closes the waiting clients; `--max-connections` is checked
//!   at accept; `--idle-timeout` scans the table when the earliest deadline it knew of passes.
//!
//! [`Conn`]: crate::epoll::conn::Conn
//! [`Conn::drive`]: crate::epoll::conn::Conn::drive
//! [`Conn::note_unknown`]: crate::epoll::conn::Conn::note_unknown
//! [`Conn::note_signal`]: crate::epoll::conn::Conn::note_signal
//! [`ACCEPTS_PER_TURN`]: crate::epoll::ACCEPTS_PER_TURN
//!
//! # Files
//!
//! This file holds the loop and its state; [`accept`] takes connections in and files them by
//! descriptor; [`sys`] holds the signal and `fcntl` calls.

mod accept;
mod sys;

use std::convert::Infallible;
use std::io;
use std::mem;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use log::{debug, info};

use self::sys::{Signal, SignalQueue};
use crate::epoll::accept::Acceptor;
use crate::epoll::conn::{Conn, Step};
use crate::options::{self, ConnOptions};

/// How often at most the server logs that the signal queue overflowed.
const OVERFLOW_LOG_EVERY: Duration = Duration::from_secs(1);

/// Serves echo on `listener` until the process exits.
pub fn serve(listener: TcpListener, upper: bool, opts: ConnOptions) -> io::Result<Infallible> {
    // Blocked first: from the listener's `O_ASYNC` on, a signal may come at any moment.
    let queue = SignalQueue::block()?;
    let tid = sys::this_thread();
    sys::announce(listener.as_fd(), tid)?;
    let mut server = Server {
        queue,
        tid,
        // Clients may have queued before `O_ASYNC` was set, and no signal says so.
        acceptor: Acceptor::new(listener, true),
        upper,
        conns: Vec::new(),
        open: 0,
        buf: vec![0; crate::BUF_SIZE].into_boxed_slice(),
        again: Vec::new(),
        opts,
        idle_check_at: None,
        overflows: 0,
        overflow_logged_at: None,
    };
    let mut signals = Vec::new();
    loop {
        // 1. Take the queued signals; with none and nothing left to do, sleep until one comes
        //    (or a deadline of `wait_for`).
        signals.clear();
        if server.queue.take(&mut signals)? == 0 {
            if let Some(timeout) = server.wait_for() {
                signals.extend(server.queue.wait(timeout)?);
            }
        }

        // 2. Record each signal and serve the connection it names (unless it is queued from
        //    the last turn: step 3 serves it). A plain SIGIO means the queue overflowed.
        let leftovers = mem::take(&mut server.again);
        let mut overflowed = false;
        for &Signal { signo, fd, band } in &signals {
            if signo == libc::SIGIO {
                overflowed = true;
            } else {
                server.on_signal(fd, band);
            }
        }
        if overflowed {
            server.scan()?;
        }

        // 3. Serve the connections that used up their budget in the last turn.
        for fd in leftovers {
            if let Some(conn) = server.conn(fd) {
                conn.queued = false;
                server.drive(fd);
            }
        }

        // 4. Close the connections idle for too long (`--idle-timeout`).
        server.close_idle();

        // 5. Accept last, so that a descriptor closed in this turn is reused only after every
        //    signal and leftover of the turn has been handled.
        server.accept_all();
    }
}

/// The loop's state.
struct Server {
    /// The thread's two signals, blocked, and the `signalfd` that reads them.
    queue: SignalQueue,
    /// This thread, the owner of every socket's signals.
    tid: libc::pid_t,
    /// The listening socket, non-blocking, with `O_ASYNC`, and whether clients wait in its
    /// queue.
    acceptor: Acceptor,
    /// Whether replies are upper-cased (`--upper`).
    upper: bool,
    /// The open connections, indexed by descriptor number, which is what a signal names. A
    /// stale signal (queued before its socket closed and the number was reused) only marks the
    /// new connection ready for nothing, and its next call says `EAGAIN`.
    conns: Vec<Option<Conn>>,
    /// How many of `conns` are `Some`.
    open: usize,
    /// The one read buffer: each read lands here and is sent on from here.
    buf: Box<[u8]>,
    /// Descriptors of the connections to serve next turn without a signal (each marked
    /// `queued`): those that used their read budget, and the new ones.
    again: Vec<i32>,
    /// `--max-connections`, `--idle-timeout`, `--send-buffer`.
    opts: ConnOptions,
    /// With `--idle-timeout`: when to look for idle connections, at most the earliest deadline
    /// of any (a deadline only moves later as bytes move, and a new connection's comes after
    /// every open one's). `None` with no connection.
    idle_check_at: Option<Instant>,
    /// Overflows since the last log line about them.
    overflows: u64,
    /// When the last log line about overflows was written.
    overflow_logged_at: Option<Instant>,
}

impl Server {
    /// How long to sleep for a signal: `None` without limit, `Some` until the accept pause or an
    /// idle deadline ends; not at all (the outer `None`) while work is left from the last turn.
    fn wait_for(&self) -> Option<Option<Duration>> {
        if !self.again.is_empty() {
            return None;
        }
        let due = self.acceptor.due().into_iter().chain(self.idle_check_at).min();
        if due.is_some_and(|at| at <= Instant::now()) {
            return None; // the accept budget ran out with clients still queued
        }
        // Rounded up, so that the wait does not end just before what it waits for.
        let left =
            |at: Instant| at.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
        Some(due.map(left))
    }

    fn conn(&mut self, fd: i32) -> Option<&mut Conn> {
        conn_at(&mut self.conns, fd)
    }

    /// Records one signal and serves the connection it names.
    fn on_signal(&mut self, fd: i32, band: u32) {
        if fd == self.acceptor.listener().as_raw_fd() {
            self.acceptor.set_ready();
            return;
        }
        // Else a stale signal for a descriptor closed since: nothing to do.
        let Some(conn) = self.conn(fd) else { return };
        conn.note_signal(band);
        if !conn.queued {
            self.drive(fd);
        }
    }

    /// The overflow: the queue lost some signals, and `SIGIO` does not say which. Throws the
    /// queue away and serves every socket as if each had been announced ready.
    fn scan(&mut self) -> io::Result<()> {
        let thrown = self.queue.drain()?;
        self.overflows += 1;
        let now = Instant::now();
        if self.overflow_logged_at.is_none_or(|at| now - at >= OVERFLOW_LOG_EVERY) {
            info!(
                "the real-time signal queue overflowed (RLIMIT_SIGPENDING): fell back to a scan \
                 of all {} connections ({} overflows since the last report; {thrown} queued \
                 signals thrown away now)",
                self.open, self.overflows
            );
            (self.overflows, self.overflow_logged_at) = (0, Some(now));
        }
        self.acceptor.set_ready();
        for fd in 0..self.conns.len() as i32 {
            if let Some(conn) = self.conn(fd) {
                conn.note_unknown();
                if !conn.queued {
                    self.drive(fd);
                }
            }
        }
        Ok(())
    }

    /// Lets connection `fd` do what its readiness allows, and closes it when it is done.
    fn drive(&mut self, fd: i32) {
        let Some(conn) = conn_at(&mut self.conns, fd) else { return };
        match conn.drive(&mut self.buf, self.upper) {
            Ok(Step::Wait) => {}
            Ok(Step::Yield) => {
                conn.queued = true;
                self.again.push(fd);
            }
            Ok(Step::Done) => {
                debug!("closed {}", conn.peer);
                self.remove(fd);
            }
            Err(e) => {
                debug!("closing {} after an error: {e}", conn.peer);
                self.remove(fd);
            }
        }
    }

    /// Drops connection `fd`, which closes its socket.
    fn remove(&mut self, fd: i32) {
        if let Some(slot) = usize::try_from(fd).ok().and_then(|i| self.conns.get_mut(i)) {
            if slot.take().is_some() {
                self.open -= 1;
            }
        }
    }

    /// With `--idle-timeout`, once the earliest deadline may have passed: closes the connections
    /// that moved no byte for that long, and notes when the next one may be due.
    fn close_idle(&mut self) {
        let (Some(timeout), Some(at)) = (self.opts.idle_timeout, self.idle_check_at) else {
            return;
        };
        let now = Instant::now();
        if now < at {
            return;
        }
        let mut next = None::<Instant>;
        for fd in 0..self.conns.len() as i32 {
            let Some(conn) = self.conn(fd) else { continue };
            // A queued connection has work left, so it is not idle, and it must stay open
            // until the next turn drives it.
            let due = match conn.last_active {
                Some(at) if !conn.queued => at + timeout,
                _ => now + timeout,
            };
            if due <= now {
                options::log_idle(conn.peer, timeout);
                self.remove(fd);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        self.idle_check_at = next;
    }
}

/// The connection open on descriptor `fd`, if any.
fn conn_at(conns: &mut [Option<Conn>], fd: i32) -> Option<&mut Conn> {
    conns.get_mut(usize::try_from(fd).ok()?)?.as_mut()
}
