//! A task's waker is a number: which runtime, which task.
//!
//! A [`Waker`] is one pointer-sized word plus a table of four functions (clone, wake, wake by
//! reference, drop) that the runtime supplies. Most runtimes make the word a pointer to the task,
//! reference-counted, so waking is reaching through it. Ours is the task's name instead: 16
//! bits for its runtime's number in a global table, 48 bits for its [`Key`] in that runtime's
//! task table. Cloning a waker copies the word; dropping one does nothing; no task memory is
//! shared with other threads, which is why the waker can be `Send + Sync` while tasks are not.
//!
//! Waking decodes the word and then:
//!
//! - on the thread that runs that runtime (nearly always: the reactor dispatching an event, one
//!   task waking another), queues the task on the executor directly, found through the
//!   runtime's thread-local context: no lock, no atomic operation, no allocation
//!   ([`super::wake_here`]);
//! - anywhere else, looks the runtime up in the global table and pushes the key onto its
//!   mutex-guarded queue, ringing its poller if it sleeps ([`super::remote`]).
//!
//! Nothing can dangle, because nothing is pointed at. A waker that outlives its task names a
//! slot that is empty or holds a newer generation, and does nothing (unless the slot has been
//! reused 65 536 times since: then it polls the new task once for nothing). One that outlives its
//! runtime names a free entry of the table, or, once the number is reused, a runtime that finds
//! no such task or polls one once for nothing. A spurious poll is the worst case, and every
//! future tolerates one.

use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::slab::Key;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("mini packs a task's name into a waker's pointer-sized word: 64-bit targets only");

/// The largest number of runtimes that can exist at once: their numbers have 16 bits.
pub(crate) const MAX_RUNTIMES: usize = 1 << 16;

// A runtime's number must fit above the key in one 64-bit word.
const _: () = assert!(Key::BITS + u16::BITS <= u64::BITS);

/// A task's name across runtimes: what its waker carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskId {
    /// The runtime's number in the global table ([`super::remote`]).
    pub(crate) runtime: u16,
    /// The task's key in that runtime's task table.
    pub(crate) key: Key,
}

impl TaskId {
    /// The key in the low [`Key::BITS`] bits, the runtime's number above it.
    fn to_word(self) -> usize {
        ((u64::from(self.runtime) << Key::BITS) | self.key.to_u64()) as usize
    }

    fn from_word(word: usize) -> TaskId {
        let word = word as u64;
        let key = Key::from_u64(word & ((1 << Key::BITS) - 1));
        TaskId { runtime: (word >> Key::BITS) as u16, key }
    }

    /// A waker that queues this task when woken.
    pub(crate) fn waker(self) -> Waker {
        // SAFETY: `Waker::from_raw` requires that the vtable's functions, called with this data
        // word from any thread, uphold `RawWaker`'s contract. Ours never dereference the word (it
        // is a number, made without provenance), own nothing (so clone copies and drop is a
        // no-op), and are thread-safe: waking reads a thread-local or locks a global mutex.
        unsafe { Waker::from_raw(raw_waker(self.to_word())) }
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake_task, wake_task, drop_waker);

fn raw_waker(word: usize) -> RawWaker {
    RawWaker::new(std::ptr::without_provenance(word), &VTABLE)
}

fn clone_waker(data: *const ()) -> RawWaker {
    raw_waker(data.addr())
}

/// Serves both `wake` and `wake_by_ref`: the waker owns nothing to release.
fn wake_task(data: *const ()) {
    let id = TaskId::from_word(data.addr());
    if !super::wake_here(id) {
        super::remote::wake(id);
    }
}

fn drop_waker(_data: *const ()) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_id_survives_the_round_trip_through_a_waker() {
        for (runtime, raw_key) in [(0, 0), (7, 3 | 5 << 32), (u16::MAX, (1 << Key::BITS) - 1)] {
            let id = TaskId { runtime, key: Key::from_u64(raw_key) };
            assert_eq!(TaskId::from_word(id.to_word()), id);
            let waker = id.waker();
            assert_eq!(TaskId::from_word(waker.data().addr()), id);
            assert!(waker.will_wake(&waker.clone()));
        }
    }
}
