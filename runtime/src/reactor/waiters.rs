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
    /// Boxed, so that the rare case costs every socket one pointer, not a `Vec`'s three words:
    /// the socket's state stays small (a busy server reads it twice per message).
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<Waker>>>,
}

impl Waiters {
    /// Adds the task of `waker`, unless it waits here already.
    #[inline]
    pub(crate) fn add(&mut self, waker: &Waker) {
        match &self.first {
            None if self.more.is_none() => self.first = Some(waker.clone()),
            Some(first) if first.will_wake(waker) => {}
            _ => self.add_another(waker),
        }
    }

    #[cold]
    fn add_another(&mut self, waker: &Waker) {
        let known = |w: &Waker| w.will_wake(waker);
        if self.first.as_ref().is_some_and(known)
            || self.more.iter().flat_map(|m| m.iter()).any(known)
        {
            return;
        }
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(_) => self.more.get_or_insert_default().push(waker.clone()),
        }
    }

    /// Moves every waiting task's waker into `out` (the socket is ready: all of them should
    /// look) and says how many there were.
    #[inline]
    pub(crate) fn take_all(&mut self, out: &mut Vec<Waker>) -> usize {
        // Small enough to inline into the reactor, which calls it for both directions of every
        // event: no waiter or one is the rule.
        if self.more.is_some() {
            return self.take_many(out);
        }
        match self.first.take() {
            Some(waker) => {
                out.push(waker);
                1
            }
            None => 0,
        }
    }

    #[cold]
    fn take_many(&mut self, out: &mut Vec<Waker>) -> usize {
        let more = self.more.take().unwrap_or_default();
        let taken = usize::from(self.first.is_some()) + more.len();
        out.extend(self.first.take());
        out.extend(*more);
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
