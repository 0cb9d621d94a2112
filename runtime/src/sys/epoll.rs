//! The epoll backend (Linux): the kernel keeps the watched set, and a wait costs work in
//! proportion to the sockets that are *ready*, not to all that are watched.
//!
//! Each socket is added once, for reading and writing, **edge-triggered** (`EPOLLET`): the kernel
//! reports a socket when it *becomes* ready, not on every wait while it stays ready. So the
//! interest never changes while a socket lives and there is no `epoll_ctl` per operation; the
//! price is that the reactor must remember readiness itself until a syscall says `EWOULDBLOCK`.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::{check, timeout_ms, Event, Interest, Notifier, Poller, NOTIFY_TOKEN};

/// How many events one `epoll_wait` may return; more simply wait for the next turn.
const MAX_EVENTS: usize = 1024;

/// An epoll instance plus the notifier registered in it.
#[derive(Debug)]
pub(crate) struct EpollPoller {
    epoll: OwnedFd,
    notifier: Arc<Notifier>,
    /// Where `epoll_wait` writes its events: allocated once with room for [`MAX_EVENTS`], never
    /// initialised by us (the kernel writes the first `n`, and only those are read).
    raw_events: RefCell<Vec<libc::epoll_event>>,
}

impl EpollPoller {
    pub(crate) fn new() -> io::Result<EpollPoller> {
        // SAFETY: epoll_create1 takes no pointers; EPOLL_CLOEXEC is a valid flag.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 just returned this descriptor, and nothing else owns it.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let poller = EpollPoller {
            epoll,
            notifier: Arc::new(Notifier::new()?),
            raw_events: RefCell::new(Vec::with_capacity(MAX_EVENTS)),
        };
        // Readable only: an eventfd is always writable, which would wake every wait.
        poller.ctl(poller.notifier.fd(), NOTIFY_TOKEN, libc::EPOLLIN | libc::EPOLLET)?;
        Ok(poller)
    }

    /// Adds `fd` to the epoll set for the events in `flags`.
    fn ctl(&self, fd: RawFd, token: u64, flags: libc::c_int) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: flags as u32, u64: token };
        // SAFETY: `ev` is a live epoll_event that the kernel only reads during the call.
        check(unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev)
        })?;
        Ok(())
    }
}

impl Poller for EpollPoller {
    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Both directions, edge-triggered, for the socket's whole life.
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(fd, token, libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET)
    }

    /// Edge-triggered with both directions from the start: nothing to change.
    fn set_interest(&self, _fd: RawFd, _token: u64, _interest: Interest) -> io::Result<()> {
        Ok(())
    }

    fn tracks_interest(&self) -> bool {
        false
    }

    fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event pointer is allowed for EPOLL_CTL_DEL (since Linux 2.6.9).
        check(unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut())
        })?;
        Ok(())
    }

    fn wait(&self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let mut raw = self.raw_events.borrow_mut();
        raw.clear();
        // SAFETY: the pointer and capacity describe the vector's allocation (MAX_EVENTS
        // entries), which the kernel may fill; nothing else uses it during the call.
        let n = match check(unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                raw.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                timeout_ms(timeout),
            )
        }) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        // SAFETY: epoll_wait returned n <= MAX_EVENTS, the capacity, and wrote entries 0..n.
        unsafe { raw.set_len(n) };
        for ev in raw.iter() {
            let bits = ev.events as libc::c_int;
            let failed = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            let read_closed = failed || bits & libc::EPOLLRDHUP != 0;
            events.push(Event {
                token: ev.u64,
                readable: read_closed || bits & libc::EPOLLIN != 0,
                writable: failed || bits & libc::EPOLLOUT != 0,
                read_closed,
            });
        }
        Ok(())
    }
}
