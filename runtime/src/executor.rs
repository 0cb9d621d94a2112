//! The executor: a run queue of task ids, and the loop that polls them.
//!
//! A task is a boxed future in a [`Slab`]. Its waker is a [`TaskWaker`]: the task's key plus a
//! handle to the [`RunQueue`]. The waker holds no pointer to the future itself, which is why it
//! can be `Send + Sync` while the tasks are not: waking from another thread only pushes an id
//! onto a mutex-guarded queue and, if the runtime is asleep in the poller, rings the poller's
//! notifier. Waking on the runtime's own thread (the common case: the reactor dispatching an
//! event) pushes onto a thread-local queue instead, without the lock.
//!
//! [`Executor::block_on`] repeats three steps: poll the main future if it was woken; poll every
//! task that was queued; then, if nothing is queued, sleep in the reactor until I/O, a timer or
//! another thread wakes something. While there is work it still takes a zero-timeout turn of the
//! reactor now and then (after a task yields on purpose, and every `EVENT_INTERVAL` task polls),
//! so that sockets and timers are served even when tasks keep each other busy.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_task::{waker_ref, ArcWake};

use crate::reactor::Reactor;
use crate::slab::{Key, Slab};
use crate::sys::Notifier;

/// How many task polls may pass, while tasks keep the executor busy, before it looks for I/O
/// and timers again (tokio's choice of number too: often enough to keep latency low, seldom
/// enough that the zero-timeout wait costs little).
const EVENT_INTERVAL: u32 = 61;

/// The id the main future's waker pushes; no task key has it (generation and index both max).
const MAIN_ID: u64 = u64::MAX;

/// Shows a task id in trace output: `task 3` (with `.g2` after a reused slot's generation),
/// or `the main future`.
struct TaskName(u64);

impl std::fmt::Display for TaskName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (index, generation) = (self.0 as u32, (self.0 >> 32) as u32);
        match (self.0, generation) {
            (MAIN_ID, _) => write!(f, "the main future"),
            (_, 0) => write!(f, "task {index}"),
            _ => write!(f, "task {index}.g{generation}"),
        }
    }
}

/// The thread-safe half of the executor: what a waker needs to schedule its task.
#[derive(Debug)]
pub(crate) struct RunQueue {
    /// Ids of tasks woken from other threads. A mutex, because any thread may push. (Wakes on
    /// the runtime's own thread go to [`LOCAL`] instead, without a lock.)
    queue: Mutex<VecDeque<u64>>,
    /// True while `queue` may hold ids: set after a push, cleared when the executor empties it.
    /// Lets the executor's loop skip the lock when no other thread has woken anything (the usual
    /// case). Against `parked` it works like `queue`'s lock did: the executor sets `parked` then
    /// reads this; a waker sets this then reads `parked` (all `SeqCst`): one sees the other.
    remote_pending: AtomicBool,
    /// True while the executor sleeps (or is about to sleep) in the poller. Paired with the
    /// queue's lock, it makes a lost wake-up impossible: the executor sets it, then checks the
    /// queue; a waker pushes, then reads it. At least one of them sees the other. (A wake on the
    /// runtime's own thread cannot happen while it sleeps.)
    parked: AtomicBool,
    notifier: Arc<Notifier>,
}

/// Ids woken on the thread that runs a runtime, for that runtime: most wakes (every event the
/// reactor dispatches, every `spawn`) need no lock.
struct LocalQueue {
    /// The run queue of the runtime in `block_on` on this thread; null outside. Only compared,
    /// never dereferenced.
    owner: *const RunQueue,
    ids: VecDeque<u64>,
}

thread_local! {
    static LOCAL: RefCell<LocalQueue> =
        const { RefCell::new(LocalQueue { owner: std::ptr::null(), ids: VecDeque::new() }) };
}

impl RunQueue {
    fn push(&self, id: u64) {
        if self.push_local(id) {
            return;
        }
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push_back(id);
            // Under the lock, so that a push and its flag are seen together.
            self.remote_pending.store(true, Ordering::SeqCst);
        }
        if self.parked.load(Ordering::SeqCst) {
            self.notifier.notify();
        }
    }

    /// Pushes without the lock if this thread is the one running this queue's runtime.
    fn push_local(&self, id: u64) -> bool {
        LOCAL
            .try_with(|local| match local.try_borrow_mut() {
                Ok(mut local) if std::ptr::eq(local.owner, self) => {
                    local.ids.push_back(id);
                    true
                }
                _ => false,
            })
            .unwrap_or(false)
    }

    fn is_empty(&self) -> bool {
        LOCAL.with(|local| local.borrow().ids.is_empty())
            && !self.remote_pending.load(Ordering::SeqCst)
    }

    /// Moves every queued id into `batch`: those woken on this thread first, in order.
    fn take_all(&self, batch: &mut VecDeque<u64>) {
        LOCAL.with(|local| std::mem::swap(&mut local.borrow_mut().ids, batch));
        if self.remote_pending.load(Ordering::SeqCst) {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            batch.append(&mut queue);
            // Under the lock: a push waiting for it sets the flag again after us.
            self.remote_pending.store(false, Ordering::SeqCst);
        }
    }

    /// Makes this thread's wakes for this queue go to [`LOCAL`] until the guard drops; then any
    /// left there move to the shared queue, for the next `block_on`.
    fn enter(&self) -> LocalGuard<'_> {
        LOCAL.with(|local| local.borrow_mut().owner = self);
        LocalGuard(self)
    }
}

/// See [`RunQueue::enter`].
struct LocalGuard<'a>(&'a RunQueue);

impl Drop for LocalGuard<'_> {
    fn drop(&mut self) {
        let left = LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            local.owner = std::ptr::null();
            std::mem::take(&mut local.ids)
        });
        if !left.is_empty() {
            self.0.queue.lock().unwrap_or_else(|e| e.into_inner()).extend(left);
            self.0.remote_pending.store(true, Ordering::SeqCst);
        }
    }
}

/// The waker of one task: its id and the queue to push it onto.
#[derive(Debug)]
pub(crate) struct TaskWaker {
    id: u64,
    /// True from a wake until the executor starts polling the task, so that a task woken many
    /// times is queued once.
    scheduled: AtomicBool,
    /// Set by [`JoinHandle::abort`](crate::task::JoinHandle::abort): the executor drops the task
    /// instead of polling it. Kept here rather than beside the task's result because the
    /// executor reads this line anyway before every poll (`scheduled`).
    aborted: AtomicBool,
    queue: Arc<RunQueue>,
}

impl TaskWaker {
    /// Marks the task to be dropped unpolled, and queues it so that the executor gets to it.
    pub(crate) fn abort(self: &Arc<Self>) {
        self.aborted.store(true, Ordering::Relaxed);
        ArcWake::wake_by_ref(self);
    }
}

impl ArcWake for TaskWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if !arc_self.scheduled.swap(true, Ordering::AcqRel) {
            log::trace!("executor: {} woken", TaskName(arc_self.id));
            arc_self.queue.push(arc_self.id);
        }
    }
}

/// A task: its future and its waker. `None` only while the task is being polled: both are moved
/// out, so the task table is not borrowed while user code runs (it may spawn), and polling
/// costs no reference-count traffic on the waker.
type Task = Option<(Pin<Box<dyn Future<Output = ()>>>, Arc<TaskWaker>)>;

/// See the module docs.
pub(crate) struct Executor {
    tasks: RefCell<Slab<Task>>,
    queue: Arc<RunQueue>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("tasks", &self.tasks.borrow().len()).finish()
    }
}

impl Executor {
    pub(crate) fn new(notifier: Arc<Notifier>) -> Executor {
        let queue = RunQueue {
            queue: Mutex::new(VecDeque::new()),
            remote_pending: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            notifier,
        };
        Executor { tasks: RefCell::new(Slab::new()), queue: Arc::new(queue) }
    }

    /// Adds a task and queues it for its first poll. Returns its waker (which `abort` uses).
    pub(crate) fn spawn(&self, future: Pin<Box<dyn Future<Output = ()>>>) -> Arc<TaskWaker> {
        let mut waker = None;
        self.tasks.borrow_mut().insert_with(|key| {
            let w = Arc::new(TaskWaker {
                id: key.to_u64(),
                scheduled: AtomicBool::new(true),
                aborted: AtomicBool::new(false),
                queue: self.queue.clone(),
            });
            waker = Some(w.clone());
            Some((future, w))
        });
        let waker = waker.expect("insert_with called its closure");
        log::trace!("executor: spawned {}", TaskName(waker.id));
        self.queue.push(waker.id);
        waker
    }

    /// Runs `main` to completion, and every spawned task alongside it.
    pub(crate) fn block_on<F: Future>(&self, reactor: &Reactor, main: F) -> F::Output {
        let mut main = pin!(main);
        let main_waker = Arc::new(TaskWaker {
            id: MAIN_ID,
            scheduled: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            queue: self.queue.clone(),
        });
        let _local = self.queue.enter();
        let mut main_woken = true;
        let mut batch = VecDeque::new();
        let mut polls_since_io = 0;
        loop {
            // 1. The main future, if woken.
            if main_woken {
                main_woken = false;
                polls_since_io += 1;
                main_waker.scheduled.store(false, Ordering::Release);
                log::trace!("executor: polling the main future");
                crate::coop::reset();
                let waker = waker_ref(&main_waker);
                if let Poll::Ready(out) = main.as_mut().poll(&mut Context::from_waker(&waker)) {
                    return out;
                }
            }

            // 2. Every task queued so far.
            self.queue.take_all(&mut batch);
            for id in batch.drain(..) {
                if id == MAIN_ID {
                    main_woken = true;
                } else {
                    self.run(Key::from_u64(id));
                    polls_since_io += 1;
                }
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
            } else if main_woken || !self.queue.is_empty() {
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

    /// Sleeps in the poller until I/O, a timer or another thread wakes a task.
    fn sleep(&self, reactor: &Reactor) -> std::io::Result<()> {
        // `parked` is true only around the wait itself: wakes from other threads must then ring
        // the notifier, while the reactor's own wakes, just after, must not (the thread is awake).
        self.queue.parked.store(true, Ordering::SeqCst);
        let waited = if self.queue.is_empty() { reactor.wait(None) } else { Ok(()) };
        self.queue.parked.store(false, Ordering::SeqCst);
        waited?;
        reactor.wake_ready();
        Ok(())
    }

    /// Polls one task, if it still exists (a stale id from a late wake finds nothing).
    fn run(&self, key: Key) {
        let Some((mut future, waker)) = self.tasks.borrow_mut().get_mut(key).and_then(Option::take)
        else {
            return;
        };
        if waker.aborted.load(Ordering::Relaxed) {
            log::trace!("executor: {} aborted", TaskName(waker.id));
            self.tasks.borrow_mut().remove(key);
            // Dropped unfinished, after the table is released: the harness reports it cancelled.
            drop(future);
            return;
        }
        // Cleared before the poll: a wake during the poll must queue the task again.
        waker.scheduled.store(false, Ordering::Release);
        log::trace!("executor: polling {}", TaskName(waker.id));
        crate::coop::reset();
        let done = future.as_mut().poll(&mut Context::from_waker(&waker_ref(&waker))).is_ready();
        if done {
            log::trace!("executor: {} finished", TaskName(waker.id));
            self.tasks.borrow_mut().remove(key);
            // `future` drops here, after the table is released: its destructors may use it.
        } else if let Some(slot) = self.tasks.borrow_mut().get_mut(key) {
            *slot = Some((future, waker));
        }
    }

    /// Drops every task that has not finished (when the runtime is dropped).
    pub(crate) fn shutdown(&self) {
        let tasks = self.tasks.borrow_mut().drain();
        drop(tasks);
    }
}
