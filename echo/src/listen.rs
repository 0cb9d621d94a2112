//! The listening socket, made by hand so that its accept queue is deep enough.
//!
//! `std::net::TcpListener::bind` passes a backlog of 128 to `listen(2)` (check with `ss -ltn`: the
//! `Send-Q` column of a listening socket is its backlog). A client that connects while the queue is
//! full has its SYN dropped and waits for a retransmit, a second or more later; the end-to-end tests
//! open 200 connections at once. So we make the socket ourselves with the same options std uses
//! (close-on-exec, `SO_REUSEADDR`) and a backlog of [`BACKLOG`], then hand it to std as a plain
//! `TcpListener`, which owns and closes it from then on. The kernel silently caps the backlog at
//! `net.core.somaxconn`.

use std::io;
use std::mem;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::syscall::check;

/// How many finished handshakes the kernel may queue before we accept them.
pub const BACKLOG: libc::c_int = 1024;

/// Binds a TCP listener on `addr` with a backlog of [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) takes no pointers; a bad argument is reported as -1, which `check` handles.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and nothing else holds it, so this OwnedFd is its
    // only owner; it closes the descriptor if a later step fails.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let fd = socket.as_raw_fd();

    let one: libc::c_int = 1;
    // SAFETY: the option value points to a live `c_int` and the length given is its size.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            socklen_of::<libc::c_int>(),
        )
    })?;

    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                // The octets are already in network order; keep them as they lie in memory.
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: the address points to a live, fully initialised `sockaddr_in` and the length
            // given is its size, as bind(2) requires for AF_INET.
            check(unsafe {
                libc::bind(
                    fd,
                    (&sin as *const libc::sockaddr_in).cast(),
                    socklen_of::<libc::sockaddr_in>(),
                )
            })?;
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for a live `sockaddr_in6` and its size (AF_INET6).
            check(unsafe {
                libc::bind(
                    fd,
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    socklen_of::<libc::sockaddr_in6>(),
                )
            })?;
        }
    }

    // SAFETY: listen(2) takes no pointers; `fd` is a bound socket we own.
    check(unsafe { libc::listen(fd, BACKLOG) })?;
    Ok(TcpListener::from(socket))
}

/// The size of `T` as the socket calls want it.
fn socklen_of<T>() -> libc::socklen_t {
    // A socket address is a few dozen bytes, far below socklen_t's range.
    mem::size_of::<T>() as libc::socklen_t
}
