//! [`JoinHandle`]: awaiting a task's result, or aborting it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::executor::Executor;
use crate::slab::Key;

/// The slot shared by a task's harness (which fills it) and its handle (which empties it).
#[derive(Debug)]
pub(crate) struct JoinState<T> {
    result: RefCell<Option<Result<T, JoinError>>>,
    /// The task that awaits the handle, woken when the result arrives.
    waiter: RefCell<Option<Waker>>,
    finished: Cell<bool>,
}

impl<T> JoinState<T> {
    pub(crate) fn new() -> Self {
        JoinState {
            result: RefCell::new(None),
            waiter: RefCell::new(None),
            finished: Cell::new(false),
        }
    }

    pub(crate) fn finish(&self, result: Result<T, JoinError>) {
        *self.result.borrow_mut() = Some(result);
        self.finished.set(true);
        // Taken first, so that no borrow is held while the waker runs.
        let waiter = self.waiter.borrow_mut().take();
        if let Some(waker) = waiter {
            waker.wake();
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.get()
    }
}

/// An owned permission to await a spawned task's output, returned by [`spawn`](crate::spawn).
///
/// Awaiting it yields `Ok(output)`, or a [`JoinError`] if the task panicked or was aborted.
/// Dropping it detaches the task, which keeps running.
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
    /// Where the task is, for `abort`; weak, so that a handle kept after its runtime was
    /// dropped keeps nothing alive.
    executor: Weak<Executor>,
    task: Key,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Rc<JoinState<T>>, executor: Weak<Executor>, task: Key) -> Self {
        JoinHandle { state, executor, task }
    }

    /// Asks the task to stop. It is dropped the next time the executor reaches it, without
    /// being polled again, and awaiting this handle then yields a cancelled [`JoinError`].
    /// Has no effect on a task that already finished.
    ///
    /// ```
    /// mini::block_on(async {
    ///     let task = mini::spawn(std::future::pending::<()>());
    ///     task.abort();
    ///     assert!(task.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        if let (false, Some(executor)) = (self.state.finished.get(), self.executor.upgrade()) {
            executor.abort(self.task);
        }
    }

    /// Whether the task has finished: completed, panicked or been aborted.
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.state.result.borrow_mut().take() {
            return Poll::Ready(result);
        }
        assert!(!self.state.finished.get(), "JoinHandle polled after it returned its result");
        let mut waiter = self.state.waiter.borrow_mut();
        match &*waiter {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.is_finished()).finish()
    }
}

/// Why a task produced no output: it panicked, or it was aborted.
pub struct JoinError {
    panic: Option<Box<dyn Any + Send + 'static>>,
}

impl JoinError {
    pub(crate) fn cancelled() -> Self {
        JoinError { panic: None }
    }

    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError { panic: Some(payload) }
    }

    /// The task was stopped by [`JoinHandle::abort`].
    pub fn is_cancelled(&self) -> bool {
        self.panic.is_none()
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        self.panic.is_some()
    }

    /// The value the task panicked with, to re-raise it with [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task was cancelled rather than panicked.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.panic.expect("JoinError::into_panic on a cancelled task")
    }

    fn panic_message(&self) -> Option<&str> {
        let payload = self.panic.as_ref()?;
        payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.panic, self.panic_message()) {
            (None, _) => write!(f, "task was cancelled"),
            (Some(_), Some(msg)) => write!(f, "task panicked: {msg}"),
            (Some(_), None) => write!(f, "task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinError({self})")
    }
}

impl std::error::Error for JoinError {}
