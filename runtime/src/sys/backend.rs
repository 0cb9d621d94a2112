//! [`Backend`]: naming the poller backends, and choosing among those compiled in.

use std::fmt;
use std::str::FromStr;

/// A poller backend: the OS call the reactor waits in.
///
/// Which ones exist in a build is decided by cargo features of `mini` (`epoll`, the default,
/// `uring`, `poll`, `select`); which one a runtime uses is decided when it is built:
/// [`Builder::backend`](crate::Builder::backend), else the `MINI_BACKEND` environment variable,
/// else [`Backend::best`]. Only in the last case may the runtime fall back: from uring to
/// epoll, where the kernel refuses io_uring ([`Runtime::backend`](crate::Runtime::backend) says
/// which it got).
///
/// ```
/// let rt = mini::Runtime::builder().backend(mini::Backend::best()).build()?;
/// assert_eq!(rt.backend(), mini::Backend::best());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring, readiness through multishot polls: waits cost in proportion to the ready
    /// sockets, and adding a socket costs no syscall of its own (Linux 5.13+).
    Uring,
    /// `epoll(7)`, edge-triggered: waits cost in proportion to the ready sockets (Linux).
    Epoll,
    /// `poll(2)`, level-triggered: waits cost in proportion to the waiting sockets.
    Poll,
    /// `select(2)`, level-triggered: waits cost in proportion to the highest descriptor, and
    /// descriptors from `FD_SETSIZE` (1024) up are refused.
    Select,
}

impl Backend {
    /// Every backend, best first.
    pub const ALL: [Backend; 4] = [Backend::Uring, Backend::Epoll, Backend::Poll, Backend::Select];

    /// The lower-case name used by `MINI_BACKEND` and the cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
            Backend::Poll => "poll",
            Backend::Select => "select",
        }
    }

    /// Whether this build contains the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Uring => cfg!(feature = "uring"),
            Backend::Epoll => cfg!(feature = "epoll"),
            Backend::Poll => cfg!(feature = "poll"),
            Backend::Select => cfg!(feature = "select"),
        }
    }

    /// The backends this build contains, best first.
    pub fn compiled() -> Vec<Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The best backend this build contains: uring, else epoll, else poll, else select. (Where
    /// the kernel refuses io_uring, a runtime built without a backend named runs on epoll.)
    pub fn best() -> Backend {
        Backend::compiled()[0]
    }

    pub(crate) fn not_compiled_message(self) -> String {
        let names: Vec<_> = Backend::compiled().iter().map(|b| b.name()).collect();
        format!(
            "the {self} backend is not compiled in (enable mini's `{self}` feature); this build has: {}",
            names.join(", ")
        )
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        Backend::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| UnknownBackend(s.to_owned()))
    }
}

/// The error of parsing a name that is not `uring`, `epoll`, `poll` or `select`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBackend(String);

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown backend {:?} (expected uring, epoll, poll or select)", self.0)
    }
}

impl std::error::Error for UnknownBackend {}
