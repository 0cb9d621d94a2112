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

use std::cell::Cell;
use std::task::Waker;

use super::Direction;

/// The further readers and writers, in that order.
type Overflow = Box<[Vec<Waker>; 2]>;

/// See the module docs.
///
/// Each field is a `Cell`, whose contents are moved in and out, never borrowed: no borrow flag,
/// so that the socket's state fits a line, and no need to move the whole struct out and back
/// to change one slot (the reactor changes one per event). While a slot is out, a waker may be
/// cloned; that must not add a waiter to this socket, or putting the slot back would drop it.
/// No waker does such a thing (`mini`'s copies a number; others bump a count), and a debug
/// build checks it.
#[derive(Default)]
pub(crate) struct Waiters {
    reader: Cell<Option<Waker>>,
    writer: Cell<Option<Waker>>,
    /// Boxed: one pointer while unused.
    more: Cell<Option<Overflow>>,
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
    pub(crate) fn add(&self, dir: Direction, waker: &Waker) {
        let first = self.first(dir);
        match first.take() {
            None if !self.overflowing() => put_back(first, Some(waker.clone())),
            Some(known) if known.will_wake(waker) => put_back(first, Some(known)),
            other => {
                put_back(first, other);
                self.add_another(dir, waker);
            }
        }
    }

    /// Whether the overflow lists are in use (a second task waited in some direction).
    fn overflowing(&self) -> bool {
        let more = self.more.take();
        let overflowing = more.is_some();
        self.more.set(more);
        overflowing
    }

    #[cold]
    fn add_another(&self, dir: Direction, waker: &Waker) {
        let known = |w: &Waker| w.will_wake(waker);
        let first = self.first(dir).take();
        let mut more = self.more.take();
        let in_more = more.as_ref().is_some_and(|more| more[index(dir)].iter().any(known));
        let first = match first {
            first if in_more => first,
            None => Some(waker.clone()),
            Some(w) if known(&w) => Some(w),
            Some(w) => {
                more.get_or_insert_default()[index(dir)].push(waker.clone());
                Some(w)
            }
        };
        put_back(self.first(dir), first);
        put_back(&self.more, more);
    }

    /// Moves the wakers of every task waiting in `dir` into `out` (the socket is ready that
    /// way: all of them should look) and says how many there were.
    #[inline]
    pub(crate) fn take_all(&self, dir: Direction, out: &mut Vec<Waker>) -> usize {
        // Small enough to inline into the reactor, which calls it for every event: no waiter or
        // one is the rule.
        if self.overflowing() {
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
    fn take_many(&self, dir: Direction, out: &mut Vec<Waker>) -> usize {
        let before = out.len();
        out.extend(self.first(dir).take());
        let mut more = self.more.take();
        if let Some(lists) = &mut more {
            out.append(&mut lists[index(dir)]);
            if lists.iter().all(Vec::is_empty) {
                more = None;
            }
        }
        self.more.set(more);
        out.len() - before
    }

    fn first(&self, dir: Direction) -> &Cell<Option<Waker>> {
        match dir {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        }
    }
}

/// Puts a slot's contents back into its emptied `Cell`, checking (in debug builds) that
/// nothing was put there meanwhile (see [`Waiters`]).
fn put_back<T>(cell: &Cell<Option<T>>, value: Option<T>) {
    let meanwhile = cell.replace(value);
    debug_assert!(meanwhile.is_none(), "a waiter was added while its slot was out");
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
        let waiters = Waiters::default();
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
        assert!(!waiters.overflowing(), "the overflow lists are freed once empty");
    }
}
