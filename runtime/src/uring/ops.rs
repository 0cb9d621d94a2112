//! The op table: one slot per operation in flight in the ring, which owns the operation's
//! buffer until the kernel's last completion for it.
//!
//! # The one rule
//!
//! Once an entry is in the submission queue, the kernel may read or write the memory it names
//! at any time until its completion arrives; Rust's ownership cannot see that. So the memory is
//! moved into the operation's slot ([`Held`]) before the entry is queued, and leaves it only
//! with the completion: to the future that waits for it, or, if that future was dropped
//! (a timeout, a `select`), nowhere: dropping the future only marks the slot orphaned and queues
//! an `IORING_OP_ASYNC_CANCEL`; the slot, and the buffer with it, are freed when the kernel's
//! completion (`-ECANCELED`, or the result if the operation won the race) comes back.
//!
//! A multishot operation (accept, receive) posts many completions; each goes to its [`Sink`]
//! (the listener's or stream's queue), and the slot is freed at the one without
//! `IORING_CQE_F_MORE`.
//!
//! The table is generic over what it holds, so that the model test below can check the rule
//! against random submissions, drops, cancellations and completions without a ring.

use std::task::Waker;

use crate::slab::{Key, Slab};

/// Where an operation's completions go.
enum State<S> {
    /// A one-shot operation whose future waits (with its waker, once polled).
    Waiting(Option<Waker>),
    /// Its completion came; the future has not taken it yet.
    Done(i32, u32),
    /// Its future was dropped: the completion only frees the slot.
    Orphaned,
    /// A multishot operation: every completion goes to the sink.
    Multi(S),
}

/// An operation in flight and what it owns.
struct Op<H, S> {
    state: State<S>,
    /// The memory the kernel may use until the last completion.
    held: H,
}

/// What a completion asks of the driver, once the table is no longer borrowed.
pub(crate) enum Delivery<S> {
    /// Wake the future (if it was polled).
    Wake(Option<Waker>),
    /// Hand it to the sink; `ended`: it was the operation's last.
    Sink(S, bool),
    /// Nothing: an orphan was freed, or the completion was for no slot.
    Nothing,
}

/// See the module docs.
pub(crate) struct OpTable<H, S> {
    ops: Slab<Op<H, S>>,
}

impl<H, S: Clone> OpTable<H, S> {
    pub(crate) fn new() -> Self {
        OpTable { ops: Slab::new() }
    }

    /// Operations in flight (orphans included).
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// A slot for a one-shot operation owning `held`, before its entry is queued.
    pub(crate) fn insert(&mut self, held: H) -> Key {
        self.ops.insert_with(|_| Op { state: State::Waiting(None), held })
    }

    /// A slot for a multishot operation whose completions go to `sink`.
    pub(crate) fn insert_multi(&mut self, sink: S, held: H) -> Key {
        self.ops.insert_with(|_| Op { state: State::Multi(sink), held })
    }

    /// Removes a slot whose entry could not be queued (the kernel never saw it).
    pub(crate) fn remove_unsubmitted(&mut self, key: Key) -> Option<H> {
        self.ops.remove(key).map(|op| op.held)
    }

    /// The future's poll: the result and the memory back once completed (the slot is freed),
    /// else `None`, with `waker` left for the completion.
    pub(crate) fn poll(&mut self, key: Key, waker: &Waker) -> Option<(i32, u32, H)> {
        let op = self.ops.get_mut(key)?;
        match &mut op.state {
            State::Done(res, flags) => {
                let (res, flags) = (*res, *flags);
                let op = self.ops.remove(key).expect("just found");
                Some((res, flags, op.held))
            }
            State::Waiting(w) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *w = Some(waker.clone());
                }
                None
            }
            State::Orphaned | State::Multi(_) => unreachable!("polled an orphan or a multishot"),
        }
    }

    /// The future is dropped. Returns true if the operation is still in the kernel (the caller
    /// queues a cancellation; the slot stays until the completion). A completed one is freed.
    pub(crate) fn orphan(&mut self, key: Key) -> bool {
        let Some(op) = self.ops.get_mut(key) else { return false };
        match op.state {
            State::Done(..) => {
                self.ops.remove(key);
                false
            }
            State::Waiting(_) => {
                op.state = State::Orphaned;
                true
            }
            State::Orphaned | State::Multi(_) => false,
        }
    }

    /// A completion for `key`: records it, or frees the slot if it was the last of an orphan
    /// or of a multishot operation (dropping what it held, now that the kernel is done).
    pub(crate) fn complete(&mut self, key: Key, res: i32, flags: u32) -> Delivery<S> {
        let more = io_uring::cqueue::more(flags);
        let Some(op) = self.ops.get_mut(key) else { return Delivery::Nothing };
        let delivery = match &mut op.state {
            State::Waiting(w) => {
                let waker = w.take();
                op.state = State::Done(res, flags);
                return Delivery::Wake(waker);
            }
            State::Done(..) => unreachable!("a one-shot operation completed twice"),
            State::Orphaned => Delivery::Nothing,
            State::Multi(sink) => Delivery::Sink(sink.clone(), !more),
        };
        if !more {
            self.ops.remove(key);
        }
        delivery
    }
}

#[cfg(test)]
mod tests {
    //! The model test of the one rule: random submissions, future drops (with their
    //! cancellations) and completions, in any order the kernel may produce them; the memory an
    //! operation holds must be freed exactly once, and never before its last completion.
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::{Delivery, OpTable};
    use crate::slab::Key;
    use crate::test_rng::Rng;

    /// `IORING_CQE_F_MORE`: more completions of this operation will come.
    const MORE: u32 = 1 << 1;

    /// A buffer that records when it is dropped.
    struct Buf(u32, Rc<RefCell<Vec<u32>>>);

    impl Drop for Buf {
        fn drop(&mut self) {
            self.1.borrow_mut().push(self.0);
        }
    }

    /// What the kernel and the futures know of each operation.
    #[derive(Clone, Copy, PartialEq, Debug)]
    struct Model {
        id: u32,
        multi: bool,
        /// The future still exists (one-shot) or the owner still wants it (multishot).
        alive: bool,
        /// The kernel has posted the last completion.
        finished: bool,
    }

    #[test]
    fn memory_is_freed_once_and_only_after_the_last_completion() {
        let mut rng = Rng::new(14);
        for _round in 0..200 {
            let freed = Rc::new(RefCell::new(Vec::new()));
            let mut table: OpTable<Buf, u32> = OpTable::new();
            let mut ops: BTreeMap<u64, (Key, Model)> = BTreeMap::new();
            let mut next = 0u32;
            let waker = futures::task::noop_waker_ref();
            for _step in 0..300 {
                let live: Vec<u64> = ops.keys().copied().collect();
                let pick = |rng: &mut Rng| live[rng.below(live.len() as u64) as usize];
                match rng.below(6) {
                    0 | 1 => {
                        next += 1;
                        let multi = rng.below(3) == 0;
                        let buf = Buf(next, freed.clone());
                        let key =
                            if multi { table.insert_multi(next, buf) } else { table.insert(buf) };
                        let model = Model { id: next, multi, alive: true, finished: false };
                        ops.insert(u64::from(next), (key, model));
                    }
                    // The kernel completes an operation (a multishot one maybe not for good).
                    2 | 3 if !live.is_empty() => {
                        let id = pick(&mut rng);
                        let (key, m) = ops.get_mut(&id).unwrap();
                        if m.finished {
                            continue;
                        }
                        let last = !m.multi || rng.below(3) == 0;
                        let flags = if last { 0 } else { MORE };
                        match table.complete(*key, 7, flags) {
                            Delivery::Sink(sink, ended) => {
                                assert!(m.multi && sink == m.id && ended == last)
                            }
                            Delivery::Wake(_) => assert!(!m.multi && m.alive),
                            Delivery::Nothing => assert!(!m.multi && !m.alive),
                        }
                        m.finished = last;
                    }
                    // The future polls: it gets its buffer back once completed.
                    4 if !live.is_empty() => {
                        let id = pick(&mut rng);
                        let (key, m) = ops[&id];
                        if m.multi || !m.alive {
                            continue;
                        }
                        match table.poll(key, waker) {
                            Some((res, _, buf)) => {
                                assert!(m.finished && res == 7 && buf.0 == m.id);
                                ops.remove(&id);
                            }
                            None => assert!(!m.finished),
                        }
                    }
                    // The future is dropped (or the stream that owns a multishot operation).
                    _ if !live.is_empty() => {
                        let id = pick(&mut rng);
                        let (key, m) = ops.get_mut(&id).unwrap();
                        if m.multi || !m.alive {
                            continue;
                        }
                        let cancel = table.orphan(*key);
                        assert_eq!(cancel, !m.finished, "cancel only what the kernel has");
                        m.alive = false;
                    }
                    _ => {}
                }
                // The rule: freed exactly what is finished and no longer wanted.
                ops.retain(|_, (_, m)| {
                    let gone = m.finished && (m.multi || !m.alive);
                    let was_freed = freed.borrow().contains(&m.id);
                    assert_eq!(was_freed, gone, "{m:?}: freed {was_freed}");
                    !gone
                });
                let mut f = freed.borrow().clone();
                f.sort_unstable();
                f.dedup();
                assert_eq!(f.len(), freed.borrow().len(), "a buffer freed twice");
            }
            assert_eq!(table.len(), ops.len());
        }
    }
}
