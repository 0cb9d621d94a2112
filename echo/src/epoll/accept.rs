//! How the epoll server takes connections in: it accepts the listener's queue, up to a budget
//! per turn; sheds or pauses when `accept` fails; refuses a connection past `--max-connections`;
//! and registers the others with epoll, the table and the idle heap.

use std::cmp::Reverse;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use log::{debug, warn};

use super::conn::Conn;
use super::sys::accept;
use super::{Server, ACCEPTS_PER_TURN};
use crate::shed::Next;

/// What a connection is registered for, once, for its whole life: both directions, end of
/// stream, edge-triggered. (Errors and hang-ups are always reported.)
const CONN_EVENTS: libc::c_int = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;

impl Server {
    /// Accepts the connections waiting in the queue, up to [`ACCEPTS_PER_TURN`].
    pub(super) fn accept_all(&mut self) {
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
        let conn = Conn::new(fd, peer, serial, self.opts.idle_timeout.is_some());
        if let (Some(timeout), Some(at)) = (self.opts.idle_timeout, conn.last_active) {
            self.idle.push(Reverse((at + timeout, serial, token)));
        }
        self.conns.insert(conn);
        debug!("accepted {peer}");
    }
}
