//! The executor: in what order tasks run, `yield_now`, how long tasks live, and what misuse
//! does (a clear panic, never a hang).

use std::cell::{Cell, RefCell};
use std::future::{pending, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::util::{self, panic_message, run, watchdog, DropCounter, LIMIT};

#[test]
fn tasks_first_run_in_spawn_order() {
    let order = run(|| async {
        let order = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let order = order.clone();
                mini::spawn(async move { order.borrow_mut().push(i) })
            })
            .collect();
        // Spawning does not run anything: the tasks wait until the main future yields.
        assert!(order.borrow().is_empty(), "a task ran before the main future yielded");
        for handle in handles {
            handle.await.unwrap();
        }
        order.take()
    });
    assert_eq!(order, (0..100).collect::<Vec<_>>());
}

#[test]
fn yield_now_sends_a_task_to_the_back_of_the_queue() {
    let order = run(|| async {
        let order = Rc::new(RefCell::new(Vec::new()));
        let task = |name: &'static str| {
            let order = order.clone();
            mini::spawn(async move {
                for i in 0..3 {
                    order.borrow_mut().push(format!("{name}{i}"));
                    mini::yield_now().await;
                }
            })
        };
        let (a, b) = (task("a"), task("b"));
        a.await.unwrap();
        b.await.unwrap();
        order.take()
    });
    assert_eq!(order, ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn yield_now_lets_other_tasks_run() {
    let spins = run(|| async {
        let flag = Rc::new(Cell::new(false));
        // Spawned first, so it runs first: it can only see the flag if yielding lets the
        // second task run. The bound turns a yield that does not yield into a failure.
        let spinner = mini::spawn({
            let flag = flag.clone();
            async move {
                let mut spins = 0;
                while !flag.get() && spins < 1000 {
                    spins += 1;
                    mini::yield_now().await;
                }
                spins
            }
        });
        mini::spawn(async move { flag.set(true) });
        spinner.await.unwrap()
    });
    assert_eq!(spins, 1, "the spinner should see the flag after one yield");
}

#[test]
fn timers_and_sockets_are_served_while_tasks_keep_the_executor_busy() {
    run(|| async {
        let stop = Rc::new(Cell::new(false));
        // Always ready to run: the executor never runs out of work while it spins.
        let spinner = mini::spawn({
            let stop = stop.clone();
            async move {
                let start = Instant::now();
                while !stop.get() && start.elapsed() < LIMIT / 2 {
                    mini::yield_now().await;
                }
                stop.get()
            }
        });
        let start = Instant::now();
        mini::time::sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        let (mut client, mut server) = util::pair().await.unwrap();
        client.write_all(b"busy").await.unwrap();
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"busy");
        stop.set(true);
        assert!(spinner.await.unwrap(), "the spinner timed out: the main future starved");
    });
}

/// The main future alone keeps the executor busy (it yields in a loop, no task is queued):
/// timers must still fire, or this would spin for ever.
#[test]
fn timers_fire_while_the_main_future_keeps_yielding() {
    run(|| async {
        let fired = Rc::new(Cell::new(false));
        mini::spawn({
            let fired = fired.clone();
            async move {
                mini::time::sleep(Duration::from_millis(10)).await;
                fired.set(true);
            }
        });
        let start = Instant::now();
        while !fired.get() {
            assert!(start.elapsed() < LIMIT / 2, "the timer never fired while main yielded");
            mini::yield_now().await;
        }
    });
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    let payload = catch_unwind(|| mini::spawn(async {})).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("inside a mini runtime"), "unclear message: {message:?}");

    let payload = catch_unwind(|| mini::net::TcpListener::bind("127.0.0.1:0")).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("inside a mini runtime"), "unclear message: {message:?}");
}

#[test]
fn a_timer_polled_by_another_executor_panics_rather_than_hangs() {
    let payload = watchdog(LIMIT, || {
        catch_unwind(|| {
            futures::executor::block_on(mini::time::sleep(Duration::from_secs(1)));
        })
    })
    .unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("inside a mini runtime"), "unclear message: {message:?}");
}

#[test]
fn nested_block_on_panics_and_the_outer_runtime_carries_on() {
    run(|| async {
        let payload = catch_unwind(|| mini::block_on(async { 1 })).unwrap_err();
        let message = panic_message(&*payload);
        assert!(message.contains("within a mini runtime"), "unclear message: {message:?}");

        let rt = mini::Runtime::new().unwrap();
        let payload = catch_unwind(AssertUnwindSafe(|| rt.block_on(async { 1 }))).unwrap_err();
        assert!(panic_message(&*payload).contains("within a mini runtime"));

        // The outer runtime's context survived the failed attempts.
        assert_eq!(mini::spawn(async { 7 }).await.unwrap(), 7);
        mini::time::sleep(Duration::from_millis(1)).await;
    });
}

#[test]
fn unfinished_tasks_are_dropped_with_the_runtime() {
    watchdog(LIMIT, || {
        let drops = DropCounter::default();
        let rt = mini::Runtime::new().unwrap();
        rt.block_on(async {
            // One task that started and waits forever, one that never got to run.
            let started = drops.guard();
            mini::spawn(async move {
                let _guard = started;
                pending::<()>().await
            });
            mini::yield_now().await;
            let never_polled = drops.guard();
            mini::spawn(async move {
                let _guard = never_polled;
            });
        });
        assert_eq!(drops.dropped(), 0, "block_on returned: the tasks stay in the runtime");
        drop(rt);
        assert_eq!(drops.dropped(), 2, "dropping the runtime drops its tasks");

        // `mini::block_on` owns its runtime, so its tasks are gone when it returns.
        let drops = DropCounter::default();
        let guard = drops.guard();
        mini::block_on(async move {
            mini::spawn(async move {
                let _guard = guard;
                pending::<()>().await
            });
            mini::yield_now().await;
        });
        assert_eq!(drops.dropped(), 1);
    });
}

#[test]
fn a_runtime_keeps_its_tasks_and_sockets_across_block_on_calls() {
    watchdog(LIMIT, || {
        let rt = mini::Runtime::new().unwrap();
        let (task, listener, addr) = rt.block_on(async {
            let task = mini::spawn(async {
                mini::yield_now().await;
                mini::time::sleep(Duration::from_millis(5)).await;
                5
            });
            let (listener, addr) = util::listener();
            (task, listener, addr)
        });
        assert!(!task.is_finished());
        assert_eq!(rt.block_on(task).unwrap(), 5);

        let echoed = rt.block_on(async move {
            util::spawn_echo_server(listener);
            let mut client = mini::net::TcpStream::connect(addr).await.unwrap();
            client.write_all(b"again").await.unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            util::read_to_end(&mut client, 64).await.unwrap()
        });
        assert_eq!(echoed, b"again");
    });
}

/// A future whose destructor panics, after it has completed.
struct DoneThenPanicOnDrop;

impl Future for DoneThenPanicOnDrop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

impl Drop for DoneThenPanicOnDrop {
    fn drop(&mut self) {
        panic!("destructor fails")
    }
}

/// A task's destructor that panics unwinds `block_on` (the harness catches a panic in `poll`,
/// not in `drop`). The task queued behind it in the same batch is still marked as queued, so no
/// wake-up would queue it again: it must run in the next `block_on` all the same.
#[test]
fn a_panicking_destructor_strands_no_queued_task() {
    watchdog(LIMIT, || {
        let rt = mini::Runtime::new().unwrap();
        let behind = RefCell::new(None);
        let payload = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                mini::spawn(DoneThenPanicOnDrop);
                *behind.borrow_mut() = Some(mini::spawn(async { 5 }));
                pending::<()>().await
            })
        }))
        .unwrap_err();
        assert_eq!(panic_message(&*payload), "destructor fails");
        let behind = behind.borrow_mut().take().expect("spawned before the panic");
        assert_eq!(rt.block_on(behind).unwrap(), 5);
    });
}

#[test]
fn a_panic_in_the_main_future_leaves_the_runtime_usable() {
    watchdog(LIMIT, || {
        let rt = mini::Runtime::new().unwrap();
        let payload = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                mini::yield_now().await;
                panic!("main future fails")
            })
        }))
        .unwrap_err();
        assert_eq!(panic_message(&*payload), "main future fails");
        // The context was removed on the way out, and the runtime runs the next block_on.
        assert!(catch_unwind(|| mini::spawn(async {})).is_err(), "a stale context is left");
        let out = rt.block_on(async {
            mini::time::sleep(Duration::from_millis(1)).await;
            mini::spawn(async { 8 }).await.unwrap()
        });
        assert_eq!(out, 8);
    });
}
