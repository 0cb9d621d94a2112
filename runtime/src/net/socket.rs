//! The few socket calls that `std::net` cannot make for us: accepting straight into a
//! non-blocking socket, starting a connect without waiting for it, and receiving into memory
//! that is not initialised. Plus the conversions
//! between `SocketAddr` and the C `sockaddr` structures those calls take.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{self, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::sys::check;

/// Receives into `buf`, whose bytes need not be initialised: the kernel writes them, so nothing
/// is zeroed first. On `Ok(n)`, the first `n` bytes of `buf` are initialised.
pub(crate) fn recv_uninit(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: recv(2) writes at most `buf.len()` bytes at `buf`'s start, memory we borrow
    // mutably for the call and that has `u8`'s layout; it never reads them, so they need not be
    // initialised. (MSG_NOSIGNAL matters only for sends.)
    let n = check(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })?;
    Ok(n as usize)
}

/// Accepts one connection on the non-blocking listener `fd`. The new socket is created
/// non-blocking and close-on-exec in the same call (`accept4`), saving a syscall per connection.
pub(crate) fn accept(fd: RawFd) -> io::Result<(net::TcpStream, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `storage` and `len` are live and writable; `len` holds the storage's true size,
    // so the kernel writes within it.
    let conn = check(unsafe {
        libc::accept4(fd, (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len, flags)
    })?;
    // SAFETY: accept4 just returned this descriptor, and nothing else owns it.
    let stream = net::TcpStream::from(unsafe { OwnedFd::from_raw_fd(conn) });
    Ok((stream, to_socket_addr(&storage)?))
}

/// Creates a non-blocking socket and starts connecting it to `addr`. The connection is usually
/// still in progress when this returns: the caller waits for writability, then reads `SO_ERROR`.
pub(crate) fn start_connect(addr: SocketAddr) -> io::Result<net::TcpStream> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes no pointers; the arguments are valid constants.
    let fd = check(unsafe { libc::socket(domain, kind, 0) })?;
    // SAFETY: socket just returned this descriptor, and nothing else owns it.
    let stream = net::TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let raw_addr = RawAddr::from(addr);
    let (raw, len) = raw_addr.as_ptr();
    // SAFETY: `raw` points at a live sockaddr of `len` bytes (see RawAddr::as_ptr). The fd is
    // owned by `stream`, which outlives the call.
    match check(unsafe { libc::connect(fd, raw, len) }) {
        Ok(_) => Ok(stream),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(stream),
        Err(e) => Err(e),
    }
}

/// A `SocketAddr` in the C layout that `connect` reads.
pub(crate) enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl From<SocketAddr> for RawAddr {
    fn from(addr: SocketAddr) -> RawAddr {
        match addr {
            SocketAddr::V4(a) => RawAddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => RawAddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }
}

impl RawAddr {
    /// A pointer to the structure and its size, valid while `self` is.
    pub(crate) fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            RawAddr::V4(a) => {
                ((a as *const libc::sockaddr_in).cast(), mem::size_of_val(a) as libc::socklen_t)
            }
            RawAddr::V6(a) => {
                ((a as *const libc::sockaddr_in6).cast(), mem::size_of_val(a) as libc::socklen_t)
            }
        }
    }
}

/// Reads the address the kernel wrote into `storage`.
fn to_socket_addr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the kernel wrote a sockaddr_in; sockaddr_storage is
            // large enough and suitably aligned for every sockaddr type.
            let a: libc::sockaddr_in =
                unsafe { *(storage as *const libc::sockaddr_storage).cast() };
            let ip = a.sin_addr.s_addr.to_ne_bytes().into();
            Ok(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { *(storage as *const libc::sockaddr_storage).cast() };
            let ip = a.sin6_addr.s6_addr.into();
            Ok(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)
                .into())
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected address family {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_survive_the_round_trip_through_c() {
        for text in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%3]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            // SAFETY: all-zero bytes are a valid sockaddr_storage.
            let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let raw_addr = RawAddr::from(addr);
            let (ptr, len) = raw_addr.as_ptr();
            // SAFETY: `ptr` is valid for `len` bytes and `len` fits in the storage.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    ptr.cast::<u8>(),
                    (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                    len as usize,
                )
            };
            assert_eq!(to_socket_addr(&storage).unwrap(), addr);
        }
    }
}
