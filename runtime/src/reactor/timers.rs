//! The timer queue: deadlines in order, each with the waker of the task that waits for it.
//!
//! A `BTreeMap` keyed by `(deadline, sequence number)` keeps them sorted, so the reactor can ask
//! for the earliest deadline (its longest permitted sleep) and take every expired timer from the
//! front. The sequence number makes equal deadlines distinct and fires them in the order they were
//! set. Inserting and removing cost O(log n); a hashed timer wheel would be O(1) but much longer
//! to read.
//!
//! The sequence numbers come from one counter for the whole process, so a key names one timer
//! in one runtime, ever: a [`Sleep`](crate::time::Sleep) holds its key and its runtime's number,
//! not the reactor, and a key kept past its runtime (whose number a new runtime may reuse) can
//! never match, and cancel, a timer of another.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::Instant;

/// Names one registered timer, so its waker can be replaced or the timer cancelled.
pub(crate) type TimerKey = (Instant, u64);

/// The next timer's sequence number, in every runtime (see the module docs). Relaxed: only
/// uniqueness and, within one thread, increasing order are needed.
static NEXT_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Pending timers in deadline order.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    pending: BTreeMap<TimerKey, Waker>,
}

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = (deadline, NEXT_SEQUENCE.fetch_add(1, Ordering::Relaxed));
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

    /// Moves a timer to `deadline`, keeping its waker. A timer that already fired is left
    /// fired: its task was woken and will poll (and register) again.
    pub(crate) fn reschedule(&mut self, key: TimerKey, deadline: Instant) -> TimerKey {
        match self.pending.remove(&key) {
            Some(waker) => self.insert(deadline, waker),
            None => key,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A waker that records its id when woken.
    struct Tag(u64, Arc<Mutex<Vec<u64>>>);

    impl futures::task::ArcWake for Tag {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.1.lock().unwrap().push(arc_self.0);
        }
    }

    /// Differential test against the simplest model, a list: random inserts, cancellations and
    /// expiries; every expiry must return exactly the due timers, in deadline order (ties in the
    /// order they were set), and the earliest deadline must always agree.
    #[test]
    fn behaves_like_a_sorted_list() {
        let base = Instant::now();
        for seed in 0..crate::test_rng::seeds() {
            let mut rng = crate::test_rng::Rng::new(seed);
            let fired = Arc::new(Mutex::new(Vec::new()));
            let mut timers = Timers::default();
            // The model: (deadline, id, key), in insertion order.
            let mut model: Vec<(Instant, u64, TimerKey)> = Vec::new();
            let mut now = base;
            for id in 0..crate::test_rng::steps(300) {
                match rng.below(4) {
                    0 | 1 => {
                        let deadline = now + Duration::from_millis(rng.below(50));
                        let waker = futures::task::waker(Arc::new(Tag(id, fired.clone())));
                        let key = timers.insert(deadline, waker);
                        model.push((deadline, id, key));
                    }
                    2 if !model.is_empty() => {
                        let (_, _, key) = model.remove(rng.below(model.len() as u64) as usize);
                        timers.remove(key);
                    }
                    _ => {
                        now += Duration::from_millis(rng.below(20));
                        let mut due: Vec<_> =
                            model.iter().filter(|t| t.0 <= now).cloned().collect();
                        due.sort_by_key(|t| t.0); // stable: ties stay in insertion order
                        model.retain(|t| t.0 > now);
                        let mut wakers = Vec::new();
                        timers.take_expired(now, &mut wakers);
                        wakers.into_iter().for_each(Waker::wake);
                        let got = std::mem::take(&mut *fired.lock().unwrap());
                        let want: Vec<u64> = due.iter().map(|t| t.1).collect();
                        assert_eq!(got, want, "seed {seed}: expired at {:?}", now - base);
                    }
                }
                let earliest = model.iter().map(|t| t.0).min();
                assert_eq!(timers.next_deadline(), earliest, "seed {seed}");
            }
        }
    }
}
