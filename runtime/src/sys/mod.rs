//! The poller layer: a thin, safe wrapper over one family of OS calls that waits for many
//! sockets at once.
//!
//! # The contract every backend keeps
//!
//! Each backend file defines a `Poller` with these methods, and nothing else is assumed about it:
//!
//! - `Poller::new() -> io::Result<Poller>`
//! - `add(&self, fd, token) -> io::Result<()>`: start watching `fd`; its events carry `token`.
//! - `set_interest(&self, fd, token, Interest) -> io::Result<()>`: which directions have a task
//!   waiting. A level-triggered backend watches only those; an edge-triggered one may ignore it.
//! - `delete(&self, fd) -> io::Result<()>`: stop watching `fd` (called before it is closed).
//! - `wait(&self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>`: block
//!   until something is ready, the timeout passes, or [`Notifier::notify`] is called from any
//!   thread; the wake-up from `notify` is reported as an event with [`NOTIFY_TOKEN`]. An
//!   interrupted wait (`EINTR`) returns `Ok` with no events: a signal is not an error.
//! - `notifier(&self) -> &Arc<Notifier>`: the thread-safe handle that interrupts `wait`.
//!
//! The poller knows nothing of wakers, tasks or futures: it moves tokens, not callbacks.

mod notify;

#[cfg(all(target_os = "linux", feature = "epoll"))]
mod epoll;
#[cfg(all(target_os = "linux", feature = "epoll"))]
pub(crate) use epoll::Poller;

#[cfg(not(all(target_os = "linux", feature = "epoll")))]
compile_error!("mini needs a poller backend: enable the `epoll` feature (Linux).");

pub(crate) use notify::Notifier;

/// The token reserved for the notifier's wake-up; no socket is ever given it.
pub(crate) const NOTIFY_TOKEN: u64 = u64::MAX;

/// One readiness report from the poller: which registration, and which directions.
///
/// An error or hang-up on a socket is reported as both readable and writable, so that whichever
/// task is waiting runs, tries its syscall, and receives the real error from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) token: u64,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer will send no more (hang-up, error or end of stream). Unlike the others this
    /// never stops being true, and an edge-triggered backend reports it only once.
    pub(crate) read_closed: bool,
}

/// The directions in which a task is waiting on a socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Interest {
    pub(crate) read: bool,
    pub(crate) write: bool,
}

/// Turns the C convention (-1 and `errno`) into `io::Result`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the OS call's contract, which
        // the site's own `// SAFETY:` comment argues.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// Milliseconds for a `timeout` argument, rounded *up* so that a wait never ends before a timer
/// is due (a timer must never fire early). `None` means wait without limit (-1).
pub(crate) fn timeout_ms(timeout: Option<std::time::Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}
