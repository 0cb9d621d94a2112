//! A [`Source`]: one non-blocking OS object (a socket) registered with the reactor.
//!
//! This is where a future meets the OS. Every I/O method follows the same steps:
//!
//! 1. If the reactor has not seen the socket ready in this direction, leave the task's waker in
//!    the registry and return `Pending`.
//! 2. Otherwise try the syscall. Data or an error: return it.
//! 3. `EWOULDBLOCK`: the readiness we remembered is used up. Forget it and go back to step 1.
//!
//! Readiness is remembered because epoll is edge-triggered: it reports a socket once when it
//! becomes ready, not again on every wait. Forgetting it *only* on `EWOULDBLOCK` (or on a short
//! read, which proves the kernel buffer is empty) means no event is ever missed.
//!
//! Before step 1, each operation spends one unit of the task's [budget](crate::coop), so that a
//! task whose socket is always ready still yields now and then. There is no race
//! between the syscall and forgetting: the reactor records events only inside `turn`, which never
//! runs while a task is being polled.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{IoState, Reactor};
use crate::sys::Interest;

/// One direction of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// `read` or `write`, for trace output.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }

    /// `reader` or `writer`, for trace output.
    pub(crate) fn waiter(self) -> &'static str {
        match self {
            Direction::Read => "reader",
            Direction::Write => "writer",
        }
    }

    /// Sets this direction's flag in `interest` (readiness, or where a task waits).
    pub(crate) fn set(self, interest: &mut Interest, on: bool) {
        match self {
            Direction::Read => interest.read = on,
            Direction::Write => interest.write = on,
        }
    }
}

/// A registered socket; deregistered when dropped, before the socket itself is closed.
#[derive(Debug)]
pub(crate) struct Source<T: AsRawFd> {
    state: Rc<IoState>,
    reactor: Rc<Reactor>,
    // Declared last so it drops (closes) after `Drop::drop` has deregistered it.
    io: T,
}

impl<T: AsRawFd> Source<T> {
    /// Registers `io`, which must already be non-blocking, with the current runtime's reactor.
    pub(crate) fn new(io: T) -> io::Result<Source<T>> {
        let reactor = crate::runtime::current("a socket").reactor;
        let state = reactor.register(io.as_raw_fd())?;
        Ok(Source { state, reactor, io })
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    /// Runs `op` (a non-blocking syscall on the socket) until it stops saying `EWOULDBLOCK`,
    /// waiting for readiness in `dir` between tries. See the module docs.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if !crate::coop::spend(cx) {
            return Poll::Pending;
        }
        loop {
            if !self.is_ready(dir) {
                self.wait(cx, dir);
                return Poll::Pending;
            }
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_ready(dir),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// Runs `op` once, without waiting: `WouldBlock` if the socket is not known to be ready in
    /// `dir` or the syscall says so (then the readiness is forgotten, as in `poll_io`).
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        op: impl FnOnce(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        if !self.is_ready(dir) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let result = op(&self.io);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.clear_ready(dir);
        }
        result
    }

    /// Ready when the reactor has seen the socket ready in `dir` (or it has not been tried yet).
    /// Spends budget like an operation: a loop of `readable` and `try_read` must yield too.
    #[inline]
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        if !crate::coop::spend(cx) {
            return Poll::Pending;
        }
        if self.is_ready(dir) {
            return Poll::Ready(Ok(()));
        }
        self.wait(cx, dir);
        Poll::Pending
    }

    /// Forgets readiness in `dir`: the syscall said `EWOULDBLOCK`, or a short read or write
    /// proved the kernel buffer empty (or full). The end of the stream is never forgotten.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        let mut ready = self.state.ready.get();
        dir.set(&mut ready, false);
        self.state.ready.set(ready);
    }

    #[inline]
    fn is_ready(&self, dir: Direction) -> bool {
        let ready = self.state.ready.get();
        match dir {
            Direction::Read => ready.read || self.state.read_closed.get(),
            Direction::Write => ready.write,
        }
    }

    /// Leaves the task's waker where the reactor will find it when the socket becomes ready.
    /// Out of line: the callers' fast path (the socket is ready) stays small enough to inline.
    #[inline(never)]
    fn wait(&self, cx: &mut Context<'_>, dir: Direction) {
        let state = &self.state;
        state.waiters.add(dir, cx.waker());
        trace!("fd {}: {} would block; the task waits", state.fd, dir.verb());
        let mut waiting = state.waiting.get();
        dir.set(&mut waiting, true);
        self.reactor.set_waiting(state, waiting);
    }
}

impl<T: AsRawFd> Drop for Source<T> {
    fn drop(&mut self) {
        self.reactor.deregister(&self.state);
    }
}
