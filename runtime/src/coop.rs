//! Cooperative scheduling: a budget of I/O operations per task poll.
//!
//! A single-threaded runtime cannot take the thread away from a task; a task gives it back only
//! by returning `Pending`. A task whose socket is always ready (a client that floods in both
//! directions) would never do so: every read finds data, every write finds room, and every other
//! connection and timer would starve. So each poll of a task gets a budget of [`BUDGET`] I/O
//! operations. When it is spent, the next operation returns `Pending` *and wakes the task at
//! once*: the task goes to the back of the run queue, the others and the reactor get their turn,
//! and it resumes where it left off. Tokio does the same (its "coop budget", 128 operations);
//! 128 reads of 16 KiB is 2 MiB, enough to amortise the yield and small enough to keep the
//! latency of other connections low.

use std::cell::Cell;
use std::task::Context;

/// I/O operations one poll of a task may complete before it must yield.
pub(crate) const BUDGET: u32 = 128;

thread_local! {
    static REMAINING: Cell<u32> = const { Cell::new(BUDGET) };
    /// Set when a task gave the thread back on purpose (budget spent, `yield_now`): the
    /// executor then looks for I/O and timers before it runs anything again, so a yield lets
    /// the sockets and timers in, not only the other queued tasks.
    static YIELDED: Cell<bool> = const { Cell::new(false) };
}

/// Records that the task being polled yields on purpose.
pub(crate) fn note_yield() {
    YIELDED.with(|y| y.set(true));
}

/// Whether a task yielded on purpose since the last call (and forgets it).
pub(crate) fn take_yield() -> bool {
    YIELDED.with(|y| y.replace(false))
}

/// Gives the task about to be polled a fresh budget.
pub(crate) fn reset() {
    REMAINING.with(|r| r.set(BUDGET));
}

/// Takes one unit of budget. When none is left, wakes the task (so it runs again after the
/// others) and returns false: the caller must return `Pending`.
#[inline]
pub(crate) fn spend(cx: &Context<'_>) -> bool {
    // Inlined, with the rare case out of line: every read, write and readiness check calls it.
    let left = REMAINING.with(|r| {
        let n = r.get();
        r.set(n.saturating_sub(1));
        n
    });
    if left == 0 {
        spent(cx);
        return false;
    }
    true
}

#[cold]
fn spent(cx: &Context<'_>) {
    trace!("coop: task used its budget; it yields");
    note_yield();
    cx.waker().wake_by_ref();
}
