//! The per-connection options every server applies: `--max-connections`, `--idle-timeout` and
//! `--send-buffer`.
//!
//! Each server enforces them in its own idiom (a counter and a check at accept; a read and write
//! timeout, a timer around each read and write, or a last-activity time and the wait's timeout),
//! so this file holds only what they share: the values, the socket option and the log lines.
//! (`--idle-timeout` is parsed by `echo_bench::parse_secs`, which `echo bench` shares.)

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::info;

use crate::syscall::check;

/// The options, all off by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnOptions {
    /// Connections served at once; a client past this is accepted and closed at once.
    pub max_connections: Option<usize>,
    /// A connection that neither sends nor receives a byte for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// `SO_SNDBUF` for each accepted connection, in bytes: a testing knob that makes the
    /// kernel take replies in small pieces, so that every write path meets short writes.
    pub send_buffer: Option<usize>,
}

impl ConnOptions {
    /// Whether a server that already serves `open` connections must refuse another. If so, logs
    /// that it closes `peer`: the caller then drops the socket.
    pub fn refuse(&self, open: usize, peer: SocketAddr) -> bool {
        let full = self.max_connections.is_some_and(|max| open >= max);
        if full {
            info!("closing {peer} at once: {open} connections open, the --max-connections limit");
        }
        full
    }

    /// Sets the socket options on a freshly accepted connection.
    pub fn apply(&self, socket: BorrowedFd<'_>) -> io::Result<()> {
        if let Some(bytes) = self.send_buffer {
            let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
            // SAFETY: the option value points to a live c_int and the length is its size; the
            // socket is borrowed from its owner, so open.
            check(unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&bytes as *const libc::c_int).cast(),
                    mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            })?;
        }
        Ok(())
    }
}

/// Logs that `peer` is closed for being idle (`--idle-timeout`).
pub fn log_idle(peer: SocketAddr, timeout: Duration) {
    info!("closing {peer}: idle for {timeout:?} (--idle-timeout)");
}

/// Whether an I/O error is a timeout: a blocking socket's `SO_RCVTIMEO`/`SO_SNDTIMEO` expiring
/// (`EAGAIN`) or a `mini::time::timeout` (`TimedOut`).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The number of open connections of a server that serves them on several threads or tasks;
/// each connection holds an [`Open`] that counts it while it lives.
#[derive(Debug, Clone, Default)]
pub struct OpenCount(Arc<AtomicUsize>);

impl OpenCount {
    /// How many connections are open now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one more connection until the returned guard is dropped.
    pub fn enter(&self) -> Open {
        self.0.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(&self.0))
    }
}

/// One open connection in an [`OpenCount`]; dropping it (also when a task or thread unwinds)
/// counts the connection out.
#[derive(Debug)]
pub struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
