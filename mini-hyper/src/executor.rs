//! [`MiniExecutor`]: hyper's `rt::Executor` on [`mini::spawn`].

use std::future::Future;

/// Spawns hyper's background futures as mini tasks. They need not be `Send`: the task runs on
/// the runtime's one thread. Must be used inside the runtime (within `mini::block_on`), as
/// [`mini::spawn`] must.
///
/// HTTP/1 needs no executor (its connection is one future, which the caller spawns); HTTP/2
/// spawns a task per stream through this.
#[derive(Clone, Copy, Debug, Default)]
pub struct MiniExecutor;

impl<F> hyper::rt::Executor<F> for MiniExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        // Detached: hyper keeps no handle, and learns of the end through its own channels.
        drop(mini::spawn(future));
    }
}
