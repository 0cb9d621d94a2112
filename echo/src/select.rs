//! Multiplexing model: one thread sleeps in `select(2)` until some socket is ready.
//!
//! The sockets are non-blocking, as in `spin.rs`, and share its per-connection state ([`Conn`]).
//! The difference is how the thread finds work. Each turn it builds two descriptor sets, bitmaps
//! indexed by descriptor number:
//!
//! - the *read* set: the listener, and every connection with no pending output;
//! - the *write* set: every connection whose reply is still partly unwritten.
//!
//! A connection is never in both: while it has pending output we do not read from it, which keeps
//! memory bounded and lets TCP flow control push back on a client that does not read. `select`
//! then blocks until at least one descriptor is ready, and rewrites the sets in place to say which
//! ones are. The thread does exactly that work, and builds fresh sets for the next turn (the old
//! ones were overwritten).
//!
//! # What the thread does while waiting
//!
//! It sleeps in the kernel, inside `select`, and uses no CPU until a client connects, sends or
//! makes room to receive.
//!
//! # Cost and limits
//!
//! - An `fd_set` holds descriptors `0..FD_SETSIZE` (1024 on Linux) and nothing else: putting a
//!   larger one in writes past the end of the bitmap. A connection whose descriptor is that large
//!   is logged and closed at once; the other connections keep being served.
//! - Every turn costs time in proportion to the number of connections, not the number of ready
//!   ones: we rebuild both sets, the kernel scans every descriptor up to the highest, and we test
//!   each connection afterwards. `epoll`, under the `mini` runtime, keeps the interest list in the
//!   kernel and returns only the ready descriptors.
//!
//! # Limits and failures
//!
//! Out of descriptors, the waiting clients are closed at once ([`Shedder`]) and the listener
//! stays in the read set for the next one. `--max-connections` is checked against the table at
//! accept. `--idle-timeout` is each connection's last activity: the earliest deadline becomes
//! `select`'s timeout, and each turn closes the connections past theirs.

use std::convert::Infallible;
use std::io;
use std::mem;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::ptr;
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::conn::{would_wait, Conn, Status};
use crate::options::ConnOptions;
use crate::shed::{Next, Shedder};

/// Serves echo on `listener` until the process exits.
pub fn serve(listener: TcpListener, upper: bool, opts: ConnOptions) -> io::Result<Infallible> {
    // Non-blocking so that an accept after a stale readiness returns WouldBlock instead of stalling
    // every connection.
    listener.set_nonblocking(true)?;
    let listen_fd = listener.as_raw_fd();
    if !fits(listen_fd) {
        return Err(io::Error::other(format!(
            "listener descriptor {listen_fd} is too large for select"
        )));
    }
    let mut shedder = Shedder::new();
    let mut conns: Vec<Conn> = Vec::new();
    // After an accept error we leave the listener out of the sets for a moment (see `ACCEPT_PAUSE`).
    let mut accept_again_at = Instant::now();

    loop {
        // 1. Say what we wait for, and until when: the end of an accept pause, or the moment
        //    the first connection will have been idle for `--idle-timeout`. `max_fd` stays -1
        //    only when the set is empty and we are pausing accepts, in which case `select` just
        //    sleeps until the timeout.
        let mut read_set = FdSet::new();
        let mut write_set = FdSet::new();
        let mut max_fd = -1;
        let now = Instant::now();
        let accepting = now >= accept_again_at;
        if accepting {
            read_set.insert(listen_fd);
            max_fd = listen_fd;
        }
        for conn in &conns {
            let fd = conn.stream.as_raw_fd();
            if conn.has_pending() {
                write_set.insert(fd);
            } else {
                read_set.insert(fd);
            }
            max_fd = max_fd.max(fd);
        }
        let first_idle =
            opts.idle_timeout.and_then(|t| conns.iter().map(|c| c.idle_deadline(t)).min());
        let wake_at =
            [(!accepting).then_some(accept_again_at), first_idle].into_iter().flatten().min();
        // No timeout (wait for ever) unless something is due.
        let mut timeout = wake_at.map(|at| timeval(at.saturating_duration_since(now)));
        let timeout_ptr = timeout.as_mut().map_or(ptr::null_mut(), |t| t as *mut libc::timeval);

        // 2. Sleep until something is ready.
        // SAFETY: both set pointers come from live `FdSet`s that hold only descriptors below
        // FD_SETSIZE (`FdSet::insert` checks), and `max_fd + 1` does not exceed FD_SETSIZE, so the
        // kernel reads and writes within them. The except set is null, which select allows. The
        // timeout is null or points to a live `timeval` that select may update.
        let ready = unsafe {
            libc::select(
                max_fd + 1,
                &mut read_set.0,
                &mut write_set.0,
                ptr::null_mut(),
                timeout_ptr,
            )
        };
        if ready == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                // A signal arrived; the sets are undefined now, so build them again.
                continue;
            }
            return Err(err);
        }

        // 3. Serve the ready connections, and close those idle for too long. Only those that
        //    were in the sets can be marked; new ones are added after this loop, so a descriptor
        //    number that is closed and reused within this turn cannot be mistaken for a ready
        //    one.
        let idle = opts.idle_timeout.map(|timeout| (Instant::now(), timeout));
        conns.retain_mut(|conn| {
            let fd = conn.stream.as_raw_fd();
            let result = if write_set.contains(fd) {
                conn.write().map(|()| Status::Open)
            } else if read_set.contains(fd) {
                conn.read(upper)
            } else {
                Ok(Status::Open)
            };
            conn.stays(result, idle)
        });

        // 4. Accept everyone waiting in the queue.
        if read_set.contains(listen_fd) {
            loop {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        shedder.accepted();
                        if opts.refuse(conns.len(), peer) {
                            continue; // dropping `stream` closes it
                        }
                        if let Err(e) = opts.apply(stream.as_fd()) {
                            warn!("cannot set up {peer}, closing it: {e}");
                            continue;
                        }
                        let fd = stream.as_raw_fd();
                        if !fits(fd) {
                            warn!(
                                "closing {peer}: its descriptor {fd} is not below FD_SETSIZE ({}), \
                                 which select cannot watch",
                                libc::FD_SETSIZE
                            );
                            continue; // dropping `stream` closes it
                        }
                        match Conn::new(stream, peer) {
                            Ok(conn) => {
                                debug!("accepted {peer}");
                                conns.push(conn);
                            }
                            Err(e) => warn!("cannot set up {peer}, closing it: {e}"),
                        }
                    }
                    Err(e) if would_wait(&e) => break,
                    // Out of descriptors, the waiting clients are closed and the queue is empty:
                    // the listener stays in the read set, for the next client. Otherwise that
                    // one connection failed, and the next turn accepts the others.
                    Err(e) => {
                        if shedder.accept_failed(&e, listener.as_fd()) == Next::Pause {
                            accept_again_at = Instant::now() + crate::ACCEPT_PAUSE;
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// An `fd_set` that only ever holds descriptors in `0..FD_SETSIZE`.
///
/// # Invariant
///
/// Every descriptor set in `.0` is below `FD_SETSIZE`; `insert` enforces it.
struct FdSet(libc::fd_set);

impl FdSet {
    /// An empty set.
    fn new() -> FdSet {
        // SAFETY: `fd_set` is a plain array of integers, so all zero bytes is a valid value, and it
        // is the empty set (exactly what FD_ZERO produces).
        FdSet(unsafe { mem::zeroed() })
    }

    /// Adds `fd`. Panics if it is outside `0..FD_SETSIZE`; callers check with [`fits`] first.
    fn insert(&mut self, fd: RawFd) {
        assert!(fits(fd), "descriptor {fd} does not fit in an fd_set");
        // SAFETY: `fd` is in 0..FD_SETSIZE (checked above), so FD_SET writes a bit inside the set.
        unsafe { libc::FD_SET(fd, &mut self.0) }
    }

    /// Whether `fd` is in the set (after `select`: whether it is ready).
    fn contains(&self, fd: RawFd) -> bool {
        // SAFETY: FD_ISSET is only reached for `fd` in 0..FD_SETSIZE, so it reads inside the set.
        fits(fd) && unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

/// Whether `fd` can go in an `fd_set`.
fn fits(fd: RawFd) -> bool {
    usize::try_from(fd).is_ok_and(|fd| fd < libc::FD_SETSIZE)
}

/// A `Duration` as `select` wants it, rounded up to whole microseconds so that the wait does
/// not end just before what it waits for.
fn timeval(d: Duration) -> libc::timeval {
    let d = d.saturating_add(Duration::from_nanos(999));
    libc::timeval {
        // An idle timeout given in seconds fits time_t; the microseconds are below a million.
        tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}
