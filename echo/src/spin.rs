//! Non-blocking model, busy-polling: one thread asks every socket, over and over.
//!
//! Every socket is non-blocking, so a read or an accept with nothing to give returns `WouldBlock`
//! at once instead of putting the thread to sleep. One thread can then serve every connection: it
//! walks the listener and each connection in turn, doing whatever can be done right now, and starts
//! over. The per-connection state (a fixed buffer and its pending output) lives in [`Conn`].
//!
//! # What the thread does while waiting
//!
//! It never waits: there is no sleep, no `select`, no `epoll` here. With nothing to do it keeps
//! asking sockets that have nothing to say, thousands of times a second. **This server burns a
//! whole CPU core even when no client is connected.** That is the lesson of this file: non-blocking
//! calls alone are not enough, the thread also needs a way to sleep until *some* socket is ready.
//! `select.rs` adds that.
//!
//! # Cost and limits
//!
//! One thread and one 16 KiB buffer per connection, so many connections are cheap in memory. But
//! one core is always at 100%, and each round costs a system call per connection, so with many
//! idle connections the round gets long and latency grows with the number of connections.
//!
//! # Limits and failures
//!
//! Out of descriptors, every accept fails at once, so after shedding the waiting clients
//! ([`Shedder`]) the loop leaves the listener alone for [`crate::ACCEPT_PAUSE`].
//! `--max-connections` is checked against the table at accept; `--idle-timeout` against each
//! connection's last activity on every round.

use std::convert::Infallible;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::time::Instant;

use log::{debug, warn};

use crate::conn::{would_wait, Conn, Status};
use crate::options::ConnOptions;
use crate::shed::{Next, Shedder};

/// Serves echo on `listener` until the process exits.
pub fn serve(listener: TcpListener, upper: bool, opts: ConnOptions) -> io::Result<Infallible> {
    listener.set_nonblocking(true)?;
    let mut shedder = Shedder::new();
    let mut conns: Vec<Conn> = Vec::new();
    // After an accept error we leave the listener alone for a moment (see `ACCEPT_PAUSE`).
    let mut accept_again_at = Instant::now();
    loop {
        // 1. Ask the listener whether someone new is there.
        if Instant::now() >= accept_again_at {
            match listener.accept() {
                Ok((stream, peer)) => {
                    shedder.accepted();
                    if opts.refuse(conns.len(), peer) {
                        // Dropping `stream` closes it.
                    } else if let Err(e) = opts.apply(stream.as_fd()) {
                        warn!("cannot set up {peer}, closing it: {e}");
                    } else {
                        match Conn::new(stream, peer) {
                            Ok(conn) => {
                                debug!("accepted {peer}");
                                conns.push(conn);
                            }
                            Err(e) => warn!("cannot set up {peer}, closing it: {e}"),
                        }
                    }
                }
                Err(e) if would_wait(&e) => {}
                // Out of descriptors, every accept fails at once whether or not a client waits:
                // after shedding the waiting ones, leave the listener alone for a while.
                Err(e) => {
                    if shedder.accept_failed(&e, listener.as_fd()) != Next::Retry {
                        accept_again_at = Instant::now() + crate::ACCEPT_PAUSE;
                    }
                }
            }
        }

        // 2. Ask every connection to make what progress it can; close the idle ones. Dropping a
        //    `Conn` closes it.
        let idle = opts.idle_timeout.map(|timeout| (Instant::now(), timeout));
        conns.retain_mut(|conn| {
            let result = step(conn, upper);
            conn.stays(result, idle)
        });
        // 3. Start over at once: there is nothing to wait on.
    }
}

/// Finishes the pending reply if possible, and only then reads more.
fn step(conn: &mut Conn, upper: bool) -> io::Result<Status> {
    if conn.has_pending() {
        conn.write()?;
    }
    if conn.has_pending() {
        // The client is not reading fast enough; do not read more until it does.
        return Ok(Status::Open);
    }
    conn.read(upper)
}
