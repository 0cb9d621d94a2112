//! How the epoll server takes connections in: the [`Acceptor`] (shared with `sigio`) accepts
//! the listener's queue, and sheds or pauses when `accept` fails; the server takes up to a budget
//! per turn, refuses a connection past `--max-connections`, and registers the others with epoll,
//! the table and the idle heap.

use std::cmp::Reverse;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use log::{debug, warn};

use super::conn::Conn;
use super::sys::accept;
use super::{Server, ACCEPTS_PER_TURN};
use crate::shed::{Next, Shedder};

/// What a connection is registered for, once, for its whole life: both directions, end of
/// stream, edge-triggered. (Errors and hang-ups are always reported.)
const CONN_EVENTS: libc::c_int = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;

/// The listening side of an edge-triggered server (this one and `sigio`): the kernel says once
/// that clients are waiting, so the server remembers it until `EAGAIN`, a shedding that emptied
/// the queue, or the accept pause says otherwise.
#[derive(Debug)]
pub(crate) struct Acceptor {
    /// The listening socket, non-blocking.
    listener: TcpListener,
    /// Whether connections may be waiting in the accept queue: set by the listener's event (or
    /// signal), cleared by `EAGAIN`. Edge-triggered, so the kernel will not say it twice.
    ready: bool,
    /// While accepting is paused for want of resources: until when.
    paused_until: Option<Instant>,
    /// Closes the waiting clients when out of descriptors.
    shedder: Shedder,
}

impl Acceptor {
    /// Takes `listener`, non-blocking; `ready` if clients may already be waiting.
    pub(crate) fn new(listener: TcpListener, ready: bool) -> Acceptor {
        Acceptor { listener, ready, paused_until: None, shedder: Shedder::new() }
    }

    pub(crate) fn listener(&self) -> &TcpListener {
        &self.listener
    }

    /// The kernel said that clients are waiting.
    pub(crate) fn set_ready(&mut self) {
        self.ready = true;
    }

    /// When the next wait must end for the sake of accepting: now if clients wait (the budget
    /// ran out), at the end of a pause, or never (`None`) if the queue was seen empty.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.ready.then(|| self.paused_until.unwrap_or_else(Instant::now))
    }

    /// The next waiting connection; `None` when the queue is empty, accepting is paused, or a
    /// failure pauses it (shedding the waiting clients when out of descriptors).
    pub(crate) fn accept(&mut self) -> Option<(OwnedFd, SocketAddr)> {
        if !self.ready || self.paused_until.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        self.paused_until = None;
        loop {
            let e = match accept(self.listener.as_fd()) {
                Ok(accepted) => {
                    self.shedder.accepted();
                    return Some(accepted);
                }
                Err(e) => e,
            };
            if e.kind() == io::ErrorKind::WouldBlock {
                self.ready = false;
                return None;
            }
            match self.shedder.accept_failed(&e, self.listener.as_fd()) {
                // That one connection failed (e.g. it was aborted in the queue).
                Next::Retry => {}
                // Out of descriptors, the waiting clients were closed and the queue was seen
                // empty, which proves the listener not ready: the next client brings an event.
                Next::Shed => {
                    self.ready = false;
                    return None;
                }
                // The queue stays as it is, and `ready` set: accepting resumes after the pause.
                Next::Pause => {
                    self.paused_until = Some(Instant::now() + crate::ACCEPT_PAUSE);
                    return None;
                }
            }
        }
    }
}

impl Server {
    /// Accepts the connections waiting in the queue, up to [`ACCEPTS_PER_TURN`]; with the budget
    /// used up, the acceptor stays ready and the next wait only collects events.
    pub(super) fn accept_all(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some((fd, peer)) = self.acceptor.accept() else { return };
            self.register(fd, peer);
        }
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
        let conn = Conn::new(fd, peer, serial, self.opts.idle_timeout.is_some());
        if let (Some(timeout), Some(at)) = (self.opts.idle_timeout, conn.last_active) {
            self.idle.push(Reverse((at + timeout, serial, token)));
        }
        self.conns.insert(conn);
        debug!("accepted {peer}");
    }
}
