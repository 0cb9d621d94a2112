//! The reactor: turns "the OS says socket 7 is readable" into "wake the task that waits for it".
//!
//! It owns three things:
//!
//! - the **poller** ([`crate::sys`]), which waits for many sockets at once;
//! - the **registry**, a [`Slab`] with one [`IoState`] per registered socket: its cached
//!   readiness and the wakers of the tasks waiting to read and to write. The poller's token for a
//!   socket is its slab key, generation included, so an event that arrives for a socket that was
//!   closed (and whose descriptor number may already belong to a new socket) finds no entry and
//!   is dropped, instead of waking the new owner's task;
//! - the **timers**, whose earliest deadline bounds how long the poller may sleep.
//!
//! [`Reactor::turn`] is one round: wait once ([`wait`](Reactor::wait)), then record readiness
//! and wake the waiting tasks ([`wake_ready`](Reactor::wake_ready)). The executor calls it with
//! a zero timeout now and then while it has work, to let I/O and timers in; when it has nothing
//! to run it calls the two halves itself, to say between them that it is awake again.
//!
//! One wait may report a thousand sockets. `wake_ready` hands them out [`EVENT_CHUNK`] at a
//! time, and the executor runs the tasks it woke before it asks for the next few
//! ([`events_left`](Reactor::events_left)): so a task runs while its socket's state and its
//! own memory, just touched by the wake, are still in the CPU's cache, as in a hand-written
//! loop that serves each event as it reads it, rather than touching each socket's memory twice,
//! far apart, and missing the cache both times.

mod source;
mod timers;
mod waiters;

pub(crate) use source::{Direction, Source};
pub(crate) use timers::TimerKey;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::slab::{Key, Slab};
use crate::sys::{Backend, Event, Interest, Notifier, Poller, NOTIFY_TOKEN};
use timers::Timers;
use waiters::Waiters;

/// How many events [`Reactor::wake_ready`] dispatches at a time: few enough that the state of
/// the sockets and tasks it touches is still in cache when those tasks run, enough that the
/// executor's loop around it costs little per event.
const EVENT_CHUNK: usize = 16;

/// The registry's entry for one socket. Shared (`Rc`) between the registry, which the reactor
/// consults when an event arrives, and the socket's [`Source`], which consults it on every
/// read or write; both live on the runtime's thread.
///
/// One cache line, aligned: a busy server touches it twice per message (the event, then the
/// task's read and write), with the other connections' work in between, and a second line
/// would be a second miss each time. (Its `Rc` allocation is then 128 bytes: the reference
/// counts, touched only at register and deregister, have the first line to themselves.)
#[repr(align(64))]
pub(crate) struct IoState {
    fd: RawFd,
    /// The registry key, whose `u64` form is this socket's poller token.
    key: Key,
    /// Directions the poller has reported ready since a syscall last said `EWOULDBLOCK` (or a
    /// short read or write showed the kernel buffer empty or full).
    /// Starts as ready both ways: a fresh socket is tried at once rather than waited for.
    ready: Cell<Interest>,
    /// Set once the poller reports that the peer will send no more; never cleared, so that a
    /// reader that cleared `ready.read` after a short read still sees the end of the stream
    /// (edge-triggered epoll reports it only once).
    read_closed: Cell<bool>,
    /// Directions in which a task is waiting; kept in step with the poller's interest for the
    /// backends that track it (poll, select); unused with epoll.
    waiting: Cell<Interest>,
    /// The tasks waiting to read and to write.
    waiters: Waiters,
}

impl std::fmt::Debug for IoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The waiters are left out: their `Cell`s do not lend their contents.
        f.debug_struct("IoState")
            .field("fd", &self.fd)
            .field("key", &self.key)
            .field("ready", &self.ready.get())
            .field("read_closed", &self.read_closed.get())
            .field("waiting", &self.waiting.get())
            .finish_non_exhaustive()
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Reactor {
    poller: Box<dyn Poller>,
    /// `poller.tracks_interest()`, asked once.
    tracks_interest: bool,
    backend: Backend,
    registry: RefCell<Slab<Rc<IoState>>>,
    timers: RefCell<Timers>,
    /// Reused between turns so that waiting allocates nothing.
    events: RefCell<Vec<Event>>,
    /// How many of `events` have been dispatched.
    dispatched: Cell<usize>,
    wakers: RefCell<Vec<Waker>>,
    /// The completion driver ([`crate::uring`]), made by the first completion-based socket.
    #[cfg(feature = "uring")]
    driver: std::cell::OnceCell<crate::uring::Driver>,
}

impl Reactor {
    /// A reactor on `backend`, or (`None`) on the best backend the kernel allows.
    pub(crate) fn new(backend: Option<Backend>) -> io::Result<Reactor> {
        let (backend, poller) = match backend {
            Some(backend) => (backend, crate::sys::new_poller(backend)?),
            None => crate::sys::new_default_poller()?,
        };
        Ok(Reactor {
            tracks_interest: poller.tracks_interest(),
            poller,
            backend,
            registry: RefCell::new(Slab::new()),
            timers: RefCell::new(Timers::default()),
            events: RefCell::new(Vec::new()),
            dispatched: Cell::new(0),
            wakers: RefCell::new(Vec::new()),
            #[cfg(feature = "uring")]
            driver: std::cell::OnceCell::new(),
        })
    }

    /// The io_uring poller and the completion driver sharing its ring (made on first use), or
    /// `Unsupported` if this reactor's backend is not uring.
    #[cfg(feature = "uring")]
    pub(crate) fn uring_driver(
        &self,
    ) -> io::Result<(&crate::sys::UringPoller, &crate::uring::Driver)> {
        let Some(poller) = self.poller.as_uring() else {
            let what = format!(
                "completion-based sockets need the uring backend; this runtime's is {}",
                self.backend
            );
            return Err(io::Error::new(io::ErrorKind::Unsupported, what));
        };
        if let Some(driver) = self.driver.get() {
            return Ok((poller, driver));
        }
        let driver = crate::uring::Driver::new(poller)?;
        Ok((poller, self.driver.get_or_init(|| driver)))
    }

    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        self.poller.notifier()
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits once for I/O or the next timer, at most `max_wait` (`None`: as long as needed),
    /// and wakes the tasks of the first [`EVENT_CHUNK`] events (and of expired timers, if no
    /// events are left after those).
    pub(crate) fn turn(&self, max_wait: Option<Duration>) -> io::Result<()> {
        self.wait(max_wait)?;
        self.wake_ready();
        Ok(())
    }

    /// The first half of a turn: waits in the poller for I/O or the next timer, at most
    /// `max_wait`, and keeps the events for [`wake_ready`](Self::wake_ready).
    pub(crate) fn wait(&self, max_wait: Option<Duration>) -> io::Result<()> {
        // The executor hands out every event of a wait before it waits again (step 3 of
        // `Executor::block_on`). Should it not, they are handed out now and this call returns
        // without waiting: overwriting them would lose their wake-ups, and sleeping would leave
        // the tasks they woke waiting.
        if self.events_left() {
            while self.events_left() {
                self.wake_ready();
            }
            return Ok(());
        }

        // 1. Sleep no longer than until the earliest timer (the clock is read only if one is
        //    set: most turns of a busy server have none).
        let until_timer = self
            .timers
            .borrow()
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = match (max_wait, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };

        // 2. Wait in the poller.
        let mut events = self.events.borrow_mut();
        events.clear();
        self.dispatched.set(0);
        trace!("reactor: waiting for events (timeout {timeout:?})");
        self.poller.wait(&mut events, timeout)
    }

    /// Whether the last wait reported events that [`wake_ready`](Self::wake_ready) has not
    /// dispatched yet.
    pub(crate) fn events_left(&self) -> bool {
        self.dispatched.get() < self.events.borrow().len()
    }

    /// The second half of a turn: records the readiness reported by the next [`EVENT_CHUNK`]
    /// events of the last wait, and wakes the tasks waiting for it; after the last event, wakes
    /// the tasks of expired timers too.
    pub(crate) fn wake_ready(&self) {
        // 0. The completion driver's operations (all at once: they are few per wait).
        #[cfg(feature = "uring")]
        if let (Some(driver), Some(poller)) = (self.driver.get(), self.poller.as_uring()) {
            driver.dispatch(poller);
        }
        let events = self.events.borrow();
        let start = self.dispatched.get();
        let end = events.len().min(start + EVENT_CHUNK);
        // Counted before the wakes, so that each event is handled once whatever happens next.
        self.dispatched.set(end);

        // 3. Record readiness and collect the wakers of the tasks waiting for it.
        let mut wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        let registry = self.registry.borrow();
        // First only read each socket's state: the reads do not depend on one another, so the
        // CPU overlaps their cache misses (a socket's state was last touched a whole round of
        // connections ago), where the loop below would wait for each in turn.
        for event in &events[start..end] {
            if let Some(state) = registry.get(Key::from_u64(event.token)) {
                std::hint::black_box(state.ready.get());
            }
        }
        for event in &events[start..end] {
            if event.token == NOTIFY_TOKEN {
                trace!("reactor: woken by another thread");
                self.notifier().reset();
                continue;
            }
            let Some(state) = registry.get(Key::from_u64(event.token)) else {
                trace!("reactor: dropping event for a closed socket (token {:#x})", event.token);
                continue;
            };
            trace!(
                "reactor: fd {} is ready (read: {}, write: {})",
                state.fd,
                event.readable,
                event.writable
            );
            self.dispatch(state, event, &mut wakers);
        }
        drop(registry);

        // 4. Expired timers, once the events are all handed out.
        if end == events.len() {
            let mut timers = self.timers.borrow_mut();
            if timers.next_deadline().is_some() {
                timers.take_expired(Instant::now(), &mut wakers);
            }
        }

        // 5. Wake outside every borrow: a waker may run foreign code.
        drop(events);
        for waker in wakers.drain(..) {
            waker.wake();
        }
        *self.wakers.borrow_mut() = wakers;
    }

    fn dispatch(&self, state: &IoState, event: &Event, wakers: &mut Vec<Waker>) {
        if event.read_closed {
            state.read_closed.set(true);
        }
        let mut ready = state.ready.get();
        let mut waiting = state.waiting.get();
        if event.readable {
            ready.read = true;
            waiting.read = false;
            take_waiters(state, Direction::Read, wakers);
        }
        if event.writable {
            ready.write = true;
            waiting.write = false;
            take_waiters(state, Direction::Write, wakers);
        }
        state.ready.set(ready);
        self.set_waiting(state, waiting);
    }

    /// Keeps the poller's interest equal to the directions in which a task waits (for the
    /// backends that watch only those).
    #[inline]
    fn set_waiting(&self, state: &IoState, waiting: Interest) {
        if self.tracks_interest {
            self.update_interest(state, waiting);
        }
    }

    fn update_interest(&self, state: &IoState, waiting: Interest) {
        if state.waiting.replace(waiting) != waiting {
            let token = state.key.to_u64();
            if let Err(e) = self.poller.set_interest(state.fd, token, waiting) {
                // The next syscall on this socket reports the real problem; say why here.
                log::error!("mini: cannot change interest in fd {}: {e}", state.fd);
            }
        }
    }

    fn register(&self, fd: RawFd) -> io::Result<Rc<IoState>> {
        let all = Interest { read: true, write: true };
        let mut registry = self.registry.borrow_mut();
        let mut state = None;
        let key = registry.insert_with(|key| {
            let s = Rc::new(IoState {
                fd,
                key,
                ready: Cell::new(all),
                read_closed: Cell::new(false),
                waiting: Cell::new(Interest::default()),
                waiters: Waiters::default(),
            });
            state = Some(s.clone());
            s
        });
        if let Err(e) = self.poller.add(fd, key.to_u64()) {
            registry.remove(key);
            return Err(e);
        }
        trace!("reactor: registered fd {fd} as token {:#x}", key.to_u64());
        Ok(state.expect("insert_with called its closure"))
    }

    fn deregister(&self, state: &IoState) {
        if let Err(e) = self.poller.delete(state.fd) {
            log::error!("mini: cannot stop watching fd {}: {e}", state.fd);
        }
        self.registry.borrow_mut().remove(state.key);
        trace!("reactor: deregistered fd {}", state.fd);
    }

    pub(crate) fn insert_timer(&self, deadline: Instant, waker: Waker) -> TimerKey {
        self.timers.borrow_mut().insert(deadline, waker)
    }

    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) -> bool {
        self.timers.borrow_mut().update(key, waker)
    }

    /// Gives a pending timer a new deadline (same waker); returns its new key.
    pub(crate) fn move_timer(&self, key: TimerKey, deadline: Instant) -> TimerKey {
        self.timers.borrow_mut().reschedule(key, deadline)
    }

    pub(crate) fn remove_timer(&self, key: TimerKey) {
        self.timers.borrow_mut().remove(key);
    }
}

#[cfg(feature = "uring")]
impl Drop for Reactor {
    fn drop(&mut self) {
        if let (Some(driver), Some(poller)) = (self.driver.get(), self.poller.as_uring()) {
            driver.shut_down(poller);
        }
    }
}

/// Moves the wakers of the tasks waiting on `state` in `dir` (now ready) to `wakers`.
#[inline]
fn take_waiters(state: &IoState, dir: Direction, wakers: &mut Vec<Waker>) {
    let woken = state.waiters.take_all(dir, wakers);
    if woken > 0 {
        trace!("reactor: waking the {}{} of fd {}", dir.waiter(), plural(woken), state.fd);
    }
}

/// `s` after a count other than one, for trace output.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sockets_state_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<super::IoState>(), 64);
    }
}
