//! What a server does when `accept` fails: shed connections it has no descriptor for (libuv's
//! spare-descriptor trick), pause on other shortages, go on after a single failed connection.
//!
//! # The problem
//!
//! Out of descriptors (`EMFILE`, or `ENFILE` system-wide), `accept` fails *before* it takes a
//! connection off the queue. The client has finished its handshake and waits; the listener stays
//! readable, so a server that waits for readiness wakes up at once, fails again, and spins; one
//! that pauses and retries leaves the client hanging until a descriptor frees up, which may be
//! never.
//!
//! # The trick
//!
//! Keep one descriptor in reserve (an open `/dev/null`). When accept fails for want of
//! descriptors, close the reserve, accept the waiting connections with the one free slot and
//! close each at once (the client sees its connection closed instead of a hang), then open the
//! reserve again. The listener's queue is then empty, so a readiness-based server sleeps until
//! the next client comes, which gets the same treatment; connections already open are served as
//! usual, and once some close, accepting succeeds again. libuv does this in
//! `uv__emfile_trick` (`src/unix/stream.c`).
//!
//! The other shortages (`ENOBUFS`, `ENOMEM`) have no such remedy, nor has `EMFILE` if the reserve
//! cannot be opened again; then the server leaves its listener alone for [`ACCEPT_PAUSE`], which
//! bounds the retries to ten a second.
//!
//! [`ACCEPT_PAUSE`]: crate::ACCEPT_PAUSE

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use log::{debug, info, warn};

/// What the server should do after [`Shedder::accept_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Accept again at once: only that one connection failed (for example it was reset while
    /// queued), or descriptors turned out to be free.
    Retry,
    /// The waiting connections were closed and the queue was seen empty: wait for the listener
    /// to be ready again (a server that does not wait for readiness may accept at once; the
    /// next failure then says [`Next::Pause`]).
    Shed,
    /// Nothing could be shed (no connection was waiting, the reserve is gone, or memory is
    /// short): leave the listener alone for [`crate::ACCEPT_PAUSE`].
    Pause,
}

/// Where a server keeps its spare descriptor and what it remembers of the current shortage.
#[derive(Debug)]
pub struct Shedder {
    /// An open `/dev/null`, held only to be closed when a descriptor is needed for shedding.
    /// `None` if it could not be opened (then `EMFILE` falls back to pausing).
    reserve: Option<File>,
    /// Connections shed since the shortage began; `Some` from the first `EMFILE`/`ENFILE` until
    /// the next successful accept, so that the shortage is logged once, not per connection.
    shortage: Option<u64>,
}

impl Shedder {
    /// Opens the reserve descriptor. Call it early, while descriptors are plentiful.
    pub fn new() -> Shedder {
        let reserve = open_reserve()
            .map_err(|e| warn!("cannot open a spare descriptor ({e}); out of descriptors, new connections will wait instead of being closed"))
            .ok();
        Shedder { reserve, shortage: None }
    }

    /// Tells the shedder that an accept succeeded: a shortage, if any, is over.
    pub fn accepted(&mut self) {
        if let Some(shed) = self.shortage.take() {
            info!("descriptors are free again: accepting connections ({shed} closed meanwhile)");
        }
    }

    /// Handles the error of an `accept` on `listener` (blocking or not) and says what next.
    pub fn accept_failed(&mut self, e: &io::Error, listener: BorrowedFd<'_>) -> Next {
        match shortage(e) {
            Some(Shortage::Descriptors) => {}
            Some(Shortage::Memory) => {
                warn!("accept failed: {e}; pausing accepts for {:?}", crate::ACCEPT_PAUSE);
                return Next::Pause;
            }
            None => {
                warn!("accept failed: {e}");
                return Next::Retry;
            }
        }
        if self.shortage.is_none() {
            warn!("accept failed: {e}; closing new connections at once until descriptors are free");
            self.shortage = Some(0);
        }
        // 1. Free the reserve's slot. Without a reserve, try to make one: if that works,
        //    descriptors were freed meanwhile, and accepting again may simply succeed.
        let Some(reserve) = self.reserve.take() else {
            return match open_reserve() {
                Ok(file) => {
                    self.reserve = Some(file);
                    Next::Retry
                }
                Err(_) => Next::Pause,
            };
        };
        drop(reserve);
        // 2. Accept and close every waiting connection, with the one free slot.
        let closed = close_waiting(listener);
        // 3. Take the slot back for the next time.
        match open_reserve() {
            Ok(file) => self.reserve = Some(file),
            Err(e) => warn!("cannot reopen the spare descriptor ({e}); pausing accepts instead"),
        }
        if let Some(shed) = &mut self.shortage {
            *shed += closed;
        }
        if closed > 0 {
            debug!("out of descriptors: closed {closed} new connection(s) at once");
        }
        if closed > 0 && self.reserve.is_some() {
            Next::Shed
        } else {
            Next::Pause
        }
    }
}

/// What an `accept` error says the process or the system ran out of.
enum Shortage {
    /// `EMFILE`, `ENFILE`: shedding can help.
    Descriptors,
    /// `ENOBUFS`, `ENOMEM`: only time can.
    Memory,
}

fn shortage(e: &io::Error) -> Option<Shortage> {
    match e.raw_os_error()? {
        libc::EMFILE | libc::ENFILE => Some(Shortage::Descriptors),
        libc::ENOBUFS | libc::ENOMEM => Some(Shortage::Memory),
        _ => None,
    }
}

/// Whether an `accept` error means the process or system ran out of something (descriptors,
/// buffers, memory) rather than that one connection failed: then pause for
/// [`crate::ACCEPT_PAUSE`]. For a server that does not shed.
pub fn out_of_resources(e: &io::Error) -> bool {
    shortage(e).is_some()
}

/// Most connections one shedding closes: the accept queue's size, so the loop ends even if the
/// clients arrive as fast as they are closed.
const MAX_SHED: u64 = crate::listen::BACKLOG as u64;

/// Accepts and closes the connections waiting on `listener` until its queue is empty; returns
/// how many. Each accept is preceded by a zero-timeout `poll`, so that a blocking listener (the
/// threaded server's) never blocks here.
fn close_waiting(listener: BorrowedFd<'_>) -> u64 {
    let mut closed = 0;
    while closed < MAX_SHED && has_waiting(listener) {
        // SAFETY: accept4 with null address pointers writes no address; the listener is borrowed
        // from its owner, so open.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                ptr::null_mut(),
                ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd == -1 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                _ => break, // EAGAIN: the queue is empty; EMFILE/ENFILE: the slot was taken
            }
        }
        // SAFETY: accept4 just returned this descriptor, and nothing else owns it. Dropping the
        // OwnedFd closes it: the client sees the connection end.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        closed += 1;
    }
    closed
}

/// Whether a connection waits in `listener`'s queue right now.
fn has_waiting(listener: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: `pfd` is one live pollfd and the count says 1; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// The spare descriptor: `/dev/null`, read-only, close-on-exec (std opens files with
/// `O_CLOEXEC`).
fn open_reserve() -> io::Result<File> {
    File::open("/dev/null")
}
