//! The io_uring backend (Linux 5.13+): readiness, asked of a completion ring.
//!
//! io_uring is the kernel's completion interface: the program queues *operations* in a
//! submission ring and reads their results from a completion ring. The natural use is to hand
//! it the reads and writes themselves, but mini's sockets are built on readiness (a task tries
//! its syscall, and waits only on `EWOULDBLOCK`), so this backend asks the ring for exactly
//! what epoll gives: one **multishot `IORING_OP_POLL_ADD`** per socket, for reading, writing and
//! hang-up. Such a poll stays armed and posts one completion each time the socket's wait queue
//! is woken; it is edge-triggered unless asked otherwise (no `IORING_POLL_ADD_LEVEL`), so,
//! as with epoll, the interest never changes while a socket lives and
//! [`tracks_interest`](Poller::tracks_interest) is false. Adding a socket costs no syscall of its
//! own (an entry in shared memory, sent with the next wait), and a wait with nothing to submit
//! and nothing pending makes none at all; but under load it waits more often than epoll, since
//! one wait delivers at most 20 deferred completions (see below).
//!
//! # A poll's life
//!
//! - **Armed** by [`add`](Poller::add): the entry's `user_data` is the reactor's token, so each
//!   completion names the registration it belongs to.
//! - **Re-armed** when a completion comes without `IORING_CQE_F_MORE`: the kernel ended the
//!   multishot poll (it does so when the completion ring is full). The last completion still
//!   reports what was ready; a fresh poll checks the socket at once when it is armed, so no
//!   edge is lost in between.
//! - **Cancelled** by [`delete`](Poller::delete) (`IORING_OP_ASYNC_CANCEL`, submitted at once,
//!   because the poll holds a reference to the socket: until it ends, closing the descriptor
//!   would not close the connection). Completions the poll posted before that may
//!   still be in the ring; they carry the old token, which the reactor no longer knows (its
//!   keys have generations), so they are dropped there. Its last completion (`-ECANCELED`)
//!   finds the token gone from [`UringPoller::fds`] and is not re-armed.
//!
//! # Waiting
//!
//! One `io_uring_enter` submits what is queued and waits for a completion, with the timeout
//! passed beside it (`IORING_ENTER_EXT_ARG`, 5.11): no timeout entry to queue or cancel. A
//! signal (`EINTR`) or the timeout (`ETIME`) is not an error. The cross-thread wake-up is the
//! same eventfd [`Notifier`] as elsewhere, under a multishot poll of its own: another thread's
//! write completes that poll, which ends the wait.
//!
//! The ring is set up `SINGLE_ISSUER | DEFER_TASKRUN` (6.1): only the runtime's thread submits
//! (the runtime is not `Send`), and the kernel runs the polls' completion work only when that
//! thread waits (at most 20 items per wait, the kernel's `IO_LOCAL_TW_DEFAULT_MAX`), not on the
//! way out of each of its `recv` and `send`: fewer syscalls the other way, but more CPU per
//! message (docs/backends.md has the figures). `SQPOLL` is never used: a kernel thread spinning
//! on the ring would cost a core.
//!
//! # Where it is unavailable
//!
//! [`UringPoller::new`] fails with an error that names the cause (seccomp, the
//! `kernel.io_uring_disabled` sysctl, a kernel without io_uring or too old, the memory limit);
//! [`super::new_default_poller`] then falls back to epoll.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::{Event, Interest, Notifier, Poller, NOTIFY_TOKEN};

/// Submission ring entries: adds and removes queue here between waits; a full ring is
/// submitted early.
const SQ_ENTRIES: u32 = 256;
/// Completion ring entries: room for several completions per socket between two waits, so that
/// multishot polls are seldom ended by a full ring.
const CQ_ENTRIES: u32 = 16 * 1024;
/// The `user_data` of cancellations (and of the completion driver's closes), whose own
/// completions say nothing the reactor needs.
pub(crate) const REMOVE_TOKEN: u64 = NOTIFY_TOKEN - 1;
/// The bit that marks an operation of the completion driver ([`crate::uring`]) in `user_data`:
/// its completions are kept for the driver rather than read as readiness. Poll tokens are
/// reactor keys, which use only the low 48 bits, so the two never collide.
pub(crate) const OP_TAG: u64 = 1 << 62;

/// One completion of a driver operation, copied out of the ring: `user_data`, result, flags.
pub(crate) type OpCompletion = (u64, i32, u32);

/// A ring plus the notifier polled in it.
pub(crate) struct UringPoller {
    ring: RefCell<IoUring>,
    notifier: Arc<Notifier>,
    /// The armed polls: token to descriptor, to re-arm a poll the kernel ended. A token leaves
    /// at `delete`, so a late completion of a removed poll is never re-armed.
    fds: RefCell<HashMap<u64, RawFd>>,
    /// Descriptor to token, for `delete`, which names only the descriptor.
    tokens: RefCell<HashMap<RawFd, u64>>,
    /// How many polls the kernel ended and this poller re-armed (for the tests and traces).
    rearmed: Cell<u64>,
    /// Completions of the driver's operations (`user_data` with [`OP_TAG`]), kept from the last
    /// wait until the reactor hands them to the driver.
    ops_done: RefCell<Vec<OpCompletion>>,
}

impl std::fmt::Debug for UringPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringPoller")
            .field("notifier", &self.notifier)
            .field("polls", &self.fds.borrow().len())
            .finish_non_exhaustive()
    }
}

impl UringPoller {
    /// Sets up the ring and checks (probes) that it can do what this backend asks of it.
    /// Errors name the cause; their kind is one of those [`is_unavailable`] accepts when the
    /// kernel or its configuration refuses io_uring.
    pub(crate) fn new() -> io::Result<UringPoller> {
        UringPoller::with_rings(SQ_ENTRIES, CQ_ENTRIES)
    }

    /// [`new`](Self::new) with rings of the given sizes (the tests fill a small one).
    fn with_rings(sq_entries: u32, cq_entries: u32) -> io::Result<UringPoller> {
        let ring = IoUring::builder()
            .setup_cqsize(cq_entries)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .build(sq_entries)
            .or_else(|e| {
                // EINVAL: a kernel before 6.1, without these flags; a plain ring will do.
                if e.raw_os_error() == Some(libc::EINVAL) {
                    IoUring::builder().setup_cqsize(cq_entries).build(sq_entries)
                } else {
                    Err(e)
                }
            })
            .map_err(setup_error)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe).map_err(|e| {
            unavailable(io::ErrorKind::Unsupported, format!("cannot probe the ring: {e}"))
        })?;
        for (code, name) in
            [(opcode::PollAdd::CODE, "POLL_ADD"), (opcode::AsyncCancel::CODE, "ASYNC_CANCEL")]
        {
            if !probe.is_supported(code) {
                let what = format!("the kernel's io_uring has no IORING_OP_{name}");
                return Err(unavailable(io::ErrorKind::Unsupported, what));
            }
        }
        if !ring.params().is_feature_ext_arg() {
            let what = "the kernel's io_uring cannot wait with a timeout (no EXT_ARG: before 5.11)";
            return Err(unavailable(io::ErrorKind::Unsupported, what.into()));
        }
        let poller = UringPoller {
            ring: RefCell::new(ring),
            notifier: Arc::new(Notifier::new()?),
            fds: RefCell::new(HashMap::new()),
            tokens: RefCell::new(HashMap::new()),
            rearmed: Cell::new(0),
            ops_done: RefCell::new(Vec::new()),
        };
        // Readable only: an eventfd is always writable, which would end every wait.
        poller.arm(poller.notifier.fd(), NOTIFY_TOKEN, libc::POLLIN as u32)?;
        Ok(poller)
    }

    /// Queues a multishot poll of `fd` for `mask`, whose completions carry `token`.
    fn arm(&self, fd: RawFd, token: u64, mask: u32) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(fd), mask).multi(true).build().user_data(token);
        // SAFETY: a poll entry points to no memory of ours: only a descriptor number and a mask.
        // The descriptor outlives the poll: `delete`, which the reactor calls before the socket
        // is closed, removes the poll (and the kernel holds its own reference to the file until
        // then anyway).
        unsafe { self.push(&entry) }?;
        self.fds.borrow_mut().insert(token, fd);
        self.tokens.borrow_mut().insert(fd, token);
        Ok(())
    }

    /// Queues `entry`, first submitting the queue if it is full.
    ///
    /// # Safety
    ///
    /// Whatever memory and descriptors `entry` points to must stay valid until its last
    /// completion.
    unsafe fn push(&self, entry: &squeue::Entry) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        if ring.submission().is_full() {
            ring.submit()?;
        }
        let mut sq = ring.submission();
        // SAFETY: the caller guarantees that what the entry points to outlives the operation.
        unsafe { sq.push(entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full after a submit"))
    }

    /// Turns one completion into events; returns the descriptor and mask to re-arm, if the
    /// kernel ended a poll that is still wanted.
    fn complete(&self, cqe: &cqueue::Entry, events: &mut Vec<Event>) -> Option<(RawFd, u64)> {
        let token = cqe.user_data();
        if token == REMOVE_TOKEN {
            return None; // a cancellation's own result: -ENOENT if the poll had already ended
        }
        let res = cqe.result();
        if token & OP_TAG != 0 && token != NOTIFY_TOKEN {
            self.ops_done.borrow_mut().push((token, res, cqe.flags()));
            return None;
        }
        let ended = !cqueue::more(cqe.flags());
        if res >= 0 {
            events.push(event(token, res as u32));
        } else if res != -libc::ECANCELED {
            // The poll failed. Whichever task waits runs and finds the real error in its
            // syscall; not re-armed, since it would fail again.
            let err = io::Error::from_raw_os_error(-res);
            log::error!("mini: io_uring poll failed (token {token:#x}): {err}");
            events.push(Event { token, readable: true, writable: true, read_closed: false });
            return None;
        }
        if !ended {
            return None;
        }
        let fd = self.fds.borrow_mut().remove(&token)?;
        self.tokens.borrow_mut().remove(&fd);
        Some((fd, token))
    }
}

/// What the completion driver ([`crate::uring`]) asks of the ring it shares with the polls.
impl UringPoller {
    /// Queues a driver operation; the next wait submits it with everything else.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push): whatever `entry` points to must stay valid until its last
    /// completion (the driver's op slots own it until then).
    pub(crate) unsafe fn push_op(&self, entry: &squeue::Entry) -> io::Result<()> {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { self.push(entry) }
    }

    /// Submits what is queued now, without waiting (a close must not wait for the next turn:
    /// the runtime may not run one soon, or ever).
    pub(crate) fn flush(&self) -> io::Result<()> {
        match self.ring.borrow_mut().submit() {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves the driver's completions gathered by the last waits into `into`.
    pub(crate) fn take_op_completions(&self, into: &mut Vec<OpCompletion>) {
        std::mem::swap(&mut *self.ops_done.borrow_mut(), into);
    }

    /// Whether the kernel supports every operation in `codes` (`IORING_OP_*`).
    pub(crate) fn supports(&self, codes: &[u8]) -> io::Result<bool> {
        let mut probe = Probe::new();
        self.ring.borrow().submitter().register_probe(&mut probe)?;
        Ok(codes.iter().all(|&code| probe.is_supported(code)))
    }

    /// Registers a provided buffer ring of `entries` entries at `addr` as buffer group `group`.
    ///
    /// # Safety
    ///
    /// `addr` must point to `entries` ring entries, page-aligned, that stay valid for as long
    /// as the ring may read them (until unregistered, or the ring is closed).
    pub(crate) unsafe fn register_buf_ring(
        &self,
        addr: u64,
        entries: u16,
        group: u16,
    ) -> io::Result<()> {
        let ring = self.ring.borrow();
        // SAFETY: the caller's guarantee, passed on.
        unsafe { ring.submitter().register_buf_ring_with_flags(addr, entries, group, 0) }
    }

    /// Unregisters buffer group `group`: the kernel reads its ring no more.
    pub(crate) fn unregister_buf_ring(&self, group: u16) -> io::Result<()> {
        self.ring.borrow().submitter().unregister_buf_ring(group)
    }
}

impl Poller for UringPoller {
    fn as_uring(&self) -> Option<&UringPoller> {
        Some(self)
    }

    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Both directions and hang-up, edge-triggered, for the socket's whole life. Only queued:
    /// the next wait submits it (a fresh socket is tried before it is waited for).
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.arm(fd, token, (libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP) as u32)
    }

    /// Edge-triggered with both directions from the start: nothing to change.
    fn set_interest(&self, _fd: RawFd, _token: u64, _interest: Interest) -> io::Result<()> {
        Ok(())
    }

    fn tracks_interest(&self) -> bool {
        false
    }

    /// Cancels the poll and submits at once, asking for completions (`GETEVENTS`) so that the
    /// kernel finishes the poll now and drops its reference to the socket before the caller
    /// closes it.
    ///
    /// `IORING_OP_ASYNC_CANCEL`, not `IORING_OP_POLL_REMOVE`: a removal fails (`-EALREADY`)
    /// while the poll's wake-up is queued as task work (with `DEFER_TASKRUN`, until the next
    /// wait: any socket that received data since), and the poll would stay armed, holding the
    /// socket open after its descriptor is closed. A cancellation marks the poll, and the queued
    /// work ends it.
    fn delete(&self, fd: RawFd) -> io::Result<()> {
        let Some(token) = self.tokens.borrow_mut().remove(&fd) else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        self.fds.borrow_mut().remove(&token);
        let entry = opcode::AsyncCancel::new(token).build().user_data(REMOVE_TOKEN);
        // SAFETY: a cancellation points to no memory: it names the poll by its user_data.
        unsafe { self.push(&entry) }?;
        let mut ring = self.ring.borrow_mut();
        let queued = ring.submission().len() as u32;
        let getevents = io_uring::EnterFlags::GETEVENTS.bits();
        // SAFETY: no argument pointer (`None`); the counts and the flag are plain values. The
        // entries submitted were pushed through `push`, whose callers argued their safety.
        let res = unsafe { ring.submitter().enter::<libc::sigset_t>(queued, 0, getevents, None) };
        match res {
            Err(e) if e.raw_os_error() != Some(libc::EINTR) => Err(e),
            _ => Ok(()),
        }
    }

    fn wait(&self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        // 1. Submit, and sleep only if nothing has completed yet and we may.
        let sleep = timeout != Some(Duration::ZERO) && ring.completion().is_empty();
        let res = if sleep {
            let ts = timeout.map(types::Timespec::from);
            let mut args = types::SubmitArgs::new();
            if let Some(ts) = &ts {
                args = args.timespec(ts);
            }
            ring.submitter().submit_with_args(1, &args)
        } else {
            let sq = ring.submission();
            let idle = sq.is_empty() && !sq.taskrun() && !sq.cq_overflow();
            drop(sq);
            // Nothing to submit and no completion waiting in the kernel: no syscall at all.
            if idle {
                Ok(0)
            } else {
                ring.submit()
            }
        };
        match res {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME | libc::EBUSY)) => {
            }
            Err(e) => return Err(e),
        }
        // 2. Read every completion; re-arm the polls the kernel ended.
        let mut rearm = Vec::new();
        for cqe in ring.completion() {
            rearm.extend(self.complete(&cqe, events));
        }
        drop(ring);
        for (fd, token) in rearm {
            let mask = if token == NOTIFY_TOKEN {
                libc::POLLIN
            } else {
                libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP
            };
            self.arm(fd, token, mask as u32)?;
            self.rearmed.set(self.rearmed.get() + 1);
        }
        Ok(())
    }
}

/// A poll completion's mask as an [`Event`], as epoll's are read.
fn event(token: u64, mask: u32) -> Event {
    let bits = mask as libc::c_short;
    let failed = bits & (libc::POLLERR | libc::POLLHUP) != 0;
    let read_closed = failed || bits & libc::POLLRDHUP != 0;
    Event {
        token,
        readable: read_closed || bits & libc::POLLIN != 0,
        writable: failed || bits & libc::POLLOUT != 0,
        read_closed,
    }
}

/// Whether `err`, from [`UringPoller::new`], means io_uring is unavailable here (rather than,
/// say, out of descriptors), so that falling back to epoll makes sense.
pub(crate) fn is_unavailable(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported | io::ErrorKind::OutOfMemory
    )
}

/// An error saying that io_uring is unavailable, and why.
fn unavailable(kind: io::ErrorKind, why: String) -> io::Error {
    io::Error::new(kind, format!("io_uring is unavailable: {why}"))
}

/// Names the cause of a failed `io_uring_setup`.
fn setup_error(e: io::Error) -> io::Error {
    let code = e.raw_os_error().unwrap_or(0);
    let (kind, why) = match code {
        libc::EPERM => (io::ErrorKind::PermissionDenied, eperm_cause()),
        libc::ENOSYS => (io::ErrorKind::Unsupported, "the kernel has no io_uring".to_owned()),
        libc::EINVAL => {
            (io::ErrorKind::Unsupported, "the kernel's io_uring is too old (before 5.13)".into())
        }
        libc::ENOMEM => (
            io::ErrorKind::OutOfMemory,
            "not enough locked memory for the ring (RLIMIT_MEMLOCK, `ulimit -l`)".to_owned(),
        ),
        _ => return e,
    };
    unavailable(kind, format!("io_uring_setup failed with {} ({e}): {why}", errno_name(code)))
}

/// Why `io_uring_setup` says EPERM: the sysctl if it is set, else most likely seccomp.
fn eperm_cause() -> String {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled");
    match sysctl.as_deref().map(str::trim) {
        Ok(n @ ("1" | "2")) => format!("the sysctl kernel.io_uring_disabled is {n}"),
        _ => "a seccomp filter forbids it (as the default profiles of Docker and containerd do)"
            .to_owned(),
    }
}

fn errno_name(code: i32) -> &'static str {
    match code {
        libc::EPERM => "EPERM",
        libc::ENOSYS => "ENOSYS",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        _ => "an error",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    use super::*;

    /// Waits until every token of `want` has been reported readable (other events are
    /// ignored); false after a second without them all.
    fn all_readable(poller: &UringPoller, want: &BTreeSet<u64>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        while !want.is_subset(&seen) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            events.clear();
            poller.wait(&mut events, Some(left)).unwrap();
            seen.extend(events.iter().filter(|e| e.readable).map(|e| e.token));
        }
        true
    }

    /// With a completion ring far smaller than the sockets that become ready at once, the
    /// kernel ends multishot polls; each is re-armed, and no socket misses a later edge.
    #[test]
    fn polls_ended_by_a_full_completion_ring_are_rearmed_and_miss_nothing() {
        let poller = UringPoller::with_rings(4, 4).unwrap();
        let pairs: Vec<_> = (0..32).map(|_| UnixStream::pair().unwrap()).collect();
        let tokens: BTreeSet<u64> = (0..pairs.len() as u64).collect();
        for ((ours, _), token) in pairs.iter().zip(&tokens) {
            poller.add(ours.as_raw_fd(), *token).unwrap();
        }
        for round in 0..3 {
            for (_, theirs) in &pairs {
                (&*theirs).write_all(b"x").unwrap();
            }
            assert!(all_readable(&poller, &tokens), "round {round}: a socket's edge was lost");
        }
        assert!(poller.rearmed.get() > 0, "the ring never filled: the test tests nothing");
    }

    /// A deleted socket's poll is cancelled, not re-armed, and its late events name a token
    /// the reactor no longer has; the others go on.
    #[test]
    fn a_deleted_socket_is_no_longer_reported() {
        let poller = UringPoller::new().unwrap();
        let (a, peer_a) = UnixStream::pair().unwrap();
        let (b, peer_b) = UnixStream::pair().unwrap();
        poller.add(a.as_raw_fd(), 1).unwrap();
        poller.add(b.as_raw_fd(), 2).unwrap();
        let mut events = Vec::new();
        poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        poller.delete(a.as_raw_fd()).unwrap();
        (&peer_a).write_all(b"x").unwrap();
        (&peer_b).write_all(b"x").unwrap();
        assert!(all_readable(&poller, &BTreeSet::from([2])));
        events.clear();
        poller.wait(&mut events, Some(Duration::from_millis(50))).unwrap();
        assert!(events.iter().all(|e| e.token != 1), "{events:?}");
        assert!(poller.fds.borrow().get(&1).is_none() && poller.rearmed.get() == 0);
    }
}
