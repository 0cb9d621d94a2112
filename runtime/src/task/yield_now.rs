//! [`yield_now`]: letting other tasks run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Gives the other ready tasks (and the reactor) a turn before this task continues.
///
/// A task that computes for long without awaiting anything starves every other task on the
/// runtime, since nothing can take the thread from it; awaiting this in such a loop is the cure.
///
/// ```
/// mini::block_on(async {
///     for _ in 0..3 {
///         mini::yield_now().await;
///     }
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Queue ourselves at the back, behind every task that is already waiting to run, and
        // let the executor look for I/O and timers before we run again.
        crate::coop::note_yield();
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
