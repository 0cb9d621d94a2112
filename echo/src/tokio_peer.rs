//! The `mini` server's peers on tokio, the runtime that benchmarks compare against (only with the
//! cargo feature `tokio`).
//!
//! The same server as `mini.rs` (one task per connection, the same accept loop and options),
//! but not the same tasks: these are written in the idiom tokio's own examples and most real
//! servers use, where each task owns a 16 KiB buffer and reads into it, transforms, `write_all`,
//! repeat. `mini.rs`'s tasks hold no buffer while they wait. Nothing is tuned, because the point
//! is to measure what people actually run. Two flavours of runtime:
//!
//! - `--runtime tokio-current`: a current-thread runtime. Like `mini`, every task runs on the
//!   thread that called `block_on`, so the two compare runtime against runtime.
//! - `--runtime tokio-multi`: the default multi-thread runtime, one worker per core, tasks
//!   stolen between workers. It can use every core, at the price of synchronising between them.
//!
//! # What the threads do while waiting
//!
//! With nothing to run, the runtime sleeps in `epoll_wait` (through mio) until a socket some task
//! waits on becomes ready, then wakes that task: no CPU while idle. In the multi-thread flavour one
//! worker at a time waits on the poller and the others park on a condition variable.
//!
//! # Cost and limits
//!
//! A heap-allocated task and its 16 KiB buffer per connection, held while idle (unlike `mini`,
//! whose idle task holds none); no `FD_SETSIZE` cap. Flow control is that of `write_all`: a task waiting to write does not read.
//!
//! # Without the feature
//!
//! The `Model` variants that name these servers exist only with the feature, so a default build
//! neither lists `tokio-current` and `tokio-multi` in `--help` nor accepts them (clap rejects them
//! as it does any unknown runtime), and does not compile tokio at all.

use std::convert::Infallible;
use std::io;

use log::{debug, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;

use crate::transform;
use crate::BUF_SIZE;

/// Which tokio scheduler runs the tasks.
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    /// Every task on the calling thread (`Builder::new_current_thread`): `tokio-current`.
    Current,
    /// A worker thread per core (`Builder::new_multi_thread`): `tokio-multi`.
    Multi,
}

/// Serves echo on `listener` until the process exits, on a tokio runtime of the given flavour.
pub fn serve(
    listener: std::net::TcpListener,
    upper: bool,
    flavor: Flavor,
) -> io::Result<Infallible> {
    let runtime = match flavor {
        Flavor::Current => Builder::new_current_thread(),
        Flavor::Multi => Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    // tokio expects a non-blocking socket from std.
    listener.set_nonblocking(true)?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    debug!("accepted {peer}");
                    tokio::spawn(async move {
                        match handle(stream, upper).await {
                            Ok(()) => debug!("closed {peer}"),
                            Err(e) => debug!("closing {peer} after an error: {e}"),
                        }
                    });
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    if crate::out_of_resources(&e) {
                        tokio::time::sleep(crate::ACCEPT_PAUSE).await;
                    }
                }
            }
        }
    })
}

/// Echoes one connection until the peer closes its sending side. Dropping `stream` closes it.
async fn handle(mut stream: TcpStream, upper: bool) -> io::Result<()> {
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
