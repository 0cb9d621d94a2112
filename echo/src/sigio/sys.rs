//! The system calls of the signal-driven server: blocking its two signals in the serving
//! thread, taking them synchronously (`signalfd`, `sigtimedwait`), and asking the kernel to
//! signal a socket's readiness (`fcntl`: `F_SETSIG`, `F_SETOWN_EX`, `O_ASYNC`).
//!
//! The socket calls themselves (`accept4`, `recv`, `send`, `writev`) are the epoll server's
//! ([`crate::epoll::sys`]); so is [`check`].

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

use crate::syscall::check;

/// `fcntl` commands from `<asm-generic/fcntl.h>`, which the `libc` crate does not export for
/// glibc targets. (Alpha, MIPS, PA-RISC and SPARC number them differently.)
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
/// `F_SETOWN_EX` owner kind: one thread, not the whole process or a process group.
const F_OWNER_TID: libc::c_int = 0;

/// `struct f_owner_ex` of `fcntl(2)`.
#[repr(C)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// The real-time signal that announces a socket's readiness: the first one glibc leaves free.
pub(super) fn io_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

/// One signal taken from the thread's queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Signal {
    /// [`io_signal`], or `SIGIO` when the real-time queue overflowed.
    pub(super) signo: libc::c_int,
    /// The socket it names (`si_fd`); meaningless for `SIGIO`.
    pub(super) fd: RawFd,
    /// What became possible (`si_band`): `POLLIN`, `POLLOUT`, `POLLERR`, `POLLHUP` bits, which
    /// have the values of their `EPOLL*` namesakes.
    pub(super) band: u32,
}

/// The serving thread's two signals, blocked, and the `signalfd` that reads them.
pub(super) struct SignalQueue {
    /// Non-blocking: a read takes what is queued, up to [`BATCH`] signals, and never sleeps.
    fd: OwnedFd,
    /// The two signals: [`io_signal`] and `SIGIO`.
    mask: libc::sigset_t,
    /// Where a read lands.
    batch: Box<[libc::signalfd_siginfo]>,
}

/// Signals one `signalfd` read takes at most.
const BATCH: usize = 64;

impl SignalQueue {
    /// Blocks [`io_signal`] and `SIGIO` in the calling thread and opens a `signalfd` for them.
    ///
    /// Call it before any socket gets `O_ASYNC`: the default action of both signals is to end
    /// the process, and blocked they wait in the queue for [`SignalQueue::take`] instead.
    pub(super) fn block() -> io::Result<SignalQueue> {
        // SAFETY: sigset_t is plain data; all-zero bytes are a valid value, which sigemptyset
        // then makes the empty set.
        let mut mask: libc::sigset_t = unsafe { mem::zeroed() };
        // SAFETY: `mask` is a live sigset_t; both signal numbers are valid, so neither call fails.
        unsafe {
            libc::sigemptyset(&mut mask);
            libc::sigaddset(&mut mask, io_signal());
            libc::sigaddset(&mut mask, libc::SIGIO);
        }
        // SAFETY: `mask` is initialised and only read; the old mask is not asked for (null).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc)); // pthread calls return the error
        }
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: -1 asks for a new descriptor; `mask` is initialised and only read.
        let fd = check(unsafe { libc::signalfd(-1, &mask, flags) })?;
        // SAFETY: signalfd just returned this descriptor, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: signalfd_siginfo is plain data, for which all-zero bytes are a valid value.
        let empty: libc::signalfd_siginfo = unsafe { mem::zeroed() };
        Ok(SignalQueue { fd, mask, batch: vec![empty; BATCH].into_boxed_slice() })
    }

    /// Takes the signals queued for this thread, up to [`BATCH`], without waiting: appends them
    /// to `out` and returns how many (0 if none).
    pub(super) fn take(&mut self, out: &mut Vec<Signal>) -> io::Result<usize> {
        let size = mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: the pointer and length describe `batch`, a live buffer of BATCH records that
        // the kernel fills with whole records only. The descriptor is owned by `self`.
        let n = unsafe {
            libc::read(self.fd.as_raw_fd(), self.batch.as_mut_ptr().cast(), BATCH * size)
        };
        let n = match usize::try_from(n) {
            Ok(bytes) => bytes / size,
            Err(_) => match io::Error::last_os_error() {
                e if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    0
                }
                e => return Err(e),
            },
        };
        out.extend(self.batch[..n].iter().map(|s| Signal {
            signo: s.ssi_signo as libc::c_int, // a signal number, small
            fd: s.ssi_fd,
            band: s.ssi_band,
        }));
        Ok(n)
    }

    /// Sleeps until one of the two signals is queued, or `timeout` passes (`None`: without
    /// limit); takes that one signal. `None` after the timeout or another signal's handler.
    ///
    /// A `signalfd` read cannot wait with a timeout (only a multiplexer around it could), so the
    /// thread sleeps here; the signals that queue up meanwhile are taken by the next
    /// [`SignalQueue::take`], many per call.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> io::Result<Option<Signal>> {
        let ts = timeout.map(|t| libc::timespec {
            // Rounded up to the next millisecond by the caller; a deadline fits time_t.
            tv_sec: t.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        let ts_ptr = ts.as_ref().map_or(ptr::null(), |t| t as *const libc::timespec);
        let mut info = SigInfo { raw: zeroed_siginfo() };
        // SAFETY: `mask` is initialised and only read; `info` is a live siginfo_t the kernel
        // writes; the timeout is null or points to a live timespec.
        let signo = unsafe { libc::sigtimedwait(&self.mask, &mut info.raw, ts_ptr) };
        if signo == -1 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(None), // the timeout, or a handler ran
                _ => Err(e),
            };
        }
        // SAFETY: both members are plain integers over the same bytes, so reading either is
        // defined; for a signal raised by I/O readiness the kernel filled the `_sigpoll` member,
        // which `poll` spells out (for `SIGIO` its fields are zero and unused).
        let poll = unsafe { info.poll };
        Ok(Some(Signal { signo, fd: poll.fd, band: poll.band as u32 }))
    }

    /// Throws away the signals queued, up to [`MAX_DRAIN`]: after an overflow they name sockets
    /// that a scan of all of them serves anyway, and taking them makes room in the queue for new
    /// ones. Bounded, so that clients sending without pause cannot keep it going; any left are
    /// taken as usual, and find their sockets drained. Returns how many.
    pub(super) fn drain(&mut self) -> io::Result<usize> {
        let mut thrown = Vec::with_capacity(BATCH);
        let mut total = 0;
        while total < MAX_DRAIN {
            thrown.clear();
            match self.take(&mut thrown)? {
                0 => break,
                n => total += n,
            }
        }
        Ok(total)
    }
}

/// Signals one [`SignalQueue::drain`] throws away at most.
const MAX_DRAIN: usize = 64 * BATCH;

/// A `siginfo_t` as `sigtimedwait` fills it, readable as its `_sigpoll` member, which the
/// `libc` crate does not expose.
#[repr(C)]
union SigInfo {
    raw: libc::siginfo_t,
    poll: PollInfo,
}

/// The head of a `siginfo_t` for a `SIGIO`-style signal. `repr(C)` alignment reproduces the
/// kernel's layout: three `int`s, then `si_band` (a `long`) at the next `long` boundary (byte
/// 16 on 64-bit targets, 12 on 32-bit ones), then `si_fd`.
#[repr(C)]
#[derive(Clone, Copy)]
struct PollInfo {
    _signo: libc::c_int,
    _errno: libc::c_int,
    _code: libc::c_int,
    band: libc::c_long,
    fd: libc::c_int,
}

/// An all-zero `siginfo_t`.
fn zeroed_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is plain data, for which all-zero bytes are a valid value.
    unsafe { mem::zeroed() }
}

/// Asks the kernel to announce `fd`'s readiness with [`io_signal`], to thread `tid` only, and
/// makes it non-blocking. From the next change of readiness on, each one queues a signal naming
/// `fd`; what is ready already is not announced.
pub(super) fn announce(fd: BorrowedFd<'_>, tid: libc::pid_t) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_SETSIG takes an integer argument; the descriptor is borrowed, so open.
    check(unsafe { libc::fcntl(fd, F_SETSIG, io_signal()) })?;
    let owner = OwnerEx { kind: F_OWNER_TID, pid: tid };
    // SAFETY: F_SETOWN_EX reads one f_owner_ex, which `owner` is (repr(C), same fields), live
    // across the call.
    check(unsafe { libc::fcntl(fd, F_SETOWN_EX, &owner as *const OwnerEx) })?;
    // Last, so that the first signal already goes to the right thread, as the right signal.
    // (F_SETFL changes only these status flags; the access mode is kept.)
    // SAFETY: F_SETFL takes an integer argument.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK | libc::O_ASYNC) })?;
    Ok(())
}

/// The calling thread's id, for [`announce`].
pub(super) fn this_thread() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}
