//! How the signal-driven server takes connections in: it accepts the listener's queue, up to a
//! budget per turn; sheds or pauses when `accept` fails; refuses a connection past
//! `--max-connections`; and sets the others up to be announced by signal, filed under their
//! descriptor number.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use log::{debug, warn};

use super::{sys, Server};
use crate::epoll::conn::Conn;
use crate::epoll::sys::accept;
use crate::epoll::ACCEPTS_PER_TURN;
use crate::shed::Next;

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
            let e = match accept(self.listener.as_fd()) {
                Ok((fd, peer)) => {
                    self.shedder.accepted();
                    self.register(fd, peer);
                    continue;
                }
                Err(e) => e,
            };
            if e.kind() == io::ErrorKind::WouldBlock {
                self.listener_ready = false; // the next client brings a signal
                return;
            }
            match self.shedder.accept_failed(&e, self.listener.as_fd()) {
                Next::Retry => {} // that one connection failed
                // The waiting clients were closed and the queue was seen empty.
                Next::Shed => {
                    self.listener_ready = false;
                    return;
                }
                // `listener_ready` stays set: accepting resumes after the pause.
                Next::Pause => {
                    self.accept_paused_until = Some(Instant::now() + crate::ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Sets a new connection up to be announced by signal and files it under its descriptor;
    /// it is served next turn without a signal, for what came before `O_ASYNC` was set. Past
    /// `--max-connections` it is closed at once instead.
    fn register(&mut self, fd: OwnedFd, peer: SocketAddr) {
        if self.opts.refuse(self.open, peer) {
            return; // dropping `fd` closes it
        }
        let set_up = self.opts.apply(fd.as_fd()).and_then(|()| sys::announce(fd.as_fd(), self.tid));
        if let Err(e) = set_up {
            warn!("cannot set up {peer}, closing it: {e}");
            return;
        }
        let raw = fd.as_raw_fd();
        let Ok(slot) = usize::try_from(raw) else { return };
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || None);
        }
        let timed = self.opts.idle_timeout.is_some();
        // No idle heap here, so no serial is needed to tell connections apart.
        let mut conn = Conn::new(fd, peer, 0, timed);
        conn.note_unknown();
        conn.queued = true;
        if let (Some(timeout), Some(at)) = (self.opts.idle_timeout, conn.last_active) {
            self.idle_check_at.get_or_insert(at + timeout);
        }
        self.conns[slot] = Some(conn);
        self.open += 1;
        self.again.push(raw);
        debug!("accepted {peer}");
    }
}
