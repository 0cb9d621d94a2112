//! The system calls of the epoll server, each wrapped once: the epoll instance (`epoll_create1`,
//! `epoll_ctl`, `epoll_wait`), `accept4`, `recv`, `send` and `writev`.
//!
//! Every wrapper turns the C convention (-1 and `errno`) into an `io::Result`, calls again on
//! `EINTR` (a signal came before the call did anything), and takes descriptors as `BorrowedFd`,
//! so an `unsafe` block here never meets a closed one. `send` and `writev` report a full socket
//! buffer (`EAGAIN`) as 0 bytes sent, not as an error; `recv` and `accept` return it as
//! `WouldBlock`, which the caller takes as proof that the socket is no longer ready.

use std::io::{self, IoSlice};
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use crate::syscall::{check, check_len, retry};

/// An epoll instance, closed on drop.
pub(super) struct Epoll(OwnedFd);

impl Epoll {
    pub(super) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; EPOLL_CLOEXEC is a valid flag.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 just returned this descriptor, and nothing else owns it.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds `fd` to the set for `events`, under `token`.
    pub(super) fn add(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        events: libc::c_int,
    ) -> io::Result<()> {
        let mut event = libc::epoll_event { events: events as u32, u64: token };
        // SAFETY: `event` is a live epoll_event that the kernel only reads during the call; both
        // descriptors are borrowed from their owners and so open.
        check(unsafe {
            libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event)
        })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: without limit) and fills the front of `events`; returns how
    /// many. A signal ends the wait early with none, which is not an error.
    pub(super) fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout_ms: libc::c_int,
    ) -> io::Result<usize> {
        let max = events.len().try_into().unwrap_or(libc::c_int::MAX);
        // SAFETY: the pointer and `max` describe `events`, a live slice the kernel may fill with
        // up to `max` entries; the epoll descriptor is owned by `self`.
        let n =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match check(n) {
            Ok(n) => Ok(n as usize), // 0..=max
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Accepts one connection, non-blocking and close-on-exec from the start (one call, not three).
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain data, for which all-zero bytes are a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let fd = retry(|| {
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `storage` and `len` are live and writable, and `len` holds the storage's true
        // size, so the kernel writes within it. The listener is borrowed, so open.
        check(unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                ptr::addr_of_mut!(storage).cast(),
                &mut len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        })
    })?;
    // SAFETY: accept4 just returned this descriptor, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let peer = socket_addr(&storage)
        .ok_or_else(|| io::Error::other("accepted a socket that is neither IPv4 nor IPv6"))?;
    Ok((fd, peer))
}

/// The address `accept4` wrote into `storage`, if it is IPv4 or IPv6.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let family = libc::c_int::from(storage.ss_family);
    let storage: *const libc::sockaddr_storage = storage;
    match family {
        libc::AF_INET => {
            // SAFETY: sockaddr_storage is large enough and aligned for every socket address type,
            // and its family says the kernel wrote a sockaddr_in there (the rest is zeroed), so
            // this reads initialised bytes within the storage, which outlives the reference.
            let sin = unsafe { &*storage.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()); // network order in memory
            Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as for AF_INET above, with sockaddr_in6.
            let sin6 = unsafe { &*storage.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
        }
        _ => None,
    }
}

/// Reads into `buf` without waiting; 0 means end of stream.
pub(super) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: the pointer and length describe `buf`, a live slice the kernel writes at most
        // `buf.len()` bytes into. The socket is borrowed, so open.
        check_len(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })
    })
}

/// Sends what the socket takes of `bytes` without waiting: all, part, or 0 when its buffer is
/// full (`EAGAIN`). `MSG_NOSIGNAL`: a peer that reset gives the error `EPIPE`, not `SIGPIPE`.
pub(super) fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    let sent = retry(|| {
        // SAFETY: the pointer and length describe `bytes`, a live slice the kernel only reads.
        // The socket is borrowed, so open.
        check_len(unsafe {
            libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL)
        })
    });
    match sent {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        sent => sent,
    }
}

/// Sends what the socket takes of `bufs`, in order, without waiting (`writev(2)`); 0 when its
/// buffer is full. `writev` has no `MSG_NOSIGNAL`: a peer that reset raises `SIGPIPE`, which this
/// process ignores (Rust's runtime sets it to `SIG_IGN` before `main`), so the call fails with
/// `EPIPE` like `send`.
pub(super) fn writev(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let count = libc::c_int::try_from(bufs.len()).unwrap_or(libc::c_int::MAX);
    let sent = retry(|| {
        // SAFETY: `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix, so the pointer and
        // count describe `count` live iovecs, each naming a live slice the kernel only reads. The
        // socket is borrowed, so open.
        check_len(unsafe { libc::writev(fd.as_raw_fd(), bufs.as_ptr().cast(), count) })
    });
    match sent {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        sent => sent,
    }
}
