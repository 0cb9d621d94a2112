//! Micro-benchmarks of `mini`, each beside tokio's current-thread runtime doing the same work:
//! spawn + join, wake-ups, and timers. `cargo bench -p microbench`; filter with a name, as in
//! `cargo bench -p microbench -- timer`.
//!
//! Each criterion group holds one benchmark run twice, as `mini` and as `tokio`, so the report
//! shows the two side by side. The bodies are written once, generic over [`Rt`], so both
//! runtimes run the very same code.
//!
//! Every benchmark times its loop *inside* a running runtime: criterion's `iter_custom` hands us
//! an iteration count, we enter the runtime once and read the clock around the loop only. The
//! cost of entering `block_on`, and any set-up a benchmark needs, stays out of the figure.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Bencher, Criterion, SamplingMode, Throughput};

criterion_group! {
    name = benches;
    // Short runs: the whole `cargo bench -p microbench` takes about 30 s (on 2 cores).
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = spawn_join, wake, timers
}
criterion_main!(benches);

/// Tasks spawned, or timers set, per iteration in the batch benchmarks.
const BATCH: u64 = 1000;

fn spawn_join(c: &mut Criterion) {
    side_by_side(c, "spawn_join", 1, spawn_join_one::<Mini>, spawn_join_one::<Tokio>);
    side_by_side(
        c,
        "spawn_join_batch_1000",
        BATCH,
        spawn_join_batch::<Mini>,
        spawn_join_batch::<Tokio>,
    );
}

fn wake(c: &mut Criterion) {
    side_by_side(
        c,
        "wake_same_thread_round_trip",
        2,
        wake_same_thread::<Mini>,
        wake_same_thread::<Tokio>,
    );
    side_by_side(
        c,
        "wake_cross_thread_round_trip",
        1,
        wake_cross_thread::<Mini>,
        wake_cross_thread::<Tokio>,
    );
}

fn timers(c: &mut Criterion) {
    side_by_side(
        c,
        "timer_insert_cancel_1000",
        BATCH,
        timer_insert_cancel::<Mini>,
        timer_insert_cancel::<Tokio>,
    );
    let mut group = c.benchmark_group("timer_fire_10000");
    // Each iteration also spends, untimed, about 6 ms registering its timers and waiting for
    // them to come due (see `timer_fire`), three or four times what it measures. Short targets,
    // and the same number of iterations in every sample (criterion's default grows it from 1 to
    // 20 times a base, at least 210 iterations in all), keep the pair near 10 s of wall time.
    group
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(FIRE_TIMERS));
    group.bench_function("mini", timer_fire::<Mini>);
    group.bench_function("tokio", timer_fire::<Tokio>);
    group.finish();
}

/// One criterion group named `name` with the benchmark on each runtime. `elements` is the number
/// of operations in one iteration; criterion reports the time of an iteration and, from this,
/// the operations per second.
fn side_by_side(
    c: &mut Criterion,
    name: &str,
    elements: u64,
    mini: fn(&mut Bencher<'_>),
    tokio: fn(&mut Bencher<'_>),
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(elements));
    group.bench_function("mini", mini);
    group.bench_function("tokio", tokio);
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// The two runtimes behind one interface

/// What the benchmarks need from a runtime. Each method is the runtime's own function, unwrapped.
/// (`'static`, so that a future built from these is `'static` when its parts are.)
trait Rt: 'static {
    type JoinHandle<T>: Future<Output = Result<T, Self::JoinError>>;
    type JoinError: std::fmt::Debug;
    type Sleep: Future<Output = ()>;

    fn new() -> Self;
    fn block_on<F: Future>(&self, future: F) -> F::Output;
    /// `block_on`, in a context where [`spawn_local`](Rt::spawn_local) works too.
    fn block_on_local<F: Future>(&self, future: F) -> F::Output;
    fn spawn<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Spawns a task that need not be `Send`; only inside [`block_on_local`](Rt::block_on_local).
    fn spawn_local<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static;
    fn sleep_until(deadline: Instant) -> Self::Sleep;
    fn yield_now() -> impl Future<Output = ()>;
    /// Runs `future` without a cooperative budget: tokio's makes the 129th timer polled in one
    /// task poll return `Pending` unregistered; `mini` budgets only socket I/O.
    fn unconstrained<F: Future>(future: F) -> impl Future<Output = F::Output>;
}

/// `mini` (its default backend, or the one `MINI_BACKEND` names).
struct Mini(mini::Runtime);

impl Rt for Mini {
    type JoinHandle<T> = mini::JoinHandle<T>;
    type JoinError = mini::JoinError;
    type Sleep = mini::time::Sleep;

    fn new() -> Self {
        Mini(mini::Runtime::new().expect("mini runtime"))
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    /// `mini`'s tasks never need to be `Send`.
    fn block_on_local<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    fn spawn<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        mini::spawn(future)
    }
    fn spawn_local<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        mini::spawn(future)
    }
    fn sleep_until(deadline: Instant) -> Self::Sleep {
        mini::time::sleep_until(deadline)
    }
    fn yield_now() -> impl Future<Output = ()> {
        mini::yield_now()
    }
    fn unconstrained<F: Future>(future: F) -> impl Future<Output = F::Output> {
        future
    }
}

/// tokio's current-thread runtime with its I/O and time drivers: the peer of `mini`. A `LocalSet`
/// is how it runs tasks that are not `Send`, which `mini` runs as a matter of course.
struct Tokio(tokio::runtime::Runtime);

impl Rt for Tokio {
    type JoinHandle<T> = tokio::task::JoinHandle<T>;
    type JoinError = tokio::task::JoinError;
    type Sleep = tokio::time::Sleep;

    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        Tokio(rt.expect("tokio runtime"))
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    fn block_on_local<F: Future>(&self, future: F) -> F::Output {
        tokio::task::LocalSet::new().block_on(&self.0, future)
    }
    fn spawn<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(future)
    }
    fn spawn_local<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        tokio::task::spawn_local(future)
    }
    fn sleep_until(deadline: Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.into())
    }
    fn yield_now() -> impl Future<Output = ()> {
        tokio::task::yield_now()
    }
    fn unconstrained<F: Future>(future: F) -> impl Future<Output = F::Output> {
        tokio::task::unconstrained(future)
    }
}

// ---------------------------------------------------------------------------------------------
// Spawn + join

/// One iteration: spawn a task that does nothing and await its handle. That is allocating the
/// task, queueing it, one poll of it, completing it, and waking and polling the spawner again.
fn spawn_join_one<R: Rt>(b: &mut Bencher<'_>) {
    let rt = R::new();
    b.iter_custom(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                R::spawn(async {}).await.unwrap();
            }
            start.elapsed()
        })
    });
}

/// One iteration: spawn 1000 tasks that do nothing, then await their handles in order. The
/// runtime polls the tasks in a batch, and the spawner sleeps and wakes far less often. (tokio's
/// cooperative budget also counts the handles: the spawner yields once per 128 of them.)
fn spawn_join_batch<R: Rt>(b: &mut Bencher<'_>) {
    let rt = R::new();
    let mut handles = Vec::with_capacity(BATCH as usize);
    b.iter_custom(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                handles.extend((0..BATCH).map(|_| R::spawn(async {})));
                for handle in handles.drain(..) {
                    handle.await.unwrap();
                }
            }
            start.elapsed()
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Wake-ups

/// A notification between two tasks of one thread: a flag, and the waker of the task that waits
/// for it. No atomics and no lock, the cheapest wake source there is, so the figure is the
/// runtime's: cloning a waker, waking it, scheduling the task and polling it.
#[derive(Default)]
struct Signal {
    set: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl Signal {
    fn notify(&self) {
        self.set.set(true);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                self.waiter.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// One iteration: a round trip of two wakes between two spawned tasks. `ping` wakes `pong` and
/// waits; `pong` runs, wakes `ping` back and waits. The tasks share `Rc`s, so on tokio they are
/// local tasks in a `LocalSet`.
fn wake_same_thread<R: Rt>(b: &mut Bencher<'_>) {
    let rt = R::new();
    b.iter_custom(|iters| {
        rt.block_on_local(async {
            let there = Rc::new(Signal::default());
            let back = Rc::new(Signal::default());
            let pong = R::spawn_local({
                let (there, back) = (there.clone(), back.clone());
                async move {
                    for _ in 0..iters {
                        there.wait().await;
                        back.notify();
                    }
                }
            });
            let ping = R::spawn_local(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    there.notify();
                    back.wait().await;
                }
                start.elapsed()
            });
            pong.await.unwrap();
            ping.await.unwrap()
        })
    });
}

/// One iteration: the main future hands its waker to a plain thread and waits; the thread, parked
/// on a channel, wakes up, sets a flag and calls `wake`. The runtime meanwhile sleeps in its
/// poller, so the round trip is two thread wake-ups: ours through the channel (the same on both
/// runtimes) and the runtime's own from another thread, through the poller (an eventfd on both).
fn wake_cross_thread<R: Rt>(b: &mut Bencher<'_>) {
    let rt = R::new();
    b.iter_custom(|iters| {
        let woken = Arc::new(AtomicBool::new(false));
        let (to_waker, wakers) = mpsc::channel::<Waker>();
        let waker_thread = std::thread::spawn({
            let woken = woken.clone();
            move || {
                for waker in wakers {
                    woken.store(true, Ordering::Release);
                    waker.wake();
                }
            }
        });
        let elapsed = rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let mut sent = false;
                poll_fn(|cx| {
                    if woken.swap(false, Ordering::Acquire) {
                        return Poll::Ready(());
                    }
                    if !sent {
                        sent = true;
                        to_waker.send(cx.waker().clone()).unwrap();
                    }
                    Poll::Pending
                })
                .await;
            }
            start.elapsed()
        });
        drop(to_waker);
        waker_thread.join().unwrap();
        elapsed
    });
}

// ---------------------------------------------------------------------------------------------
// Timers
//
// Both runtimes put a sleep into their timer structure on its first poll (`mini`: a `BTreeMap`
// of deadlines; tokio: a hierarchical wheel of 1 ms slots), and take it out when it fires or is
// dropped. Awaiting a short sleep would measure the clock, not that structure, and a sleep whose
// deadline has passed at its first poll never enters it at all (`mini` completes it at once;
// tokio fires it on the spot). So:
//
// * insert + cancel: create sleeps far enough ahead never to fire, poll each once, drop them;
// * fire: register sleeps due soon, wait, untimed, until all are past due, and only then time
//   the runtime noticing it, taking them out of the structure, waking their task and completing
//   them.

/// One iteration: create 1000 sleeps with distinct deadlines 100 ms to 1.1 s ahead (1 ms apart,
/// like a thousand connections' timeouts), poll each once, which inserts it, and drop them all,
/// which cancels them. The deadlines are computed before the clock starts.
fn timer_insert_cancel<R: Rt>(b: &mut Bencher<'_>) {
    let rt = R::new();
    let mut deadlines = Vec::with_capacity(BATCH as usize);
    let mut sleeps: Vec<Pin<Box<R::Sleep>>> = Vec::with_capacity(BATCH as usize);
    b.iter_custom(|iters| {
        rt.block_on(R::unconstrained(async {
            let _background = background_timer::<R>(Duration::from_millis(50)).await;
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let base = Instant::now() + Duration::from_millis(100);
                deadlines.clear();
                deadlines.extend((0..BATCH).map(|i| base + Duration::from_millis(i)));
                let start = Instant::now();
                sleeps.extend(deadlines.iter().map(|&deadline| Box::pin(R::sleep_until(deadline))));
                poll_fn(|cx| {
                    for sleep in &mut sleeps {
                        let pending = sleep.as_mut().poll(cx).is_pending();
                        assert!(pending, "a sleep 100 ms ahead completed, uninserted");
                    }
                    Poll::Ready(())
                })
                .await;
                sleeps.clear();
                elapsed += start.elapsed();
            }
            elapsed
        }))
    });
}

/// Registers a sleep due `after` from now, lets the runtime park once, and returns the sleep,
/// which stays pending while the caller keeps it (or at least is never polled again).
///
/// tokio rings its poller's eventfd, a `write` system call, on every insert of a timer due
/// before the deadline its driver last parked with, and on every insert if it last parked with
/// no timer pending. In a server that holds timers the first is rare; a benchmark that starts
/// from no timers would pay the second on every insert (it doubles tokio's insert + cancel
/// figure). Keeping this one timer, due before any the benchmark sets, measures the steady
/// state. `mini` never wakes its poller to insert a timer.
async fn background_timer<R: Rt>(after: Duration) -> Pin<Box<R::Sleep>> {
    let mut sleep = Box::pin(R::sleep_until(Instant::now() + after));
    poll_fn(|cx| {
        assert!(sleep.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    R::yield_now().await;
    sleep
}

/// Timers that fire per iteration of [`timer_fire`]: many, to make the measured part large beside
/// the untimed wait for the deadlines.
const FIRE_TIMERS: u64 = 10_000;

/// One iteration: a task registers 10,000 sleeps (distinct deadlines, 10 ns apart, the first a
/// little ahead) and waits for all of them in a single future. The main future lets it register
/// them, then blocks the thread until every deadline is more than a millisecond past (tokio
/// rounds a deadline up to its next 1 ms tick), so that nothing is left to the clock. Only then
/// does the clock start, as the main future awaits the task: the runtime, finding nothing to run,
/// turns its reactor, finds the expired timers, takes them out and wakes the task (once: the
/// other 9,999 wakes find it already queued), which polls every sleep to completion and drops it.
fn timer_fire<R: Rt>(b: &mut Bencher<'_>) {
    let rt = R::new();
    // How far ahead the first deadline is: twice what the last registration took. A try whose
    // registration still ran past the first deadline (the thread was preempted) is done again.
    let mut lead = Duration::from_millis(5);
    b.iter_custom(|iters| {
        rt.block_on_local(async {
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let first = Instant::now() + lead;
                let registered = Rc::new(Cell::new(None));
                let sleeper =
                    R::spawn_local(R::unconstrained(sleep_all::<R>(first, registered.clone())));
                let registering = Instant::now();
                let in_time = loop {
                    match registered.get() {
                        Some(in_time) => break in_time,
                        None => R::yield_now().await,
                    }
                };
                lead = (registering.elapsed() * 2).max(Duration::from_millis(1));
                let last = first + Duration::from_nanos(10 * (FIRE_TIMERS - 1));
                let all_due = last + Duration::from_micros(1100);
                std::thread::sleep(all_due.saturating_duration_since(Instant::now()));

                let start = Instant::now();
                sleeper.await.unwrap();
                if in_time {
                    elapsed += start.elapsed();
                    done += 1;
                }
            }
            elapsed
        })
    });
}

/// The task of [`timer_fire`]: sleeps until `first + 10 ns × i` for every `i` below
/// [`FIRE_TIMERS`] at once. After its first poll, `registered` tells whether that poll ended
/// before `first`, that is, whether every sleep was inserted.
async fn sleep_all<R: Rt>(first: Instant, registered: Rc<Cell<Option<bool>>>) {
    let mut sleeps: Vec<Pin<Box<R::Sleep>>> = (0..FIRE_TIMERS)
        .map(|i| Box::pin(R::sleep_until(first + Duration::from_nanos(10 * i))))
        .collect();
    poll_fn(|cx| {
        sleeps.retain_mut(|sleep| sleep.as_mut().poll(cx).is_pending());
        if registered.get().is_none() {
            registered.set(Some(Instant::now() < first));
        }
        if sleeps.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}
