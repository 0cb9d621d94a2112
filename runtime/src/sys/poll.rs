//! The poll(2) backend: level-triggered, portable across Unix systems.
//!
//! `poll` takes an array of `pollfd` (descriptor, wanted events) on every call, and the kernel
//! looks at every entry each time: a wait costs work in proportion to the sockets in the array,
//! ready or not. So the array is built for each wait from the [`Watchlist`]: only the sockets a
//! task is waiting on. Being level-triggered, a socket stays reported while it is ready; the
//! reactor drops its interest when it wakes the waiting task, so a socket that nobody reads (or
//! that has hung up) never turns into a busy loop.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::watchlist::Watchlist;
use super::{check, timeout_ms, Event, Interest, Notifier, Poller, NOTIFY_TOKEN};

/// The poll backend; see the module docs.
#[derive(Debug)]
pub(crate) struct PollPoller {
    notifier: Arc<Notifier>,
    watchlist: RefCell<Watchlist>,
    /// The array handed to the kernel, rebuilt per wait; kept to reuse its allocation.
    pollfds: RefCell<Vec<libc::pollfd>>,
    /// `tokens[i]` is the token of `pollfds[i]`.
    tokens: RefCell<Vec<u64>>,
}

impl PollPoller {
    pub(crate) fn new() -> io::Result<PollPoller> {
        Ok(PollPoller {
            notifier: Arc::new(Notifier::new()?),
            watchlist: RefCell::default(),
            pollfds: RefCell::default(),
            tokens: RefCell::default(),
        })
    }
}

impl Poller for PollPoller {
    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Nothing to do until a task waits on the socket.
    fn add(&self, _fd: RawFd, _token: u64) -> io::Result<()> {
        Ok(())
    }

    fn set_interest(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.watchlist.borrow_mut().set(fd, token, interest);
        Ok(())
    }

    fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.watchlist.borrow_mut().remove(fd);
        Ok(())
    }

    fn wait(&self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let mut pollfds = self.pollfds.borrow_mut();
        let mut tokens = self.tokens.borrow_mut();
        pollfds.clear();
        tokens.clear();
        pollfds.push(libc::pollfd { fd: self.notifier.fd(), events: libc::POLLIN, revents: 0 });
        tokens.push(NOTIFY_TOKEN);
        for w in self.watchlist.borrow().iter() {
            let mut wanted = 0;
            if w.interest.read {
                wanted |= libc::POLLIN | libc::POLLRDHUP;
            }
            if w.interest.write {
                wanted |= libc::POLLOUT;
            }
            pollfds.push(libc::pollfd { fd: w.fd, events: wanted, revents: 0 });
            tokens.push(w.token);
        }

        // SAFETY: the pointer and length describe `pollfds`, a live array the kernel may write
        // `revents` into; nothing else touches it during the call.
        match check(unsafe {
            libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout_ms(timeout))
        }) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for (pfd, &token) in pollfds.iter().zip(tokens.iter()) {
            let bits = pfd.revents;
            if bits == 0 {
                continue;
            }
            let failed = bits & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
            let read_closed = failed || bits & libc::POLLRDHUP != 0;
            events.push(Event {
                token,
                readable: read_closed || bits & libc::POLLIN != 0,
                writable: failed || bits & libc::POLLOUT != 0,
                read_closed,
            });
        }
        Ok(())
    }
}
