//! Tasks: futures that the runtime polls alongside the main one.
//!
//! [`spawn`] boxes a future, wraps it in a harness that catches panics, and gives it to the
//! executor. The harness and the [`JoinHandle`] share a small [`JoinState`](join) slot: the
//! harness puts the task's result there and wakes whoever awaits the handle.
//! [`JoinHandle::abort`] marks the task in the executor's table, which then drops it unpolled,
//! and the harness, dropped unfinished, reports it cancelled.

mod harness;
mod join;
mod yield_now;

pub use join::{JoinError, JoinHandle};
pub use yield_now::{yield_now, YieldNow};

use std::future::Future;
use std::rc::Rc;

/// Starts running `future` as a new task on the current runtime and returns a handle to await
/// its output.
///
/// The task runs concurrently with the caller: it is first polled when the caller next yields
/// to the runtime. Dropping the [`JoinHandle`] lets the task run on, detached. A task that is
/// still unfinished when the runtime is dropped is dropped with it.
///
/// # Panics
///
/// Outside a runtime, that is, when not called from within [`block_on`](crate::block_on).
///
/// # Examples
///
/// ```
/// let answer = mini::block_on(async {
///     let task = mini::spawn(async { 6 * 7 });
///     task.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let handle = crate::runtime::current("mini::spawn");
    let state = Rc::new(join::JoinState::new());
    let key = handle.executor.spawn(Box::pin(harness::Harness::new(future, state.clone())));
    JoinHandle::new(state, Rc::downgrade(&handle.executor), key)
}
