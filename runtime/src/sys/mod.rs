//! The poller layer: a thin, safe wrapper over one family of OS calls that waits for many
//! sockets at once.
//!
//! # The contract
//!
//! Every backend implements the [`Poller`] trait; the reactor holds a `Box<dyn Poller>` and
//! knows nothing else about it. A trait rather than a `cfg`-chosen type, because one binary may
//! carry several backends and choose among them at run time (see [`Backend`]); a virtual call
//! costs nothing next to the syscall behind it.
//!
//! The poller knows nothing of wakers, tasks or futures: it moves tokens, not callbacks.
//!
//! # Backends
//!
//! | backend | feature | kind | a wait costs work in proportion to |
//! | --- | --- | --- | --- |
//! | [`uring.rs`](uring) | `uring` | edge-triggered multishot polls in an io_uring | the ready sockets |
//! | [`epoll.rs`](epoll) | `epoll` (default) | edge-triggered, kernel keeps the set | the ready sockets |
//! | [`poll.rs`](poll) | `poll` | level-triggered, set passed per wait | the waiting sockets |
//! | [`select.rs`](select) | `select` | level-triggered, bit sets, fds < 1024 | the highest descriptor number |
//!
//! When several are compiled in, the default is the best: uring, then epoll, then poll, then
//! select. io_uring is often refused (seccomp profiles of containers, the
//! `kernel.io_uring_disabled` sysctl, old kernels), so the `uring` feature brings `epoll` along,
//! and a runtime that was not told a backend falls back to it ([`new_default_poller`]), with
//! one warning naming the cause. A runtime told to use uring fails instead, with that cause.

#[cfg(feature = "epoll")]
mod epoll;
mod notify;
#[cfg(feature = "poll")]
mod poll;
#[cfg(feature = "select")]
mod select;
#[cfg(feature = "uring")]
mod uring;
#[cfg(feature = "uring")]
pub(crate) use uring::{OpCompletion, UringPoller, OP_TAG, REMOVE_TOKEN};
#[cfg(any(feature = "poll", feature = "select"))]
mod watchlist;

mod backend;

pub use backend::{Backend, UnknownBackend};
pub(crate) use notify::Notifier;

use std::fmt::Debug;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

#[cfg(not(target_os = "linux"))]
compile_error!("mini runs on Linux only (its notifier is an eventfd).");

#[cfg(not(any(feature = "uring", feature = "epoll", feature = "poll", feature = "select")))]
compile_error!(
    "mini needs a poller backend: enable one of the features `uring`, `epoll`, `poll`, `select`."
);

/// What every backend provides. All methods are called on the runtime's thread, except that
/// the [`Notifier`] may be used from any thread.
pub(crate) trait Poller: Debug {
    /// The thread-safe handle that interrupts [`wait`](Poller::wait).
    fn notifier(&self) -> &Arc<Notifier>;

    /// Starts watching `fd`, whose events will carry `token`. May refuse a descriptor the
    /// backend cannot hold (select: at or above `FD_SETSIZE`).
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()>;

    /// The directions in which a task now waits on `fd`. A level-triggered backend watches only
    /// these (none: the socket leaves its set). Called only if [`tracks_interest`] is true.
    ///
    /// [`tracks_interest`]: Poller::tracks_interest
    fn set_interest(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;

    /// Whether the backend needs [`set_interest`](Poller::set_interest) at all. An
    /// edge-triggered backend that watches both directions from `add` on does not, and the
    /// reactor then skips the bookkeeping on every wait.
    fn tracks_interest(&self) -> bool {
        true
    }

    /// Stops watching `fd`; called before it is closed.
    fn delete(&self, fd: RawFd) -> io::Result<()>;

    /// The io_uring poller, whose ring the completion driver shares; `None` for the others.
    #[cfg(feature = "uring")]
    fn as_uring(&self) -> Option<&UringPoller> {
        None
    }

    /// Blocks until something is ready, `timeout` passes (`None`: no limit), or the notifier
    /// is used; appends what is ready to `events`. The notifier's wake-up appears as an event
    /// with [`NOTIFY_TOKEN`]. An interrupted wait (`EINTR`) returns `Ok` with no events: a
    /// signal is not an error.
    fn wait(&self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;
}

/// Creates the poller for `backend`, or says that it was not compiled in.
pub(crate) fn new_poller(backend: Backend) -> io::Result<Box<dyn Poller>> {
    match backend {
        #[cfg(feature = "uring")]
        Backend::Uring => Ok(Box::new(uring::UringPoller::new()?)),
        #[cfg(feature = "epoll")]
        Backend::Epoll => Ok(Box::new(epoll::EpollPoller::new()?)),
        #[cfg(feature = "poll")]
        Backend::Poll => Ok(Box::new(poll::PollPoller::new()?)),
        #[cfg(feature = "select")]
        Backend::Select => Ok(Box::new(select::SelectPoller::new()?)),
        #[allow(unreachable_patterns)]
        other => Err(io::Error::new(io::ErrorKind::Unsupported, other.not_compiled_message())),
    }
}

/// Creates the poller of [`Backend::best`]; if that is uring and the kernel refuses it, logs
/// one warning (the first time in the process) naming the cause, and creates an epoll poller.
pub(crate) fn new_default_poller() -> io::Result<(Backend, Box<dyn Poller>)> {
    let best = Backend::best();
    match new_poller(best) {
        #[cfg(feature = "uring")]
        Err(e) if best == Backend::Uring && uring::is_unavailable(&e) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| log::warn!("mini: {e}; falling back to the epoll backend"));
            Ok((Backend::Epoll, new_poller(Backend::Epoll)?))
        }
        res => Ok((best, res?)),
    }
}

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

/// Turns the C convention (-1 and `errno`) into `io::Result`: `check(unsafe { libc::f(..) })`.
/// A function, not a macro around the call, so that every call site writes its own `unsafe`
/// block, with the `// SAFETY:` comment that argues it.
pub(crate) fn check<T: PartialEq + From<i8>>(res: T) -> std::io::Result<T> {
    if res == T::from(-1) {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// Milliseconds for a `timeout` argument, rounded *up* so that a wait never ends before a timer
/// is due (a timer must never fire early). `None` means wait without limit (-1).
#[cfg_attr(not(any(feature = "epoll", feature = "poll")), allow(dead_code))]
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}
