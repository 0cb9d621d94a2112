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

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use log::{debug, warn};

use crate::transform;

/// Bytes read at a time. It lives on the connection thread's stack.
const BUF_SIZE: usize = 16 * 1024;

/// Serves echo on `listener` until the process exits.
pub fn serve(listener: TcpListener, upper: bool) -> io::Result<Infallible> {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("accept failed: {e}");
                if crate::out_of_resources(&e) {
                    // Blocking is this model's way to wait, including for the pause.
                    thread::sleep(crate::ACCEPT_PAUSE);
                }
                continue;
            }
        };
        debug!("accepted {peer}");
        let spawned =
            thread::Builder::new().name(format!("conn {peer}")).spawn(move || {
                match handle(stream, upper) {
                    Ok(()) => debug!("closed {peer}"),
                    Err(e) => debug!("closing {peer} after an error: {e}"),
                }
            });
        // On failure the closure, and the stream inside it, is dropped: the socket is closed.
        if let Err(e) = spawned {
            warn!("cannot start a thread for {peer}, closing it: {e}");
        }
    }
}

/// Echoes one connection until the peer closes its sending side. Dropping `stream` closes it.
fn handle(mut stream: TcpStream, upper: bool) -> io::Result<()> {
    let mut buf = [0u8; BUF_SIZE];
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
