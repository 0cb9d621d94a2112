//! How the signal-driven server takes connections in: epoll's `Acceptor` accepts the listener's
//! queue, and sheds or pauses when `accept` fails; the server takes up to a budget per turn,
//! refuses a connection past `--max-connections`, and sets the others up to be announced by
//! signal, filed under their descriptor number.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use log::{debug, warn};

use super::{sys, Server};
use crate::epoll::conn::Conn;
use crate::epoll::ACCEPTS_PER_TURN;

impl Server {
    /// Accepts the connections waiting in the queue, up to [`ACCEPTS_PER_TURN`]; with the budget
    /// used up, the acceptor stays ready and the next wait ends at once.
    pub(super) fn accept_all(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some((fd, peer)) = self.acceptor.accept() else { return };
            self.register(fd, peer);
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
