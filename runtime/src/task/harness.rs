//! The wrapper around every spawned future: catches its panic and delivers the result to the
//! [`JoinHandle`](super::JoinHandle). (An abort is the executor's business: it drops an aborted
//! task unpolled, and the harness, dropped unfinished, reports it cancelled.)

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::join::{JoinError, JoinState};

pin_project! {
    /// A spawned future plus the slot its result goes to. Completes (so the executor drops it)
    /// when the future completes or panics.
    ///
    /// Aligned to a cache line, so that its box starts on one, and laid out in field order
    /// (`repr(C)`), the future first: a future whose per-poll state fits in its first 64 bytes
    /// is then one cache line per poll, with the join state, used only when the task ends,
    /// after it. A busy server polls thousands of tasks in turn, each last touched a whole
    /// round earlier; every line a poll touches is a likely miss (tokio aligns its task cells
    /// too). (Left to itself, the compiler put the join state first.)
    #[repr(C, align(64))]
    pub(crate) struct Harness<F: Future> {
        #[pin]
        future: F,
        state: Rc<JoinState<F::Output>>,
    }

    impl<F: Future> PinnedDrop for Harness<F> {
        /// Dropped unfinished (aborted, or its runtime was dropped): the handle reports it
        /// cancelled rather than waiting forever.
        fn drop(this: Pin<&mut Self>) {
            if !this.state.is_finished() {
                this.state.finish(Err(JoinError::cancelled()));
            }
        }
    }
}

impl<F: Future> Harness<F> {
    pub(crate) fn new(future: F, state: Rc<JoinState<F::Output>>) -> Self {
        Harness { future, state }
    }
}

impl<F: Future> Future for Harness<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        // Unwind safety: after a panic the future is never polled again (we return Ready and
        // the executor drops it), so no broken invariant of it can be observed.
        match catch_unwind(AssertUnwindSafe(|| this.future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                this.state.finish(Ok(output));
                Poll::Ready(())
            }
            Err(payload) => {
                log::error!("mini: a task panicked; its JoinHandle reports it");
                this.state.finish(Err(JoinError::panic(payload)));
                Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_future_starts_the_harness_and_a_cache_line() {
        // An `async` block, like most tasks: its state's tag is a niche, and without `repr(C)`
        // the compiler placed such a future after the join state.
        let future = async {
            let kept = [7u64; 9];
            crate::yield_now().await;
            kept
        };
        let harness = Harness::new(future, Rc::new(JoinState::new()));
        let start = std::ptr::addr_of!(harness) as usize;
        assert_eq!(std::ptr::addr_of!(harness.future) as usize, start);
        assert_eq!(start % 64, 0);
    }
}
