//! Timers: [`sleep`], [`interval`] and [`timeout`].
//!
//! ```sh
//! cargo run -p mini --example timer
//! ```
//!
//! A timer is a deadline that the reactor keeps, together with the waker of the task that waits
//! for it (`runtime/src/time.rs`, `runtime/src/reactor/timers.rs`). The reactor never sleeps in
//! the poller past the earliest deadline, and after each wait it wakes the tasks whose deadlines
//! have passed. So a sleeping task costs nothing while it sleeps: nobody polls it, and the thread
//! is free for other tasks, or asleep itself.
//!
//! What this shows:
//!
//! 1. `sleep` never ends early (the runtime checks the clock before it says "done").
//! 2. Two tasks that sleep at the same time share the thread: the sleeps overlap.
//! 3. `interval` ticks at a fixed period.
//! 4. `timeout` gives up on a slow future, and dropping that future cancels its timer: the
//!    program does not wait for a 10-second sleep that nobody awaits any more.

use std::time::{Duration, Instant};

use mini::time::{interval, sleep, timeout};

fn main() {
    let start = Instant::now();
    mini::block_on(async {
        // 1. The task waits; the thread sleeps in the poller with a timeout of 50 ms.
        let t = Instant::now();
        sleep(Duration::from_millis(50)).await;
        assert!(t.elapsed() >= Duration::from_millis(50), "a timer fired early");
        println!("1. slept 50 ms: {} ms passed (never less)", t.elapsed().as_millis());

        // 2. Two tasks, each sleeping 100 ms, started together.
        let t = Instant::now();
        let a = mini::spawn(sleep(Duration::from_millis(100)));
        let b = mini::spawn(sleep(Duration::from_millis(100)));
        a.await.expect("task a");
        b.await.expect("task b");
        println!(
            "2. two 100 ms sleeps in two tasks took {} ms (one after the other: 200 ms)",
            t.elapsed().as_millis()
        );

        // 3. The first tick is at once, then one every 20 ms.
        let t = Instant::now();
        let mut every = interval(Duration::from_millis(20));
        let mut due = Vec::new();
        for _ in 0..4 {
            due.push((every.tick().await - t).as_millis());
        }
        println!("3. interval of 20 ms: ticks due at {due:?} ms");

        // 4. A future that would take 10 s, given 30 ms.
        let slow = sleep(Duration::from_secs(10));
        match timeout(Duration::from_millis(30), slow).await {
            Ok(()) => unreachable!("the 10 s sleep cannot finish within 30 ms"),
            Err(elapsed) => println!("4. timeout after 30 ms: {elapsed}"),
        }
        let fast = timeout(Duration::from_secs(1), async { 42 }).await;
        println!("   a future that is ready in time: {fast:?}");
    });
    // The 10 s timer went with the dropped future, so block_on did not wait for it.
    println!("done in {} ms", start.elapsed().as_millis());
}
