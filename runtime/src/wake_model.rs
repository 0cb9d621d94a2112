//! An exhaustive check of the protocol that keeps a cross-thread wake from being lost.
//!
//! The parties (see `executor/mod.rs`, `executor/remote.rs` and `sys/notify.rs`):
//!
//! - the **executor**, going to sleep: `parked = true`; if the run queue is empty, block in the
//!   poller until the eventfd counter is non-zero; `parked = false`; `Notifier::reset` (read the
//!   counter to zero, then `pending = false`); take everything queued; repeat;
//! - a **waker** on another thread: push its task onto the queue (and, under the same lock,
//!   set the `remote_pending` flag that the executor's "is the queue empty" reads: one step); if `parked`, `notify`: if
//!   `pending` was false (swap), add one to the counter. (A wake on the runtime's own thread
//!   goes straight to the executor's own run queue; it cannot race with the sleep, since that
//!   thread is not asleep while it wakes anything.)
//!
//! The property: the executor never blocks for good while a task is queued. The test below
//! explores *every* interleaving of the executor with two wakers (each step of the protocol an
//! atomic step; the mutex-guarded queue operations atomic as a whole, as they are), and checks
//! that in every final state each pushed task was taken. It also checks that the previous order
//! of `reset` (clear `pending`, then read) is caught as losing a wake, so the search is known to
//! be able to fail. This checks the protocol as written here, not the compiled code; loom would
//! check the code but cannot model the eventfd, so we chose the model.

use std::collections::HashSet;

/// The executor's program counter: which step it takes next.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Exec {
    SetParked,
    CheckQueue,
    Wait,
    ClearParked,
    Reset1,
    Reset2,
    TakeAll,
    Done,
}

/// A waker's program counter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Wake {
    Push,
    LoadParked,
    Notify,
    Done,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct State {
    exec: Exec,
    rounds_left: u8,
    wakers: [Wake; 2],
    queued: u8,
    taken: u8,
    parked: bool,
    pending: bool,
    counter: u8,
}

/// Whether `reset` reads the counter before clearing `pending` (the fixed order).
#[derive(Clone, Copy)]
struct Order {
    read_first: bool,
}

/// Every state reachable from `s` by one step of one party.
fn steps(s: &State, order: Order) -> Vec<State> {
    let mut next = Vec::new();
    // The executor.
    let mut e = s.clone();
    let moved = match s.exec {
        Exec::SetParked => {
            e.parked = true;
            e.exec = Exec::CheckQueue;
            true
        }
        Exec::CheckQueue => {
            e.exec = if s.queued > 0 { Exec::ClearParked } else { Exec::Wait };
            true
        }
        // Blocks until the eventfd is readable.
        Exec::Wait if s.counter > 0 => {
            e.exec = Exec::ClearParked;
            true
        }
        Exec::Wait => false,
        Exec::ClearParked => {
            e.parked = false;
            e.exec = Exec::Reset1;
            true
        }
        Exec::Reset1 => {
            if order.read_first {
                e.counter = 0
            } else {
                e.pending = false
            }
            e.exec = Exec::Reset2;
            true
        }
        Exec::Reset2 => {
            if order.read_first {
                e.pending = false
            } else {
                e.counter = 0
            }
            e.exec = Exec::TakeAll;
            true
        }
        Exec::TakeAll => {
            e.taken += e.queued;
            e.queued = 0;
            e.rounds_left -= 1;
            e.exec = if e.rounds_left == 0 { Exec::Done } else { Exec::SetParked };
            true
        }
        Exec::Done => false,
    };
    if moved {
        next.push(e);
    }
    // Each waker.
    for i in 0..2 {
        let mut w = s.clone();
        match s.wakers[i] {
            Wake::Push => {
                w.queued += 1;
                w.wakers[i] = Wake::LoadParked;
            }
            Wake::LoadParked => w.wakers[i] = if s.parked { Wake::Notify } else { Wake::Done },
            Wake::Notify => {
                if !w.pending {
                    w.pending = true;
                    w.counter += 1;
                }
                w.wakers[i] = Wake::Done;
            }
            Wake::Done => continue,
        }
        next.push(w);
    }
    next
}

/// Explores every interleaving; returns a state in which the executor is stuck with a task
/// queued (a lost wake), if there is one.
fn find_lost_wake(order: Order) -> Option<State> {
    let start = State {
        exec: Exec::SetParked,
        rounds_left: 3,
        wakers: [Wake::Push; 2],
        queued: 0,
        taken: 0,
        parked: false,
        pending: false,
        counter: 0,
    };
    let mut seen = HashSet::new();
    let mut stack = vec![start];
    while let Some(s) = stack.pop() {
        if !seen.insert(s.clone()) {
            continue;
        }
        let next = steps(&s, order);
        let wakers_done = s.wakers.iter().all(|w| *w == Wake::Done);
        // Stuck: nobody can move, and a task sits in the queue while the executor waits.
        if next.is_empty() && wakers_done && s.exec == Exec::Wait && s.queued > 0 {
            return Some(s);
        }
        stack.extend(next);
    }
    None
}

#[test]
fn no_interleaving_loses_a_wake() {
    assert_eq!(find_lost_wake(Order { read_first: true }), None);
}

#[test]
fn the_search_finds_the_old_reset_order_losing_a_wake() {
    let lost = find_lost_wake(Order { read_first: false });
    assert!(lost.is_some(), "clearing `pending` before reading the counter can lose a wake");
}
