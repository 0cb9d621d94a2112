//! `JoinHandle`: a task's output, aborting it, its panics, and detaching it.

use std::cell::Cell;
use std::future::{pending, poll_fn};
use std::rc::Rc;
use std::task::Poll;

use futures::channel::oneshot;
use futures::FutureExt;

use crate::util::{panic_message, run, watchdog, DropCounter, LIMIT};

#[test]
fn join_returns_the_output_of_the_task() {
    run(|| async {
        assert_eq!(mini::spawn(async { 6 * 7 }).await.unwrap(), 42);
        let owned = mini::spawn(async { String::from("owned output") });
        assert_eq!(owned.await.unwrap(), "owned output");
        // A task that awaits another task, after the inner one has already finished.
        let inner = mini::spawn(async { vec![1, 2, 3] });
        let outer = mini::spawn(async move {
            mini::yield_now().await;
            inner.await.unwrap().len()
        });
        assert_eq!(outer.await.unwrap(), 3);
    });
}

#[test]
fn abort_drops_a_waiting_task_and_reports_it_cancelled() {
    run(|| async {
        let drops = DropCounter::default();
        let polls = Rc::new(Cell::new(0));
        let guard = drops.guard();
        let counted = polls.clone();
        let task = mini::spawn(async move {
            let _guard = guard;
            poll_fn(|_| {
                counted.set(counted.get() + 1);
                Poll::<()>::Pending
            })
            .await
        });
        mini::yield_now().await;
        assert_eq!(polls.get(), 1, "the task has started and waits");
        assert!(!task.is_finished());

        task.abort();
        // The executor reaches the task on its next round.
        mini::yield_now().await;
        assert!(task.is_finished(), "an aborted task counts as finished");
        assert_eq!(drops.dropped(), 1, "the aborted task's future was dropped");
        assert_eq!(polls.get(), 1, "an aborted task is not polled again");

        let err = task.await.unwrap_err();
        assert!(err.is_cancelled() && !err.is_panic());
        assert_eq!(err.to_string(), "task was cancelled");
    });
}

#[test]
fn abort_before_the_first_poll_means_it_never_runs() {
    run(|| async {
        let drops = DropCounter::default();
        let ran = Rc::new(Cell::new(false));
        let guard = drops.guard();
        let task = mini::spawn({
            let ran = ran.clone();
            async move {
                let _guard = guard;
                ran.set(true);
            }
        });
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(!ran.get(), "the aborted task ran");
        assert_eq!(drops.dropped(), 1);
    });
}

#[test]
fn a_task_can_abort_a_task_it_is_already_awaiting() {
    run(|| async {
        let drops = DropCounter::default();
        let guard = drops.guard();
        let victim = mini::spawn(async move {
            let _guard = guard;
            pending::<()>().await
        });
        let aborter = mini::spawn(async move {
            let mut victim = victim;
            // Await first (this leaves the aborter's waker with the handle), then abort: the
            // abort must wake the aborter with the result.
            assert!(futures::poll!(&mut victim).is_pending());
            victim.abort();
            victim.await.unwrap_err().is_cancelled()
        });
        assert!(aborter.await.unwrap(), "the awaiter is told the task was cancelled");
        assert_eq!(drops.dropped(), 1);
    });
}

#[test]
fn abort_after_completion_changes_nothing() {
    run(|| async {
        let task = mini::spawn(async { 9 });
        while !task.is_finished() {
            mini::yield_now().await;
        }
        task.abort();
        assert_eq!(task.await.unwrap(), 9);
    });
}

#[test]
fn a_panicking_task_is_isolated_and_reports_its_message() {
    run(|| async {
        let formatted = mini::spawn(async {
            mini::yield_now().await;
            // Formatted at run time, so the payload is a `String` (a constant message would
            // be folded into a `&str` by the compiler).
            let n = std::hint::black_box(42);
            panic!("boom {n}")
        });
        let literal = mini::spawn(async { panic!("plain boom") });
        // Panics in a detached task must not reach anyone either.
        drop(mini::spawn(async { panic!("detached boom") }));
        let bystander = mini::spawn(async {
            for _ in 0..5 {
                mini::yield_now().await;
            }
            "still here"
        });

        let err = formatted.await.unwrap_err();
        assert!(err.is_panic() && !err.is_cancelled());
        assert_eq!(err.to_string(), "task panicked: boom 42");
        assert_eq!(*err.into_panic().downcast::<String>().unwrap(), "boom 42");

        let err = literal.await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(panic_message(&*err.into_panic()), "plain boom");

        assert_eq!(bystander.await.unwrap(), "still here");
        // The main future and the runtime are unharmed: timers and new tasks still work.
        mini::time::sleep(std::time::Duration::from_millis(1)).await;
        assert_eq!(mini::spawn(async { 1 }).await.unwrap(), 1);
    });
}

#[test]
fn dropping_the_handle_detaches_the_task() {
    let out = run(|| async {
        let (go_tx, go_rx) = oneshot::channel::<u32>();
        let (done_tx, done_rx) = oneshot::channel();
        let handle = mini::spawn(async move {
            let n = go_rx.await.unwrap();
            done_tx.send(n * 2).unwrap();
        });
        drop(handle);
        // The detached task is waiting; wake it, and it must finish its work.
        go_tx.send(21).unwrap();
        done_rx.await.unwrap()
    });
    assert_eq!(out, 42);
}

#[test]
fn a_handle_outliving_its_runtime_reports_the_task_cancelled() {
    watchdog(LIMIT, || {
        let rt = mini::Runtime::new().unwrap();
        let mut handle = None;
        rt.block_on(async {
            handle = Some(mini::spawn(pending::<()>()));
            mini::yield_now().await;
        });
        let handle = handle.unwrap();
        // The runtime drops the unfinished task. Nothing can ever complete it now, so its
        // handle must say so rather than wait forever (with no waker that could ever fire).
        drop(rt);
        let result = handle.now_or_never().expect("the handle of a dropped task pends forever");
        assert!(result.unwrap_err().is_cancelled());
    });
}
