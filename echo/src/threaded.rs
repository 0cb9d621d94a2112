//! Blocking model: one OS thread per connection.
//!
//! The oldest and plainest way. Every call blocks: `accept` until a client arrives, `read` until
//! bytes arrive, `write_all` until the kernel has taken the whole reply. Since a blocked thread can
//! serve nobody else, the main thread only accepts, and each connection gets a thread of its own
//! that runs a straight-line loop: read, transform, write, until the client closes its side.
//!
//! # What the threads do while waiting
//!
//! They sleep in the kernel. Each one blocked in `read` or `write` costs no CPU; the kernel wakes
//! it when its socket is ready. Flow control comes for free: a thread stuck in `write_all` on a
//! client that does not read stops reading from that client, so it holds one buffer at most.
//!
//! # Cost and limits
//!
//! Each connection costs a thread: a stack (2 MiB of address space by default, of which only the
//! touched pages use memory), a kernel task, and a context switch every time it wakes. That is fine
//! for hundreds of connections and strains at tens of thousands, where the memory, the scheduler
//! and the thread limits (`ulimit -u`, `kernel.threads-max`) give out. Spawning can fail; then
//! that one connection is closed and the server goes on.
//!
//! # Limits and failures
//!
//! Out of descriptors, `accept` fails at once (before looking at the queue), so the loop sheds
//! the waiting clients ([`Shedder`]) and sleeps [`crate::ACCEPT_PAUSE`] between tries.
//! `--max-connections` is a shared counter checked at accept; `--idle-timeout` is the socket's
//! read and write timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`), so a thread blocked that long without
//! moving a byte gives up.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::thread;

use log::{debug, warn};

use crate::options::{self, ConnOptions, OpenCount};
use crate::shed::{Next, Shedder};
use crate::transform;
use crate::BUF_SIZE;

/// Serves echo on `listener` until the process exits.
pub fn serve(listener: TcpListener, upper: bool, opts: ConnOptions) -> io::Result<Infallible> {
    let mut shedder = Shedder::new();
    let open = OpenCount::default();
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => {
                shedder.accepted();
                accepted
            }
            Err(e) => {
                // Out of descriptors, accept fails at once whether or not a client waits, so
                // anything but a single failed connection pauses this loop.
                if shedder.accept_failed(&e, listener.as_fd()) != Next::Retry {
                    // Blocking is this model's way to wait, including for the pause.
                    thread::sleep(crate::ACCEPT_PAUSE);
                }
                continue;
            }
        };
        if opts.refuse(open.get(), peer) {
            continue; // dropping `stream` closes it
        }
        if let Err(e) = set_up(&stream, &opts) {
            warn!("cannot set up {peer}, closing it: {e}");
            continue;
        }
        debug!("accepted {peer}");
        let counted = open.enter();
        let idle_timeout = opts.idle_timeout;
        let spawned = thread::Builder::new().name(format!("conn {peer}")).spawn(move || {
            let _counted = counted;
            match handle(stream, upper) {
                Ok(()) => debug!("closed {peer}"),
                Err(e) if options::is_timeout(&e) => match idle_timeout {
                    Some(timeout) => options::log_idle(peer, timeout),
                    None => debug!("closing {peer} after an error: {e}"),
                },
                Err(e) => debug!("closing {peer} after an error: {e}"),
            }
        });
        // On failure the closure, and the stream inside it, is dropped: the socket is closed.
        if let Err(e) = spawned {
            warn!("cannot start a thread for {peer}, closing it: {e}");
        }
    }
}

/// Applies the options to a new connection. The idle timeout becomes the socket's read and
/// write timeouts: a `read` or `write` that waits that long without moving a byte fails with
/// `EAGAIN`, and the connection is closed.
fn set_up(stream: &TcpStream, opts: &ConnOptions) -> io::Result<()> {
    opts.apply(stream.as_fd())?;
    stream.set_read_timeout(opts.idle_timeout)?;
    stream.set_write_timeout(opts.idle_timeout)
}

/// Echoes one connection until the peer closes its sending side. Dropping `stream` closes it.
fn handle(mut stream: TcpStream, upper: bool) -> io::Result<()> {
    let mut buf = [0u8; BUF_SIZE]; // on the connection thread's stack
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        transform::apply(&mut buf[..n], upper);
        // std's write is send(2) with MSG_NOSIGNAL: a reset peer gives EPIPE, not SIGPIPE.
        stream.write_all(&buf[..n])?;
    }
}
