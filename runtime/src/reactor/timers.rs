//! The timer queue: deadlines in order, each with the waker of the task that waits for it.
//!
//! A `BTreeMap` keyed by `(deadline, sequence number)` keeps them sorted, so the reactor can ask
//! for the earliest deadline (its longest permitted sleep) and take every expired timer from the
//! front. The sequence number makes equal deadlines distinct and fires them in the order they were
//! set. Inserting and removing cost O(log n); a hashed timer wheel would be O(1) but much longer
//! to read.

use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Instant;

/// Names one registered timer, so its waker can be replaced or the timer cancelled.
pub(crate) type TimerKey = (Instant, u64);

/// Pending timers in deadline order.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    pending: BTreeMap<TimerKey, Waker>,
    next_sequence: u64,
}

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = (deadline, self.next_sequence);
        self.next_sequence += 1;
        self.pending.insert(key, waker);
        key
    }

    /// Replaces the waker of a timer that is still pending; returns false if it already fired.
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.pending.get_mut(&key) {
            Some(old) => {
                if !old.will_wake(waker) {
                    old.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&mut self, key: TimerKey) {
        self.pending.remove(&key);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.first_key_value().map(|((deadline, _), _)| *deadline)
    }

    /// Moves the wakers of every timer due at `now` into `wakers`, earliest first.
    pub(crate) fn take_expired(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            wakers.push(entry.remove());
        }
    }
}
