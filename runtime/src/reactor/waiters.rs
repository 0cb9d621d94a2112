//! [`Waiters`]: the tasks waiting on one socket, to read and to write.
//!
//! Nearly always there is one per direction: the connection's own task. But two tasks may share
//! a socket (two accept loops on one listener, say), and each must keep its own waker until the
//! socket is ready: a single slot would make the second waiter either erase the first one's
//! waker (a lost wake-up) or wake it to make room, after which the first, finding nothing to
//! do, waits again and wakes the second, and so on: two tasks passing the thread back and
//! forth, a busy loop. So the first waker of each direction has a slot of its own, and any
//! others go to lists that cost one pointer for both directions until a second task waits:
//! the socket's whole state then fits one cache line (see `IoState`).

use std::task::Waker;

use super::Direction;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The further readers and writers, in that order. Boxed: one pointer while unused.
    more: Option<Box<[Vec<Waker>; 2]>>,
}

impl Waiters {
    /// Adds the task of `waker` to those waiting in `dir`, unless it waits there already.
    ///
    /// "Already" rests on `Waker::will_wake`, which compares pointers and may in principle answer
    /// no for two wakers of one task (it does under Miri; for `mini`'s own wakers it answers
    /// yes). Such a task polled again while it waits is then kept twice, until the next event
    /// empties the list: a spurious wake-up, never a lost one. Nothing is evicted to bound the
    /// list: an evicted waiter woken to make room would come back and evict another, a busy
    /// loop as soon as more tasks wait than the bound allows.
    #[inline]
    pub(crate) fn add(&mut self, dir: Direction, waker: &Waker) {
        let overflow = self.more.is_some();
        let first = self.first(dir);
        match first {
            None if !overflow => *first = Some(waker.clone()),
            Some(known) if known.will_wake(waker) => {}
            _ => self.add_another(dir, waker),
        }
    }

    /// Whether no task waits, in either direction.
    pub(crate) fn is_empty(&self) -> bool {
        self.reader.is_none() && self.writer.is_none() && self.more.is_none()
    }

    #[cold]
    fn add_another(&mut self, dir: Direction, waker: &Waker) {
        let known = |w: &Waker| w.will_wake(waker);
        let in_more = self.more.as_ref().is_some_and(|more| more[index(dir)].iter().any(known));
        if in_more || self.first(dir).as_ref().is_some_and(known) {
            return;
        }
        match self.first(dir) {
            None => *self.first(dir) = Some(waker.clone()),
            Some(_) => self.more.get_or_insert_default()[index(dir)].push(waker.clone()),
        }
    }

    /// Moves the wakers of every task waiting in `dir` into `out` (the socket is ready that
    /// way: all of them should look) and says how many there were.
    #[inline]
    pub(crate) fn take_all(&mut self, dir: Direction, out: &mut Vec<Waker>) -> usize {
        // Small enough to inline into the reactor, which calls it for every event: no waiter or
        // one is the rule.
        if self.more.is_some() {
            return self.take_many(dir, out);
        }
        match self.first(dir).take() {
            Some(waker) => {
                out.push(waker);
                1
            }
            None => 0,
        }
    }

    #[cold]
    fn take_many(&mut self, dir: Direction, out: &mut Vec<Waker>) -> usize {
        let before = out.len();
        out.extend(self.first(dir).take());
        if let Some(more) = &mut self.more {
            out.append(&mut more[index(dir)]);
            if more.iter().all(Vec::is_empty) {
                self.more = None;
            }
        }
        out.len() - before
    }

    fn first(&mut self, dir: Direction) -> &mut Option<Waker> {
        match dir {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }
}

fn index(dir: Direction) -> usize {
    match dir {
        Direction::Read => 0,
        Direction::Write => 1,
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
    fn each_task_is_kept_once_per_direction_and_all_are_taken() {
        let (a, b) = (Waker::from(Arc::new(Nop)), Waker::from(Arc::new(Nop)));
        let mut waiters = Waiters::default();
        for waker in [&a, &b, &a, &b] {
            waiters.add(Direction::Read, waker);
        }
        waiters.add(Direction::Write, &b);
        let mut out = Vec::new();
        let taken = waiters.take_all(Direction::Read, &mut out);
        // `will_wake` is best effort: under Miri, a clone's vtable may not compare equal, and
        // then each add keeps a waker; both tasks must be there either way.
        if a.will_wake(&a.clone()) {
            assert_eq!(taken, 2);
        }
        assert!(out.iter().any(|w| w.will_wake(&a) || cfg!(miri)));
        assert!(out.iter().any(|w| w.will_wake(&b) || cfg!(miri)));
        assert!((2..=4).contains(&taken), "{taken}");
        assert_eq!(waiters.take_all(Direction::Read, &mut out), 0, "taking empties the list");
        assert_eq!(waiters.take_all(Direction::Write, &mut out), 1, "the other direction kept");
        assert!(waiters.more.is_none(), "the overflow lists are freed once empty");
    }
}
