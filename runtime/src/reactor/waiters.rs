//! [`Waiters`]: the tasks waiting for one direction of one socket.
//!
//! Nearly always there is one: the connection's own task. But two tasks may share a socket
//! (two accept loops on one listener, say), and each must keep its own waker until the socket
//! is ready: a single slot would make the second waiter either erase the first one's waker (a
//! lost wake-up) or wake it to make room, after which the first, finding nothing to do, waits
//! again and wakes the second, and so on: two tasks passing the thread back and forth, a busy
//! loop. So the first waker has a slot of its own, and any others go to a list, which costs
//! nothing (no allocation) until a second task waits.

use std::task::Waker;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Waiters {
    /// Adds the task of `waker`, unless it waits here already.
    #[inline]
    pub(crate) fn add(&mut self, waker: &Waker) {
        let known = |w: &Waker| w.will_wake(waker);
        if self.first.as_ref().is_some_and(known) || self.more.iter().any(known) {
            return;
        }
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(_) => self.more.push(waker.clone()),
        }
    }

    /// Moves every waiting task's waker into `out` (the socket is ready: all of them should
    /// look) and says how many there were.
    #[inline]
    pub(crate) fn take_all(&mut self, out: &mut Vec<Waker>) -> usize {
        // Written for the usual cases, no waiter or one, which the reactor meets per event.
        let mut taken = 0;
        if let Some(waker) = self.first.take() {
            out.push(waker);
            taken = 1;
        }
        if !self.more.is_empty() {
            taken += self.more.len();
            out.append(&mut self.more);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    struct Nop;
    impl Wake for Nop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn each_task_is_kept_once_and_all_are_taken() {
        let (a, b) = (Waker::from(Arc::new(Nop)), Waker::from(Arc::new(Nop)));
        let mut waiters = Waiters::default();
        for waker in [&a, &b, &a, &b] {
            waiters.add(waker);
        }
        let mut out = Vec::new();
        assert_eq!(waiters.take_all(&mut out), 2);
        assert!(out[0].will_wake(&a) && out[1].will_wake(&b));
        assert_eq!(waiters.take_all(&mut out), 0, "taking empties the list");
    }
}
