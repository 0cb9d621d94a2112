//! The executor: a table of tasks, a run queue of their keys, and the loop that polls them.
//!
//! A task is a boxed future in a [`Slab`], with two flags beside it: `queued` (it is in the run
//! queue already, so another wake-up adds nothing) and `aborted`. Its waker is just its name,
//! the runtime's number and the task's key ([`waker`]). Waking it on the runtime's own thread
//! (the common case: the reactor dispatching an event, one task waking another) finds the
//! executor through the runtime's thread-local context, sets `queued` and appends the key to
//! the run queue, without a lock or an atomic operation. Waking it from another thread goes
//! through a mutex-guarded queue and, if the runtime is asleep in the poller, rings the
//! poller's notifier ([`remote`]).
//!
//! [`Executor::block_on`] repeats three steps: poll the main future if it was woken; poll every
//! task that was queued; then, if nothing is queued, sleep in the reactor until I/O, a timer or
//! another thread wakes something. While there is work it still takes a zero-timeout turn of the
//! reactor now and then (after a task yields on purpose, and every `EVENT_INTERVAL` task polls),
//! so that sockets and timers are served even when tasks keep each other busy.

mod remote;
mod waker;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::reactor::Reactor;
use crate::slab::{Key, Slab};
use crate::sys::Notifier;
use remote::Remote;
use waker::TaskId;

/// How many task polls may pass, while tasks keep the executor busy, before it looks for I/O
/// and timers again (tokio's choice of number too: often enough to keep latency low, seldom
/// enough that the zero-timeout wait costs little).
const EVENT_INTERVAL: u32 = 61;

/// The key the main future's waker carries; no task has it (index and generation both max).
const MAIN_KEY: Key = Key::MAX;

/// Shows a task key in trace output: `task 3` (with `.g2` after a reused slot's generation),
/// or `the main future`.
struct TaskName(Key);

impl std::fmt::Display for TaskName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (index, generation) = (self.0.index(), self.0.generation());
        match (self.0, generation) {
            (MAIN_KEY, _) => write!(f, "the main future"),
            (_, 0) => write!(f, "task {index}"),
            _ => write!(f, "task {index}.g{generation}"),
        }
    }
}

/// Queues `id` if this thread is running its runtime (in `block_on`); false if it is not.
fn wake_here(id: TaskId) -> bool {
    crate::runtime::with_executor(|executor| {
        let here = executor.runtime == id.runtime;
        if here {
            executor.wake(id.key);
        }
        here
    })
    .unwrap_or(false)
}

/// A spawned future and its scheduling flags.
struct Task {
    /// `None` only while the task is being polled: the future is moved out, so that the table
    /// is not borrowed while user code runs (it may spawn, or wake another task).
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    /// In the run queue: set by a wake-up, cleared just before a poll (so that a wake-up during
    /// the poll queues the task again). A task woken many times is queued once.
    queued: bool,
    /// Set by [`JoinHandle::abort`](crate::task::JoinHandle::abort): the executor drops the
    /// task instead of polling it.
    aborted: bool,
}

/// See the module docs.
pub(crate) struct Executor {
    /// This runtime's number, which its tasks' wakers carry.
    runtime: u16,
    tasks: RefCell<Slab<Task>>,
    /// Keys of tasks woken on this thread, in order.
    run_queue: RefCell<VecDeque<Key>>,
    main_woken: Cell<bool>,
    remote: Arc<Remote>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("runtime", &self.runtime)
            .field("tasks", &self.tasks.borrow().len())
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// Fails only if 65 536 runtimes exist already (their numbers have 16 bits).
    pub(crate) fn new(notifier: Arc<Notifier>) -> io::Result<Executor> {
        let (runtime, remote) = Remote::register(notifier)?;
        Ok(Executor {
            runtime,
            tasks: RefCell::new(Slab::new()),
            run_queue: RefCell::new(VecDeque::new()),
            main_woken: Cell::new(false),
            remote,
        })
    }

    /// Adds a task and queues it for its first poll. Returns its key (which `abort` takes).
    pub(crate) fn spawn(&self, future: Pin<Box<dyn Future<Output = ()>>>) -> Key {
        let task = Task { future: Some(future), queued: true, aborted: false };
        let key = self.tasks.borrow_mut().insert_with(|_| task);
        trace!("executor: spawned {}", TaskName(key));
        self.run_queue.borrow_mut().push_back(key);
        key
    }

    /// Queues the task `key` if it exists and is not queued yet. (On the runtime's thread.)
    fn wake(&self, key: Key) {
        if key == MAIN_KEY {
            if !self.main_woken.replace(true) {
                trace!("executor: {} woken", TaskName(key));
            }
            return;
        }
        // Never borrowed by a caller that can wake something (tasks are moved out to be polled
        // and dropped after the borrow ends); should that change, the key is queued unchecked,
        // which `run` tolerates (a late or repeated key is skipped or polled once for nothing).
        if let Ok(mut tasks) = self.tasks.try_borrow_mut() {
            match tasks.get_mut(key) {
                Some(task) if !task.queued => task.queued = true,
                // Already queued, or finished (a late wake-up).
                _ => return,
            }
        }
        trace!("executor: {} woken", TaskName(key));
        self.run_queue.borrow_mut().push_back(key);
    }

    /// Marks the task to be dropped unpolled, and queues it so that the executor gets to it.
    pub(crate) fn abort(&self, key: Key) {
        match self.tasks.borrow_mut().get_mut(key) {
            Some(task) => task.aborted = true,
            None => return,
        }
        self.wake(key);
    }

    /// Runs `main` to completion, and every spawned task alongside it.
    pub(crate) fn block_on<F: Future>(&self, reactor: &Reactor, main: F) -> F::Output {
        let mut main = pin!(main);
        let main_waker = TaskId { runtime: self.runtime, key: MAIN_KEY }.waker();
        self.main_woken.set(true);
        let mut batch = Batch { executor: self, keys: VecDeque::new() };
        let mut from_elsewhere = Vec::new();
        let mut polls_since_io = 0;
        loop {
            // 1. The main future, if woken.
            if self.main_woken.replace(false) {
                polls_since_io += 1;
                trace!("executor: polling the main future");
                crate::coop::reset();
                if let Poll::Ready(out) = main.as_mut().poll(&mut Context::from_waker(&main_waker))
                {
                    return out;
                }
            }

            // 2. Every task queued so far (those woken on other threads join the queue first;
            //    counted like polls, so that a stream of them, even for tasks that are gone,
            //    cannot keep the loop from I/O and timers).
            self.remote.take_all(&mut from_elsewhere);
            polls_since_io += from_elsewhere.len() as u32;
            for key in from_elsewhere.drain(..) {
                self.wake(key);
            }
            std::mem::swap(&mut *self.run_queue.borrow_mut(), &mut batch.keys);
            while let Some(key) = batch.keys.pop_front() {
                self.run(key);
                polls_since_io += 1;
            }

            // 3. Wake the tasks of the next few events of the last wait, if it reported more
            //    than were handed out (see `Reactor::wake_ready`). Else sleep in the reactor if
            //    there is nothing to do. While there is, look for I/O and timers when a task
            //    yielded on purpose, else only every EVENT_INTERVAL polls: a zero-timeout wait
            //    per batch would cost a syscall per wake when two tasks keep waking each other.
            let yielded = crate::coop::take_yield();
            let result = if reactor.events_left() {
                reactor.wake_ready();
                Ok(())
            } else if self.has_work() {
                if polls_since_io < EVENT_INTERVAL && !yielded {
                    continue;
                }
                polls_since_io = 0;
                reactor.turn(Some(Duration::ZERO))
            } else {
                polls_since_io = 0;
                self.sleep(reactor)
            };
            if let Err(e) = result {
                // Only a broken poller descriptor gets here; nothing could ever wake us again.
                panic!("mini: the poller failed: {e}");
            }
        }
    }

    /// Whether the main future or a task is queued, here or by another thread.
    fn has_work(&self) -> bool {
        self.main_woken.get() || !self.run_queue.borrow().is_empty() || self.remote.is_pending()
    }

    /// Sleeps in the poller until I/O, a timer or another thread wakes a task.
    fn sleep(&self, reactor: &Reactor) -> io::Result<()> {
        // `parked` is true only around the wait itself: wakes from other threads must then ring
        // the notifier, while the reactor's own wakes, just after, must not (the thread is awake).
        self.remote.parked.store(true, Ordering::SeqCst);
        let waited = if self.has_work() { Ok(()) } else { reactor.wait(None) };
        self.remote.parked.store(false, Ordering::SeqCst);
        waited?;
        reactor.wake_ready();
        Ok(())
    }

    /// Polls one task, if it still exists (a late wake-up finds nothing).
    ///
    /// Inlined into `block_on`'s loop, the rare cases out of line: a busy server runs it once
    /// per message, and as a call of its own it would save and restore registers each time.
    #[inline(always)]
    fn run(&self, key: Key) {
        let mut tasks = self.tasks.borrow_mut();
        let Some(task) = tasks.get_mut(key) else {
            return;
        };
        // Cleared before the poll: a wake during the poll must queue the task again.
        task.queued = false;
        if task.aborted {
            drop(tasks);
            self.drop_aborted(key);
            return;
        }
        let Some(mut future) = task.future.take() else {
            return;
        };
        drop(tasks);
        trace!("executor: polling {}", TaskName(key));
        crate::coop::reset();
        let waker = TaskId { runtime: self.runtime, key }.waker();
        if future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
            trace!("executor: {} finished", TaskName(key));
            self.tasks.borrow_mut().remove(key);
            // `future` drops here, after the table is released: its destructors may use it.
        } else if let Some(task) = self.tasks.borrow_mut().get_mut(key) {
            task.future = Some(future);
        }
    }

    /// Drops the aborted task `key` unpolled.
    #[cold]
    fn drop_aborted(&self, key: Key) {
        trace!("executor: {} aborted", TaskName(key));
        let task = self.tasks.borrow_mut().remove(key);
        // Dropped unfinished, after the table is released: the harness reports it cancelled.
        drop(task);
    }

    /// Drops every task that has not finished (when the runtime is dropped).
    pub(crate) fn shutdown(&self) {
        let tasks = self.tasks.borrow_mut().drain();
        drop(tasks);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        Remote::unregister(self.runtime);
    }
}

/// The keys taken from the run queue to be run now. Should a panic escape a task (its
/// destructor, say) and unwind `block_on`, the keys not yet run go back to the run queue: their
/// tasks are still marked `queued`, so no wake-up would queue them again.
struct Batch<'a> {
    executor: &'a Executor,
    keys: VecDeque<Key>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.keys.is_empty() {
            self.executor.run_queue.borrow_mut().extend(self.keys.drain(..));
        }
    }
}
