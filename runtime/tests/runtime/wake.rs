//! Wakers: woken from other threads (while the runtime sleeps in the poller, and racing with
//! it), woken many times, and woken for many tasks at once.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::task::AtomicWaker;
use mini::time::timeout;

use crate::util::{self, run};

/// A correctness bound, not a benchmark: a wake-up that works takes microseconds.
const PROMPT: Duration = Duration::from_secs(2);

/// Waits (in the main future, or in a task) for a value that a std thread sends once the
/// runtime thread is asleep in the poller; checks the wake-up comes promptly.
fn woken_while_parked(in_task: bool) {
    run(move || async move {
        let tid = util::current_tid();
        for round in 0..10 {
            let (tx, rx) = oneshot::channel::<Instant>();
            let tid = tid.clone();
            let thread = std::thread::spawn(move || {
                util::wait_until_asleep(&tid, PROMPT);
                tx.send(Instant::now()).unwrap();
            });
            // If the cross-thread wake is lost, the timeout's timer still wakes the runtime:
            // the value is then found late (the latency check fails) rather than never.
            let sent_at = if in_task {
                let task = mini::spawn(rx);
                timeout(PROMPT * 2, task).await.map(|joined| joined.unwrap())
            } else {
                timeout(PROMPT * 2, rx).await
            };
            let sent_at = sent_at
                .unwrap_or_else(|_| panic!("round {round}: the wake from another thread was lost"))
                .unwrap();
            let latency = sent_at.elapsed();
            assert!(latency < PROMPT, "round {round}: woken {latency:?} after the wake");
            thread.join().unwrap();
        }
    });
}

#[test]
fn the_main_future_woken_from_another_thread_while_parked_wakes_promptly() {
    woken_while_parked(false);
}

#[test]
fn a_task_woken_from_another_thread_while_parked_wakes_promptly() {
    woken_while_parked(true);
}

/// A task that counts its polls, leaves its waker in `waker` on each, and finishes once
/// `release` is set.
struct Counted {
    task: mini::JoinHandle<()>,
    polls: Rc<Cell<u32>>,
    waker: Rc<RefCell<Option<Waker>>>,
    release: Rc<Cell<bool>>,
}

fn counted_task() -> Counted {
    let polls = Rc::new(Cell::new(0));
    let waker = Rc::new(RefCell::new(None));
    let release = Rc::new(Cell::new(false));
    let task = mini::spawn({
        let (polls, waker, release) = (polls.clone(), waker.clone(), release.clone());
        poll_fn(move |cx| {
            polls.set(polls.get() + 1);
            *waker.borrow_mut() = Some(cx.waker().clone());
            if release.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    });
    Counted { task, polls, waker, release }
}

impl Counted {
    fn waker(&self) -> Waker {
        self.waker.borrow().clone().expect("the task has been polled")
    }

    /// Lets the task finish, and checks it was polled `polls` times in all.
    async fn finish(self, polls: u32) {
        self.release.set(true);
        self.waker().wake();
        self.task.await.unwrap();
        assert_eq!(self.polls.get(), polls);
    }
}

#[test]
fn many_wakes_before_the_task_runs_poll_it_once() {
    run(|| async {
        // Woken 1000 times from the runtime's own thread.
        let counted = counted_task();
        mini::yield_now().await;
        assert_eq!(counted.polls.get(), 1);
        let waker = counted.waker();
        for _ in 0..1000 {
            waker.wake_by_ref();
        }
        // Enough rounds for every queued copy of the task to be run, had there been copies.
        for _ in 0..3 {
            mini::yield_now().await;
        }
        assert_eq!(counted.polls.get(), 2, "1000 wakes before a poll must cause one poll");
        counted.finish(3).await;

        // Woken 1000 times from another thread, with clones and by value.
        let counted = counted_task();
        mini::yield_now().await;
        let waker = counted.waker();
        std::thread::spawn(move || {
            for _ in 0..999 {
                // A clone woken by value: the other way a waker reaches the runtime.
                let clone = waker.clone();
                clone.wake();
            }
            waker.wake();
        })
        .join()
        .unwrap();
        for _ in 0..3 {
            mini::yield_now().await;
        }
        assert_eq!(counted.polls.get(), 2, "1000 wakes before a poll must cause one poll");
        counted.finish(3).await;
    });
}

/// A flag another thread sets, and the waker of the task that waits for it.
#[derive(Default)]
struct Flag {
    set: AtomicBool,
    waker: AtomicWaker,
}

#[test]
fn ten_thousand_tasks_woken_from_another_thread_all_finish() {
    const TASKS: usize = 10_000;
    let finished = run(|| async {
        let flags: Vec<Arc<Flag>> = (0..TASKS).map(|_| Arc::default()).collect();
        let tasks: Vec<_> = flags
            .iter()
            .map(|flag| {
                let flag = flag.clone();
                mini::spawn(poll_fn(move |cx| {
                    flag.waker.register(cx.waker());
                    if flag.set.load(Ordering::Acquire) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                }))
            })
            .collect();
        // Every task runs once (they were queued before the main future) and waits.
        mini::yield_now().await;
        assert!(tasks.iter().all(|t| !t.is_finished()));

        let setter = std::thread::spawn(move || {
            for flag in flags {
                flag.set.store(true, Ordering::Release);
                flag.waker.wake();
            }
        });
        let start = Instant::now();
        let mut finished = 0;
        for task in tasks {
            timeout(PROMPT * 2, task).await.expect("a task was never woken").unwrap();
            finished += 1;
        }
        // As above: a lost wake-up would show as the timeout's timer waking everything late.
        let took = start.elapsed();
        assert!(took < PROMPT, "the tasks took {took:?}: wake-ups were lost");
        setter.join().unwrap();
        finished
    });
    assert_eq!(finished, TASKS);
}

/// Two threads wake two tasks at about the same moment, again and again, so that now and then
/// one wake lands while the runtime is on its way out of the poller because of the other.
#[test]
fn wakes_from_two_threads_racing_with_the_poller_are_never_lost() {
    const ROUNDS: usize = 20_000;
    run(|| async {
        let helpers: Vec<_> = (0..2)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<oneshot::Sender<()>>();
                let thread = std::thread::spawn(move || {
                    for sender in rx {
                        let _ = sender.send(());
                    }
                });
                (tx, thread)
            })
            .collect();
        for round in 0..ROUNDS {
            // Two tasks, not one future: each wake must queue something of its own.
            let mut tasks = Vec::new();
            for (helper, _) in &helpers {
                let (tx, rx) = oneshot::channel();
                tasks.push(mini::spawn(rx));
                helper.send(tx).unwrap();
            }
            let both = async {
                for task in tasks {
                    task.await.unwrap().unwrap();
                }
            };
            // A lost wake-up leaves the runtime asleep until its next timer, here the
            // timeout's; the tasks then finish "in time" but late, so check the time taken.
            let start = Instant::now();
            let in_time = timeout(PROMPT, both).await.is_ok();
            let took = start.elapsed();
            assert!(
                in_time && took < PROMPT / 2,
                "round {round}: the tasks finished after {took:?}: a wake from another thread \
                 was lost, and only a timer woke the runtime"
            );
        }
        for (tx, thread) in helpers {
            drop(tx);
            thread.join().unwrap();
        }
    });
}
