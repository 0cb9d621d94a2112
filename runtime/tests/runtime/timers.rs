//! Timers: `sleep` is never early and fires in deadline order; `timeout` and `interval` keep
//! their contracts; a dropped timer is really gone.

use std::cell::RefCell;
use std::future::{pending, Future};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::{waker, ArcWake};
use mini::time::{interval, sleep, sleep_until, timeout, Elapsed};

use crate::util::{run, watchdog, DropCounter, LIMIT};

const MS: Duration = Duration::from_millis(1);

#[test]
fn sleep_never_returns_early() {
    run(|| async {
        let tasks: Vec<_> = (0..60u64)
            .map(|i| {
                // Lengths from 0 to ~25 ms, many not whole milliseconds, in scrambled order.
                let length = Duration::from_micros((i * 7919) % 25_000);
                mini::spawn(async move {
                    let start = Instant::now();
                    sleep(length).await;
                    let slept = start.elapsed();
                    assert!(slept >= length, "slept {slept:?}, asked for {length:?}");
                    let deadline = Instant::now() + length;
                    sleep_until(deadline).await;
                    let now = Instant::now();
                    assert!(now >= deadline, "sleep_until returned {:?} early", deadline - now);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // A deadline in the past, or now, completes at once.
        let mut past = pin!(sleep_until(Instant::now() - 10 * MS));
        assert!(futures::poll!(past.as_mut()).is_ready());
        let mut zero = pin!(sleep(Duration::ZERO));
        assert!(futures::poll!(zero.as_mut()).is_ready());
    });
}

/// Spawns sleeps with deadlines `base + offset ms` in a scrambled order; returns the offsets in
/// the order the sleeps completed. With `busy`, the runtime's thread is kept busy past the
/// last deadline, so that all of them expire in the same turn of the reactor.
async fn completion_order(busy: bool) -> Vec<u32> {
    let base = Instant::now() + 5 * MS;
    let order = Rc::new(RefCell::new(Vec::new()));
    let offsets = [7u32, 2, 9, 0, 5, 3, 8, 1, 6, 4];
    let tasks: Vec<_> = offsets
        .iter()
        .map(|&offset| {
            let order = order.clone();
            mini::spawn(async move {
                sleep_until(base + offset * MS).await;
                order.borrow_mut().push(offset);
            })
        })
        .collect();
    if busy {
        mini::yield_now().await; // every task has set its timer
        while Instant::now() < base + 10 * MS {
            std::hint::spin_loop();
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    order.take()
}

#[test]
fn sleeps_complete_in_deadline_order() {
    let (spread, together) =
        run(|| async { (completion_order(false).await, completion_order(true).await) });
    let expected: Vec<_> = (0..10).collect();
    assert_eq!(spread, expected, "deadlines that expire one by one");
    assert_eq!(together, expected, "deadlines that expire in the same turn");
}

#[test]
fn timeout_returns_the_output_of_a_fast_future() {
    run(|| async {
        assert_eq!(timeout(LIMIT, async { 3 }).await, Ok(3));
        let slow_but_in_time = async {
            sleep(5 * MS).await;
            mini::yield_now().await;
            "in time"
        };
        assert_eq!(timeout(LIMIT, slow_but_in_time).await, Ok("in time"));
    });
}

#[test]
fn timeout_gives_elapsed_for_a_slow_future_and_drops_it() {
    run(|| async {
        let drops = DropCounter::default();
        let guard = drops.guard();
        let slow = async move {
            let _guard = guard;
            pending::<()>().await
        };
        let start = Instant::now();
        let result = timeout(30 * MS, slow).await;
        let waited = start.elapsed();
        let err: Elapsed = result.unwrap_err();
        assert!(waited >= 30 * MS, "gave up after {waited:?}, before the 30 ms");
        assert_eq!(drops.dropped(), 1, "the slow future was dropped");

        assert_eq!(err.to_string(), "deadline has elapsed");
        assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::TimedOut);
    });
}

#[test]
fn interval_ticks_at_once_then_a_period_apart() {
    run(|| async {
        let period = 15 * MS;
        let mut ticks = interval(period);
        assert_eq!(ticks.period(), period);
        let first = {
            let mut tick = pin!(ticks.tick());
            match futures::poll!(tick.as_mut()) {
                Poll::Ready(due) => due,
                Poll::Pending => panic!("the first tick must complete at once"),
            }
        };
        let mut previous = first;
        for n in 1..=5u32 {
            let due = ticks.tick().await;
            let now = Instant::now();
            assert!(due - previous >= period, "tick {n} came {:?} after the last", due - previous);
            assert!(now >= due, "tick {n} completed before it was due");
            assert!(now - first >= period * n, "tick {n} completed early");
            previous = due;
        }
    });
}

#[test]
fn interval_skips_missed_ticks_instead_of_bursting() {
    run(|| async {
        let period = 10 * MS;
        let mut ticks = interval(period);
        ticks.tick().await;
        // Keep the thread busy for several periods, as a slow task would.
        let stall_end = Instant::now() + 4 * period;
        while Instant::now() < stall_end {
            std::hint::spin_loop();
        }
        let late = Instant::now();
        {
            let mut tick = pin!(ticks.tick());
            assert!(futures::poll!(tick.as_mut()).is_ready(), "the overdue tick must come at once");
        }
        ticks.tick().await;
        let gap = late.elapsed();
        assert!(gap >= period, "missed ticks came in a burst: the next came after {gap:?}");
    });
}

/// A waker that counts its wakes, to see whether the runtime still holds a timer.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_sleep_cancels_its_timer() {
    run(|| async {
        let count = Arc::new(CountingWaker::default());
        let waker = waker(count.clone());
        let mut short = Box::pin(sleep(10 * MS));
        assert!(short.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        drop(waker);
        assert!(Arc::strong_count(&count) > 1, "the registered timer holds the waker");
        drop(short);
        assert_eq!(Arc::strong_count(&count), 1, "dropping the sleep drops its timer's waker");
        // Sleep well past the dropped deadline: its timer must not fire.
        sleep(40 * MS).await;
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "a dropped sleep's timer fired");
    });
}

#[test]
fn a_runtime_does_not_wait_for_dropped_or_abandoned_timers() {
    let elapsed = watchdog(LIMIT, || {
        let start = Instant::now();
        mini::block_on(async {
            // A sleep that registered its timer, then was dropped.
            let mut long = Box::pin(sleep(Duration::from_secs(30)));
            assert!(futures::poll!(long.as_mut()).is_pending());
            drop(long);
            // A task asleep in a long timer, aborted.
            let sleeper = mini::spawn(sleep(Duration::from_secs(30)));
            mini::yield_now().await;
            sleeper.abort();
            assert!(sleeper.await.unwrap_err().is_cancelled());
            // A timeout whose future finished first.
            assert_eq!(timeout(Duration::from_secs(30), async { 1 }).await, Ok(1));
            // Something that needs the poller, so the runtime parks with whatever timers
            // are left: it must wake for the I/O, not at a dead timer's deadline.
            let (mut client, mut server) = crate::util::pair().await.unwrap();
            client.write_all(b"x").await.unwrap();
            let mut buf = [0];
            server.read_exact(&mut buf).await.unwrap();
            // A detached task asleep in a long timer; block_on must not wait for it.
            mini::spawn(sleep(Duration::from_secs(30)));
        });
        start.elapsed()
    });
    assert!(elapsed < Duration::from_secs(2), "block_on took {elapsed:?}");
}

#[test]
fn sleep_reset_moves_the_deadline() {
    run(|| async {
        let start = Instant::now();
        let mut s = Box::pin(sleep(Duration::from_secs(30)));
        assert!(futures::poll!(s.as_mut()).is_pending());
        s.as_mut().reset(start + 10 * MS);
        assert_eq!(s.deadline(), start + 10 * MS);
        s.await;
        let slept = start.elapsed();
        assert!(slept >= 10 * MS && slept < Duration::from_secs(2), "slept {slept:?}");
    });
}

#[test]
fn very_long_durations_mean_never_rather_than_a_panic() {
    run(|| async {
        // `Duration::MAX` is the usual way to say "no timeout"; it must not overflow.
        assert_eq!(timeout(Duration::MAX, async { 5 }).await, Ok(5));
        let mut forever = Box::pin(sleep(Duration::MAX));
        assert!(futures::poll!(forever.as_mut()).is_pending());
    });
}

/// Resetting a sleep that a task is already waiting on wakes that task at the new deadline,
/// without anyone polling the sleep again in between.
#[test]
fn a_reset_sleep_wakes_its_waiting_task_at_the_new_deadline() {
    run(|| async {
        let shared = Rc::new(RefCell::new(Box::pin(sleep(Duration::from_secs(30)))));
        let waiter = mini::spawn({
            let shared = shared.clone();
            std::future::poll_fn(move |cx| shared.borrow_mut().as_mut().poll(cx))
        });
        mini::yield_now().await; // the task polls the sleep once and waits
        let start = Instant::now();
        shared.borrow_mut().as_mut().reset(start + 10 * MS);
        timeout(Duration::from_secs(2), waiter)
            .await
            .expect("the waiting task was never woken at the new deadline")
            .unwrap();
        assert!(start.elapsed() >= 10 * MS);
    });
}

/// A `Sleep` holds numbers, not the runtime (so it is `Send + Sync`, for hyper): made on any
/// thread, it works when polled on the runtime's; dropped on another thread after it
/// registered, its timer fires once for nothing and the runtime carries on.
#[test]
fn a_sleep_may_be_made_and_dropped_on_other_threads() {
    run(|| async {
        let made_elsewhere = std::thread::spawn(|| sleep(10 * MS)).join().unwrap();
        let start = Instant::now();
        made_elsewhere.await;
        assert!(start.elapsed() >= 10 * MS, "slept {:?}", start.elapsed());

        let mut registered = Box::pin(sleep(5 * MS));
        assert!(futures::poll!(registered.as_mut()).is_pending());
        std::thread::spawn(move || drop(registered)).join().unwrap();
        // Past the orphaned deadline: its spurious wake-up must do no harm.
        assert_eq!(timeout(LIMIT, sleep(20 * MS)).await, Ok(()));
    });
}

#[test]
#[should_panic(expected = "mini::time::sleep must be used inside a mini runtime")]
fn polling_a_sleep_outside_a_runtime_panics_clearly() {
    futures::executor::block_on(sleep(10 * MS));
}

/// A timer key is unique in the process: a sleep registered in a runtime since dropped (whose
/// number the next runtime may reuse), then dropped in another runtime, must not cancel that
/// runtime's timer set for the very same deadline. (With a sequence per runtime both keys were
/// `(deadline, 0)`, and the second sleep never woke.)
#[test]
fn a_stale_sleep_never_cancels_a_timer_of_a_later_runtime() {
    watchdog(LIMIT, || {
        let deadline = Instant::now() + 20 * MS;
        let first = mini::Runtime::new().unwrap();
        // The registered sleep is returned on purpose, to outlive its runtime.
        #[allow(clippy::async_yields_async)]
        let stale = first.block_on(async {
            let mut stale = Box::pin(sleep_until(deadline));
            assert!(futures::poll!(stale.as_mut()).is_pending());
            stale
        });
        drop(first);
        mini::block_on(async move {
            let mut fresh = pin!(sleep_until(deadline));
            assert!(futures::poll!(fresh.as_mut()).is_pending());
            drop(stale);
            assert_eq!(timeout(LIMIT, fresh).await, Ok(()), "the fresh timer was cancelled");
        });
    });
}
