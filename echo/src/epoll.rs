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
//! - Out of descriptors, the waiting clients are closed at once ([`Shedder`]); the queue is then
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
//! calls back into the reactor to try the syscall, and each task keeps its 16 KiB buffer while
//! idle. This loop does none of that: the event goes straight to the code that uses it. So a
//! readiness-based runtime can approach this server's throughput and latency but not pass it; the
//! gap between the two is the runtime's overhead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::Instant;

use log::{debug, warn};

use crate::options::{self, ConnOptions};
use crate::shed::{Next, Shedder};
use crate::transform;

/// Bytes read at a time: the size of the loop's one read buffer, and so the most output a
/// connection ever holds.
const BUF_SIZE: usize = 16 * 1024;

/// Reads one connection may do per turn before the other ready ones get theirs.
const READS_PER_TURN: usize = 32;

/// Connections one turn may accept before the ready connections are served.
const ACCEPTS_PER_TURN: usize = 128;

/// Events one `epoll_wait` returns at most; any others are returned by the next one.
const MAX_EVENTS: usize = 1024;

/// The listener's token. A connection's token is its index in [`Conns`], far below this.
const LISTENER: u64 = u64::MAX;

/// What a connection is registered for, once, for its whole life: both directions, end of
/// stream, edge-triggered. (Errors and hang-ups are always reported.)
const CONN_EVENTS: libc::c_int = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;

/// Serves echo on `listener` until the process exits.
pub fn serve(listener: TcpListener, upper: bool, opts: ConnOptions) -> io::Result<Infallible> {
    // Non-blocking, so that accepting until EAGAIN ends instead of stalling the loop.
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new()?;
    epoll.add(listener.as_fd(), LISTENER, libc::EPOLLIN | libc::EPOLLET)?;
    let mut server = Server {
        epoll,
        listener,
        upper,
        conns: Conns::default(),
        buf: vec![0; BUF_SIZE].into_boxed_slice(),
        listener_ready: false,
        accept_paused_until: None,
        again: Vec::new(),
        opts,
        shedder: Shedder::new(),
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
    /// The listening socket, non-blocking.
    listener: TcpListener,
    /// Whether replies are upper-cased (`--upper`).
    upper: bool,
    /// The open connections, indexed by their epoll token.
    conns: Conns,
    /// The one read buffer: each read lands here and is sent on from here.
    buf: Box<[u8]>,
    /// Whether connections may be waiting in the accept queue: set by the listener's event,
    /// cleared by EAGAIN. Edge-triggered, so the kernel will not say it twice.
    listener_ready: bool,
    /// While accepting is paused for want of resources: until when.
    accept_paused_until: Option<Instant>,
    /// Connections that used their read budget with work left (each marked `queued`), to be
    /// served next turn. No event will come for them: the readiness was already reported.
    again: Vec<usize>,
    /// `--max-connections`, `--idle-timeout`, `--send-buffer`.
    opts: ConnOptions,
    /// Closes the waiting clients when out of descriptors.
    shedder: Shedder,
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
        let accept_due = match (self.listener_ready, self.accept_paused_until) {
            (false, _) => None,
            (true, None) => return 0, // the accept budget ran out with connections still queued
            (true, Some(until)) => Some(until),
        };
        let idle_due = self.idle.peek().map(|Reverse((at, _, _))| *at);
        match accept_due.into_iter().chain(idle_due).min() {
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
            self.listener_ready = true;
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
            let due = if conn.queued { now + timeout } else { conn.last_active + timeout };
            if due > now {
                self.idle.push(Reverse((due, serial, token)));
            } else {
                options::log_idle(conn.peer, timeout);
                self.conns.remove(token);
            }
        }
    }

    /// Accepts the connections waiting in the queue, up to [`ACCEPTS_PER_TURN`].
    fn accept_all(&mut self) {
        if !self.listener_ready {
            return;
        }
        if let Some(until) = self.accept_paused_until {
            if Instant::now() < until {
                return;
            }
            self.accept_paused_until = None;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            match accept(self.listener.as_fd()) {
                Ok((fd, peer)) => {
                    self.shedder.accepted();
                    self.register(fd, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                Err(e) => match self.shedder.accept_failed(&e, self.listener.as_fd()) {
                    // That one connection failed (e.g. it was aborted in the queue).
                    Next::Retry => {}
                    // Out of descriptors, the waiting clients were closed and the queue was
                    // seen empty, which proves the listener not ready: the next client brings
                    // a new event.
                    Next::Shed => {
                        self.listener_ready = false;
                        return;
                    }
                    // The queue stays as it is; `listener_ready` stays set, so accepting
                    // resumes after the pause without a new event.
                    Next::Pause => {
                        self.accept_paused_until = Some(Instant::now() + crate::ACCEPT_PAUSE);
                        return;
                    }
                },
            }
        }
        // Budget used up: `listener_ready` stays set, so the next wait only collects events.
    }

    /// Adds a new connection to the epoll set and the table. Its first event comes at once:
    /// adding reports the socket's current readiness (writable, and readable if bytes came).
    /// Past `--max-connections` it is closed at once instead.
    fn register(&mut self, fd: OwnedFd, peer: SocketAddr) {
        if self.opts.refuse(self.conns.len(), peer) {
            return; // dropping `fd` closes it
        }
        if let Err(e) = self.opts.apply(fd.as_fd()) {
            warn!("cannot set up {peer}, closing it: {e}");
            return;
        }
        let token = self.conns.next_token();
        if let Err(e) = self.epoll.add(fd.as_fd(), token as u64, CONN_EVENTS) {
            // E.g. ENOSPC: the user's limit of epoll entries (max_user_watches) is reached.
            warn!("cannot watch {peer}, closing it: {e}");
            return; // dropping `fd` closes it
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let conn = Conn::new(fd, peer, serial);
        if let Some(timeout) = self.opts.idle_timeout {
            self.idle.push(Reverse((conn.last_active + timeout, serial, token)));
        }
        self.conns.insert(conn);
        debug!("accepted {peer}");
    }
}

/// The connection table: a slab whose index is the connection's epoll token.
///
/// # Invariant: a token names one connection
///
/// A freed slot is reused only by [`Server::accept_all`], at the end of a turn, when every token
/// of that turn's events and leftovers has been handled. The leftovers carried to the next turn
/// stay open until that turn's step 3 drives them: only [`Server::drive`] and
/// [`Server::close_idle`] close a connection, the first never queues one it closes, the second
/// never closes a queued one, and the events of a queued connection only update its flags.
/// Closing the descriptor also takes it out of the epoll set (the kernel drops an entry when its
/// last descriptor closes, and none is duplicated), so an old connection's event never reaches a
/// new one in the same slot.
#[derive(Default)]
struct Conns {
    /// `Some` for an open connection; `None` for a free slot.
    slots: Vec<Option<Conn>>,
    /// The free slots, reused last-freed first.
    free: Vec<usize>,
}

impl Conns {
    /// The token that the next [`Conns::insert`] gives.
    fn next_token(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    /// Stores `conn` under [`Conns::next_token`].
    fn insert(&mut self, conn: Conn) {
        match self.free.pop() {
            Some(token) => self.slots[token] = Some(conn),
            None => self.slots.push(Some(conn)),
        }
    }

    /// How many connections are open.
    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn get_mut(&mut self, token: usize) -> Option<&mut Conn> {
        self.slots.get_mut(token)?.as_mut()
    }

    /// Drops the connection, which closes its socket.
    fn remove(&mut self, token: usize) {
        if self.slots[token].take().is_some() {
            self.free.push(token);
        }
    }
}

/// What a connection needs after [`Conn::drive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
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
struct Conn {
    /// The socket, non-blocking. Dropping the `Conn` closes it.
    fd: OwnedFd,
    /// Who is on the other end, for the logs.
    peer: SocketAddr,
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
    /// In [`Server::again`]: served in the next turn, not by its own events.
    queued: bool,
    /// When a byte last moved either way (or the connection was accepted): `--idle-timeout`
    /// counts from here.
    last_active: Instant,
    /// Tells this connection from a later one in the same slot, in [`Server::idle`].
    serial: u64,
}

impl Conn {
    fn new(fd: OwnedFd, peer: SocketAddr, serial: u64) -> Conn {
        Conn {
            fd,
            peer,
            pending: Vec::new(),
            sent: 0,
            // The first event, right after registration, sets them.
            readable: false,
            writable: false,
            read_closed: false,
            queued: false,
            last_active: Instant::now(),
            serial,
        }
    }

    /// Records what an event says. Errors and hang-ups count as readable and writable, so that
    /// the next call meets them.
    fn note(&mut self, flags: u32) {
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

    /// Echoes what the socket allows without waiting, up to [`READS_PER_TURN`] reads: read,
    /// transform, send. `buf` is the loop's read buffer.
    ///
    /// While output is pending, the connection moves only when the socket has room; it then
    /// reads into the part of `buf` the pending output leaves free (so the two fit in one
    /// buffer), and sends both at once ([`Conn::send_both`]).
    fn drive(&mut self, buf: &mut [u8], upper: bool) -> io::Result<Step> {
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
                        self.last_active = Instant::now();
                        if k < room.len() && !self.read_closed {
                            self.readable = false; // the queue is empty: new bytes bring an event
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
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
            self.last_active = Instant::now();
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

/// An epoll instance, closed on drop.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; EPOLL_CLOEXEC is a valid flag.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 just returned this descriptor, and nothing else owns it.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds `fd` to the set for `events`, under `token`.
    fn add(&self, fd: BorrowedFd<'_>, token: u64, events: libc::c_int) -> io::Result<()> {
        let mut event = libc::epoll_event { events: events as u32, u64: token };
        // SAFETY: `event` is a live epoll_event that the kernel only reads during the call; both
        // descriptors are borrowed from their owners and so open.
        check(unsafe {
            libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event)
        })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: without limit) and fills the front of `events`; returns how
    /// many. A signal ends the wait early with none, which is not an error.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: libc::c_int) -> io::Result<usize> {
        let max = events.len().try_into().unwrap_or(libc::c_int::MAX);
        // SAFETY: the pointer and `max` describe `events`, a live slice the kernel may fill with
        // up to `max` entries; the epoll descriptor is owned by `self`.
        let n =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match check(n) {
            Ok(n) => Ok(n as usize), // 0..=max
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Accepts one connection, non-blocking and close-on-exec from the start (one call, not three).
fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain data, for which all-zero bytes are a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let fd = retry(|| {
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `storage` and `len` are live and writable, and `len` holds the storage's true
        // size, so the kernel writes within it. The listener is borrowed, so open.
        check(unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                ptr::addr_of_mut!(storage).cast(),
                &mut len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        })
    })?;
    // SAFETY: accept4 just returned this descriptor, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let peer = socket_addr(&storage)
        .ok_or_else(|| io::Error::other("accepted a socket that is neither IPv4 nor IPv6"))?;
    Ok((fd, peer))
}

/// The address `accept4` wrote into `storage`, if it is IPv4 or IPv6.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let family = libc::c_int::from(storage.ss_family);
    let storage: *const libc::sockaddr_storage = storage;
    match family {
        libc::AF_INET => {
            // SAFETY: sockaddr_storage is large enough and aligned for every socket address type,
            // and its family says the kernel wrote a sockaddr_in there (the rest is zeroed), so
            // this reads initialised bytes within the storage, which outlives the reference.
            let sin = unsafe { &*storage.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()); // network order in memory
            Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as for AF_INET above, with sockaddr_in6.
            let sin6 = unsafe { &*storage.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
        }
        _ => None,
    }
}

/// Reads into `buf` without waiting; 0 means end of stream.
fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: the pointer and length describe `buf`, a live slice the kernel writes at most
        // `buf.len()` bytes into. The socket is borrowed, so open.
        check_len(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })
    })
}

/// Sends what the socket takes of `bytes` without waiting: all, part, or 0 when its buffer is
/// full (`EAGAIN`). `MSG_NOSIGNAL`: a peer that reset gives the error `EPIPE`, not `SIGPIPE`.
fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    let sent = retry(|| {
        // SAFETY: the pointer and length describe `bytes`, a live slice the kernel only reads.
        // The socket is borrowed, so open.
        check_len(unsafe {
            libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL)
        })
    });
    match sent {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        sent => sent,
    }
}

/// Sends what the socket takes of `bufs`, in order, without waiting (`writev(2)`); 0 when its
/// buffer is full. `writev` has no `MSG_NOSIGNAL`: a peer that reset raises `SIGPIPE`, which this
/// process ignores (Rust's runtime sets it to `SIG_IGN` before `main`), so the call fails with
/// `EPIPE` like `send`.
fn writev(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let count = libc::c_int::try_from(bufs.len()).unwrap_or(libc::c_int::MAX);
    let sent = retry(|| {
        // SAFETY: `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix, so the pointer and
        // count describe `count` live iovecs, each naming a live slice the kernel only reads. The
        // socket is borrowed, so open.
        check_len(unsafe { libc::writev(fd.as_raw_fd(), bufs.as_ptr().cast(), count) })
    });
    match sent {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        sent => sent,
    }
}

/// Calls `f` again while it fails with `EINTR`: a signal came before the call did anything.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Turns the C convention (-1 and `errno`) into an `io::Result`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`check`] for calls that return a byte count (`ssize_t`), which is never negative on success.
fn check_len(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}
