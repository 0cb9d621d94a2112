//! The mini server on the completion path: what `--runtime mini` runs when the runtime's
//! backend is uring (`mini::uring` sockets), with the same accept loop, limits and logs as
//! [`crate::mini`], which runs it on the readiness path everywhere else (including where the
//! kernel refuses io_uring and the runtime fell back to epoll: the choice is made at run time,
//! from `Runtime::backend`, so one binary serves on both).
//!
//! The same name rather than a `--runtime mini-uring`: it is the same server in the same
//! runtime; only how the runtime moves the bytes differs, and `--backend` already names that.
//!
//! The echo task reads like the readiness one, with the completion model's idiom: it is handed
//! a chunk of received bytes (a buffer of the runtime's ring), transforms it in place and sends
//! that same buffer back; the buffer returns to the ring when the send has completed and the
//! chunk is dropped. An idle connection holds no buffer. Flow control is the runtime's: while a
//! send waits for a slow reader, the stream stops receiving after a few chunks.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::mini::{within, Connection, Gate};
use crate::options::ConnOptions;
use crate::transform;

/// Serves echo on `listener` on `runtime`, whose backend is uring, until the process exits.
pub fn serve(
    listener: std::net::TcpListener,
    runtime: ::mini::Runtime,
    upper: bool,
    opts: ConnOptions,
) -> io::Result<Infallible> {
    let mut gate = Gate::new(opts);
    runtime.block_on(async move {
        let listener = ::mini::uring::TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Some(ended) = gate.admit(stream.as_fd(), peer) else { continue };
                    let echo = handle(stream, upper, ended.idle_timeout);
                    ::mini::spawn(Connection { echo, ended });
                }
                // As in `crate::mini`: out of descriptors, shed the waiting clients and pause.
                Err(e) => gate.accept_failed(&e, listener.as_fd()).await,
            }
        }
    })
}

/// Echoes one connection until the peer closes its sending side; each wait for data and each
/// send must end within the idle timeout, if there is one.
#[expect(clippy::manual_async_fn, reason = "an `async fn` keeps its arguments twice")]
fn handle(
    mut stream: ::mini::uring::TcpStream,
    upper: bool,
    idle_timeout: Option<Duration>,
) -> impl Future<Output = io::Result<()>> {
    async move {
        while let Some(mut chunk) = within(idle_timeout, stream.recv()).await? {
            transform::apply(&mut chunk, upper);
            within(idle_timeout, async { stream.write_all(chunk).await.0 }).await?;
        }
        Ok(())
    }
}
