//! [`TcpListener`]: one multishot accept, armed on the first `accept` and again whenever the
//! kernel ends it; the connections it accepts wait in the listener's queue.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use io_uring::{opcode, types};

use super::bufs::BufRing;
use super::{driver_of, Sink, TcpStream};
use crate::reactor::Reactor;
use crate::slab::Key;

/// A listening TCP socket on the completion path.
pub struct TcpListener {
    fd: RawFd,
    reactor: Rc<Reactor>,
    inbox: Rc<Accepted>,
}

/// What the multishot accept delivers.
#[derive(Default)]
struct Accepted {
    queue: RefCell<VecDeque<io::Result<OwnedFd>>>,
    /// The armed accept, if any.
    armed: Cell<Option<Key>>,
    waker: RefCell<Option<Waker>>,
}

impl Sink for Accepted {
    fn complete(&self, res: i32, _flags: u32, _bufs: &Rc<BufRing>) -> bool {
        let accepted = if res >= 0 {
            // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
            Ok(unsafe { OwnedFd::from_raw_fd(res) })
        } else if res == -libc::ECANCELED {
            return false;
        } else {
            Err(io::Error::from_raw_os_error(-res))
        };
        self.queue.borrow_mut().push_back(accepted);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
        false
    }

    fn ended(&self) {
        self.armed.set(None);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

impl TcpListener {
    /// Binds to `addr` and listens.
    ///
    /// # Errors
    ///
    /// As `std`'s `bind`; `Unsupported` if the runtime's backend is not uring.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::from_std(std::net::TcpListener::bind(addr)?)
    }

    /// Takes over a listening std socket.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the runtime's backend is not uring.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        let reactor = crate::runtime::current("a socket").reactor;
        driver_of(&reactor)?;
        Ok(TcpListener { fd: listener.into_raw_fd(), reactor, inbox: Rc::default() })
    }

    /// The next connection and its peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let fd = std::future::poll_fn(|cx| {
            if !crate::coop::spend(cx) {
                return Poll::Pending;
            }
            if let Some(accepted) = self.inbox.queue.borrow_mut().pop_front() {
                return Poll::Ready(accepted);
            }
            if self.inbox.armed.get().is_none() {
                let (poller, driver) = driver_of(&self.reactor)?;
                let entry =
                    opcode::AcceptMulti::new(types::Fd(self.fd)).flags(libc::SOCK_CLOEXEC).build();
                // SAFETY: a multishot accept without an address points to no memory; the
                // listener's descriptor is closed only through the ring, after this entry.
                let key = unsafe { driver.submit_multi(poller, entry, self.inbox.clone()) }?;
                self.inbox.armed.set(Some(key));
            }
            *self.inbox.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        let stream = TcpStream::from_fd(fd)?;
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        // SAFETY: open for as long as `self`; ManuallyDrop keeps the temporary from closing it.
        let std =
            std::mem::ManuallyDrop::new(unsafe { std::net::TcpListener::from_raw_fd(self.fd) });
        std.local_addr()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.inbox.queue.borrow_mut().clear();
        if let Ok((poller, driver)) = driver_of(&self.reactor) {
            if let Some(key) = self.inbox.armed.get() {
                driver.cancel(poller, key);
            }
            driver.close(poller, self.fd);
        }
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener").field("fd", &self.fd).finish_non_exhaustive()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is open for as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}
