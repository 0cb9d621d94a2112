//! The C convention of system calls, turned into `io::Result` once for every server that makes
//! its own calls (the listener, the epoll loop, the socket options).
//!
//! The runtime has its own `check` in `runtime/src/sys/mod.rs`: the raw servers here are the
//! baselines `mini` is measured against, so they share nothing with it but `libc`.

use std::io;

/// `-1` and `errno` become an error: `check(unsafe { libc::f(..) })`. A function, not a macro
/// around the call, so that every call site writes and argues its own `unsafe` block.
pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`check`] for calls that return a byte count (`ssize_t`), which is never negative on success.
pub fn check_len(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Calls `f` again while it fails with `EINTR`: a signal came before the call did anything.
pub fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}
