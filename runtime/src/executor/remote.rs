//! Waking a task from another thread: the global table of runtimes and each runtime's
//! mutex-guarded queue of keys.
//!
//! A waker carries only numbers, its runtime's and its task's (see [`super::waker`]). Woken on a
//! thread that is not running that runtime, it finds the runtime's [`Remote`] half in
//! [`RUNTIMES`], pushes the task's key, and, if the runtime is asleep in its poller, rings the
//! poller's notifier. The executor moves the keys to its own queue at the top of every loop.
//! This path is rare (a thread pool finishing a job, a channel fed from another thread); the
//! lock is fine here.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::waker::{TaskId, MAX_RUNTIMES};
use crate::slab::Key;
use crate::sys::Notifier;

/// Every runtime that exists, by number; a runtime's entry is emptied when it is dropped, and
/// reused by a later one.
static RUNTIMES: Mutex<Vec<Option<Arc<Remote>>>> = Mutex::new(Vec::new());

fn runtimes() -> MutexGuard<'static, Vec<Option<Arc<Remote>>>> {
    // A panic while the lock was held left the table whole (every change is one assignment).
    RUNTIMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The thread-safe half of an executor: what a waker on another thread needs.
#[derive(Debug)]
pub(crate) struct Remote {
    queue: Mutex<RemoteQueue>,
    /// True while `queue` may hold keys: set after a push, cleared when the executor empties it.
    /// Lets the executor's loop skip the lock when no other thread has woken anything (the usual
    /// case). Against `parked` it works like `queue`'s lock did: the executor sets `parked` then
    /// reads this; a waker sets this then reads `parked` (all `SeqCst`): one sees the other.
    remote_pending: AtomicBool,
    /// True while the executor sleeps (or is about to sleep) in the poller. Paired with the
    /// queue's lock, it makes a lost wake-up impossible: the executor sets it, then checks the
    /// queue; a waker pushes, then reads it. At least one of them sees the other (the protocol
    /// is checked exhaustively in `wake_model.rs`).
    pub(crate) parked: AtomicBool,
    notifier: Arc<Notifier>,
}

/// Keys in the order they were woken, each at most once.
#[derive(Debug, Default)]
struct RemoteQueue {
    keys: VecDeque<Key>,
    queued: HashSet<Key>,
}

impl Remote {
    /// Creates the remote half of a new runtime and gives it a number.
    pub(crate) fn register(notifier: Arc<Notifier>) -> io::Result<(u16, Arc<Remote>)> {
        let remote = Arc::new(Remote {
            queue: Mutex::default(),
            remote_pending: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            notifier,
        });
        let mut table = runtimes();
        let index = match table.iter().position(Option::is_none) {
            Some(free) => free,
            None if table.len() < MAX_RUNTIMES => {
                table.push(None);
                table.len() - 1
            }
            None => {
                return Err(io::Error::other(format!(
                    "mini: {MAX_RUNTIMES} runtimes exist at once; drop one to create another"
                )))
            }
        };
        table[index] = Some(remote.clone());
        Ok((index as u16, remote))
    }

    /// Frees the runtime's number (when its executor is dropped).
    pub(crate) fn unregister(runtime: u16) {
        if let Some(entry) = runtimes().get_mut(usize::from(runtime)) {
            *entry = None;
        }
    }

    fn push(&self, key: Key) {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.queued.insert(key) {
                queue.keys.push_back(key);
            }
            // Under the lock, so that a push and its flag are seen together.
            self.remote_pending.store(true, Ordering::SeqCst);
        }
        if self.parked.load(Ordering::SeqCst) {
            self.notifier.notify();
        }
    }

    /// Whether another thread may have woken a task since the last [`take_all`](Self::take_all).
    pub(crate) fn is_pending(&self) -> bool {
        self.remote_pending.load(Ordering::SeqCst)
    }

    /// Moves every key woken from other threads into `out`, in order.
    pub(crate) fn take_all(&self, out: &mut Vec<Key>) {
        if self.is_pending() {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(queue.keys.drain(..));
            queue.queued.clear();
            // Under the lock: a push waiting for it sets the flag again after us.
            self.remote_pending.store(false, Ordering::SeqCst);
        }
    }
}

/// Queues `id` on its runtime from a thread that is not running it. A runtime that no longer
/// exists is not woken.
pub(crate) fn wake(id: TaskId) {
    let remote = runtimes().get(usize::from(id.runtime)).cloned().flatten();
    match remote {
        Some(remote) => remote.push(id.key),
        None => trace!("executor: a wake-up for a dropped runtime is dropped"),
    }
}
