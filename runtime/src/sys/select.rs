//! The select(2) backend: the oldest multiplexing call, level-triggered, and limited.
//!
//! `select` takes bit sets (`fd_set`) of descriptors to watch for reading and writing, rebuilt
//! for every wait from the [`Watchlist`] (only the sockets a task waits on). The kernel scans
//! every descriptor number below the highest one passed, so a wait costs work in proportion to
//! the *largest descriptor number*, ready or not.
//!
//! The hard limit: an `fd_set` has room for descriptors `0..FD_SETSIZE` (1024) only, and setting
//! a bit beyond it writes past the end of the structure. So [`add`](SelectPoller::add) refuses
//! such a descriptor with an error, and no larger one ever reaches an `fd_set`.

use std::cell::RefCell;
use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::watchlist::Watchlist;
use super::{check, Event, Interest, Notifier, Poller, NOTIFY_TOKEN};

/// The select backend; see the module docs.
#[derive(Debug)]
pub(crate) struct SelectPoller {
    notifier: Arc<Notifier>,
    watchlist: RefCell<Watchlist>,
}

impl SelectPoller {
    pub(crate) fn new() -> io::Result<SelectPoller> {
        let notifier = Arc::new(Notifier::new()?);
        check_fits(notifier.fd())?;
        Ok(SelectPoller { notifier, watchlist: RefCell::default() })
    }
}

/// The error for a descriptor an `fd_set` cannot hold.
fn check_fits(fd: RawFd) -> io::Result<()> {
    if (0..libc::FD_SETSIZE as RawFd).contains(&fd) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "descriptor {fd} is too large for select (limit FD_SETSIZE = {})",
            libc::FD_SETSIZE
        ),
    ))
}

/// A bit set of descriptors, each checked to fit when it is added.
struct FdSet(libc::fd_set);

impl FdSet {
    fn new() -> FdSet {
        // SAFETY: fd_set is plain data for which all-zero bytes are the empty set (FD_ZERO's
        // result).
        FdSet(unsafe { mem::zeroed() })
    }

    /// `fd` must have passed [`check_fits`]: every watched descriptor did, in `add`.
    fn insert(&mut self, fd: RawFd) {
        debug_assert!(check_fits(fd).is_ok());
        // SAFETY: 0 <= fd < FD_SETSIZE (checked in `add` before the fd was ever watched), so
        // the bit lies inside the set; the pointer is to a live, exclusive fd_set.
        unsafe { libc::FD_SET(fd, &mut self.0) }
    }

    fn contains(&self, fd: RawFd) -> bool {
        // SAFETY: as in `insert`, the bit lies inside the live set we point to.
        unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

impl Poller for SelectPoller {
    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Refuses a descriptor that an `fd_set` cannot hold; nothing else to do until a task waits.
    fn add(&self, fd: RawFd, _token: u64) -> io::Result<()> {
        check_fits(fd)
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
        let watchlist = self.watchlist.borrow();
        let (mut reads, mut writes) = (FdSet::new(), FdSet::new());
        let notify_fd = self.notifier.fd();
        reads.insert(notify_fd);
        let mut max_fd = notify_fd;
        for w in watchlist.iter() {
            if w.interest.read {
                reads.insert(w.fd);
            }
            if w.interest.write {
                writes.insert(w.fd);
            }
            max_fd = max_fd.max(w.fd);
        }
        let mut tv = timeout.map(to_timeval);
        let tv_ptr = tv.as_mut().map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
        // SAFETY: the sets and the timeval are live and exclusively ours for the call; nfds is
        // one past the highest descriptor in the sets, as select requires.
        let res = check(unsafe {
            libc::select(max_fd + 1, &mut reads.0, &mut writes.0, std::ptr::null_mut(), tv_ptr)
        });
        match res {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        if reads.contains(notify_fd) {
            events.push(Event {
                token: NOTIFY_TOKEN,
                readable: true,
                writable: false,
                read_closed: false,
            });
        }
        for w in watchlist.iter() {
            // select has no separate hang-up report: a hung-up or failed socket reads as ready,
            // and the syscall the woken task makes then tells it what happened.
            let readable = w.interest.read && reads.contains(w.fd);
            let writable = w.interest.write && writes.contains(w.fd);
            if readable || writable {
                events.push(Event { token: w.token, readable, writable, read_closed: false });
            }
        }
        Ok(())
    }
}

/// A timeval for `timeout`, rounded up to whole microseconds so a timer never fires early.
fn to_timeval(timeout: Duration) -> libc::timeval {
    let micros = timeout.as_nanos().div_ceil(1_000);
    libc::timeval {
        tv_sec: (micros / 1_000_000).min(libc::time_t::MAX as u128) as libc::time_t,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    }
}
