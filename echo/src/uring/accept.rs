//! How the io_uring server takes connections in: one multishot accept posts a completion per
//! connection; a failed accept ends it, and it is posted again at once or after
//! [`crate::ACCEPT_PAUSE`], as the [`Shedder`](crate::shed::Shedder) says.

use std::cmp::Reverse;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use io_uring::{opcode, types};
use log::{debug, warn};

use super::conn::Conn;
use super::ring::{Completion, Op};
use super::Server;
use crate::shed::Next;

impl Server {
    /// Posts the multishot accept unless it is in flight or paused.
    pub(super) fn arm_accept(&mut self) -> io::Result<()> {
        if self.accepting {
            return Ok(());
        }
        if let Some(until) = self.accept_paused_until {
            if Instant::now() < until {
                return Ok(());
            }
            self.accept_paused_until = None;
        }
        let accept = opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(Op::Accept.user_data());
        // SAFETY: a multishot accept writes no address, so it names no buffer. The listener is
        // a field of the server, which owns the ring too: the listener is closed only when the
        // server is dropped, and the ring with it (closing the ring cancels the accept).
        unsafe { self.ring.push(&accept) }?;
        self.accepting = true;
        Ok(())
    }

    /// Takes a completion of the accept: a new connection, or an error.
    pub(super) fn on_accept(&mut self, c: Completion) -> io::Result<()> {
        if !c.more() {
            self.accepting = false; // an error ends a multishot accept, and so may the kernel
        }
        match c.error() {
            None => {
                // SAFETY: the kernel just installed this descriptor for us, and nothing else
                // owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(c.result) };
                self.shedder.accepted();
                self.register(fd)?;
            }
            Some(e) => match self.shedder.accept_failed(&e, self.listener.as_fd()) {
                // One connection failed; or out of descriptors, the waiting clients were closed
                // and the next client brings the next completion: accept again at once.
                Next::Retry | Next::Shed => {}
                Next::Pause => {
                    self.accept_paused_until = Some(Instant::now() + crate::ACCEPT_PAUSE)
                }
            },
        }
        self.arm_accept()
    }

    /// Files a new connection and posts its first receive; past `--max-connections` it is
    /// closed at once instead.
    fn register(&mut self, fd: OwnedFd) -> io::Result<()> {
        let stream = TcpStream::from(fd);
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => {
                debug!("closing a connection that is already gone: {e}");
                return Ok(());
            }
        };
        if self.opts.refuse(self.conns.len(), peer) {
            return Ok(()); // dropping `stream` closes it
        }
        if let Err(e) = self.opts.apply(stream.as_fd()) {
            warn!("cannot set up {peer}, closing it: {e}");
            return Ok(());
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let conn = Conn::new(stream.into(), peer, serial, self.opts.idle_timeout.is_some());
        let at = conn.last_active;
        let key = self.conns.insert(conn);
        if let (Some(timeout), Some(at)) = (self.opts.idle_timeout, at) {
            self.idle.push(Reverse((at + timeout, serial, key.slot)));
        }
        debug!("accepted {peer}");
        self.settle(key)
    }
}
