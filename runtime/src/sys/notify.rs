//! Waking a thread that is blocked in the poller, from any other thread.
//!
//! The poller can only be interrupted by something it is watching, so the notifier is a
//! descriptor inside the watched set: an `eventfd`, a kernel counter that reads as "readable"
//! while it is non-zero. `notify` adds one to it; the poller reports it under
//! [`NOTIFY_TOKEN`](super::NOTIFY_TOKEN), and the reactor calls `reset` to read it back to zero.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::check;

/// A thread-safe way to interrupt the poller's wait.
#[derive(Debug)]
pub(crate) struct Notifier {
    fd: OwnedFd,
    /// True from a `notify` until the reactor's `reset`: further notifies need no syscall, since
    /// the poller will wake anyway.
    pending: AtomicBool,
}

impl Notifier {
    pub(crate) fn new() -> io::Result<Notifier> {
        // SAFETY: eventfd takes no pointers; the flags are valid constants.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: eventfd just returned this descriptor, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Notifier { fd, pending: AtomicBool::new(false) })
    }

    /// The descriptor the poller must watch for readability.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the poller's current or next wait return at once. Callable from any thread.
    pub(crate) fn notify(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: the pointer and length describe `one`, a live 8-byte value, as eventfd wants.
        let res = check(unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) });
        // EAGAIN means the counter is already huge, so the poller wakes anyway.
        if let Err(e) = res {
            if e.kind() != io::ErrorKind::WouldBlock {
                log::error!("mini: cannot wake the poller: {e}");
            }
        }
    }

    /// Called by the reactor when the poller reported the notifier: back to "not readable".
    pub(crate) fn reset(&self) {
        let mut count: u64 = 0;
        // SAFETY: the pointer and length describe `count`, a live, writable 8-byte value. A
        // failure (EAGAIN: already zero) needs no handling.
        let _ = check(unsafe { libc::read(self.fd(), (&mut count as *mut u64).cast(), 8) });
        // Read, then clear the flag. A notify that comes between the two sees the flag still
        // set and writes nothing; that is harmless, because this thread is awake and checks the
        // run queue before it sleeps again. (The other order could swallow a notify's write
        // while leaving the flag set, and every later notify would then be skipped.)
        self.pending.store(false, Ordering::Release);
    }
}
