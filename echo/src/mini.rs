//! Async model: the server on the `mini` runtime, one task per connection on one thread.
//!
//! The code has the shape of `threaded.rs`, an accept loop and a straight-line handler (read,
//! transform, write everything, repeat), but each connection is a *task* rather than a thread: a
//! future, that is a state machine holding the handler's local variables, polled by the runtime.
//! When a read or write would block, the socket's future returns `Pending` after leaving a waker
//! with the runtime's reactor, and the thread moves on to other tasks. The bookkeeping that
//! `spin.rs` and `select.rs` do by hand (which connection waits for what, where its pending bytes
//! are) is done by the compiler-generated state machine and the runtime.
//!
//! # What the thread does while waiting
//!
//! When no task can run, the runtime sleeps in its poller (`epoll_wait` with the default backend)
//! until a socket a task waits on becomes ready, then wakes exactly that task. No CPU is used
//! while idle.
//!
//! # Cost and limits
//!
//! A connection costs one heap-allocated task and its 16 KiB buffer, not a thread, so tens of
//! thousands are cheap; epoll reports only the ready sockets, so a turn costs in proportion to the
//! work done, and there is no `FD_SETSIZE` cap (only the open-files limit). Everything runs on one
//! thread, so this uses one core at most, and a task that computes for long without reaching an
//! `.await` holds up every other connection. Flow control is as in the threaded model: a task
//! waiting in `write_all` does not read.
//!
//! Inside this module `mini` would name the runtime crate anyway; the paths say `::mini` so that
//! nobody has to remember that this file is itself called `mini`.

use std::convert::Infallible;
use std::io;

use log::{debug, info, warn};

use crate::transform;

/// Bytes read at a time. Kept on the heap so that each task's future stays small.
const BUF_SIZE: usize = 16 * 1024;

/// Serves echo on `listener` until the process exits, on the given poller backend (else the
/// runtime's default: `MINI_BACKEND`, else the best compiled in).
pub fn serve(
    listener: std::net::TcpListener,
    upper: bool,
    backend: Option<::mini::Backend>,
) -> io::Result<Infallible> {
    let mut builder = ::mini::Runtime::builder();
    if let Some(backend) = backend {
        builder = builder.backend(backend);
    }
    let runtime = builder.build()?;
    info!("mini runtime on the {} backend", runtime.backend());
    runtime.block_on(async move {
        let listener = ::mini::net::TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    debug!("accepted {peer}");
                    // Dropping the JoinHandle detaches the task: it runs on by itself.
                    ::mini::spawn(async move {
                        match handle(stream, upper).await {
                            Ok(()) => debug!("closed {peer}"),
                            Err(e) => debug!("closing {peer} after an error: {e}"),
                        }
                    });
                }
                Err(e) => {
                    // E.g. the select backend refusing a descriptor >= FD_SETSIZE: that one
                    // connection is closed, the others are not disturbed.
                    warn!("accept failed: {e}");
                    if crate::out_of_resources(&e) {
                        // Only this task waits; the connections keep being served meanwhile.
                        ::mini::time::sleep(crate::ACCEPT_PAUSE).await;
                    }
                }
            }
        }
    })
}

/// Echoes one connection until the peer closes its sending side. Dropping `stream` closes it.
async fn handle(mut stream: ::mini::net::TcpStream, upper: bool) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        transform::apply(&mut buf[..n], upper);
        stream.write_all(&buf[..n]).await?;
    }
}
