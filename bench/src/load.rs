//! The closed-loop load generator, on the `mini` runtime: one task per connection ([`conn`]),
//! one thread.
//!
//! # The loop
//!
//! Each of the C connections sends an S-byte message, waits until the whole reply is back,
//! checks every byte of it, and only then sends the next (with `--pipeline K`, it keeps K
//! messages in flight instead of one). So the load adapts to the server: a slow server gets
//! fewer messages, never a queue that grows. A message's *latency* is the time from the start of
//! its sending to the last byte of its reply.
//!
//! # Phases of a point ([`drive`])
//!
//! 1. Connect the C connections; each starts its loop at once.
//! 2. Wait until every connection has had a reply (a server may accept slowly: `spin` walks all
//!    its connections between two accepts), then warm up. Connections still without a reply at
//!    the end of the interval are reported as *starved*.
//! 3. Measure: CPU times and counts are taken at both ends of the interval.
//! 4. Stop: no new messages; the replies in flight are still received and checked.
//!
//! With `--slice`, [`super::interleave`] runs the servers' connections together and reuses
//! these phases, adding a pause: a paused connection finishes the messages it has in flight,
//! begins no new one, and waits to be resumed.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mini::net::TcpStream;
use mini::time::{sleep, timeout};

use super::error::RunError;
use super::measure;
use super::report::LoadFigures;
use super::server::Server;
use conn::Conn;

mod conn;

/// One load point: how many connections, how large a message, how many in flight, how long.
#[derive(Debug, Clone)]
pub struct Spec {
    pub connections: usize,
    pub size: usize,
    pub pipeline: usize,
    /// Run, unmeasured, before the measured interval (connections settle, threads start).
    pub warmup: Duration,
    /// The measured interval.
    pub duration: Duration,
}

/// Bound on one connect, and on the replies still owed when the run (or a turn) stops.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on the wait for every connection's first reply.
const FIRST_REPLY_WAIT: Duration = Duration::from_secs(3);

/// How often the control task checks for a failed connection or a dead server.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Messages start at offsets `0..PERIOD` of the pattern, so consecutive messages differ: a
/// server that replayed an old message, or mixed up two connections, is caught.
const PERIOD: usize = 251;

/// The most reply bytes read by one call.
const SCRATCH: usize = 64 * 1024;

/// Runs one load point against `server` and returns its figures, or why it failed.
pub fn run(server: &mut Server, spec: &Spec) -> Result<LoadFigures, RunError> {
    // The best poller, whatever MINI_BACKEND says (that variable is for the mini *server*).
    let runtime = mini::Runtime::builder()
        .backend(mini::Backend::best())
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;
    let shared = Rc::new(Shared::new(spec));
    let result = runtime.block_on(drive(server, spec, &shared));
    // Dropping the runtime drops every connection task still there, closing its socket.
    drop(runtime);
    result
}

/// What every connection task of one run shares with the others and with the control task.
pub(super) struct Shared {
    size: usize,
    pipeline: usize,
    /// Pseudo-random bytes; message `m` is `pattern[m % PERIOD..][..size]`.
    pattern: Box<[u8]>,
    /// Where replies are read into, by one task at a time.
    scratch: RefCell<Box<[u8]>>,
    /// Inside the measured interval: count messages and record latencies.
    pub(super) measuring: Cell<bool>,
    /// Begin no new message; finish those in flight and end.
    stopping: Cell<bool>,
    /// Begin no new message; finish those in flight and wait for [`Shared::resume`] (the
    /// load moves to another server, see [`super::interleave`]).
    paused: Cell<bool>,
    /// The wakers of the connections waiting for [`Shared::resume`].
    parked: RefCell<Vec<Waker>>,
    /// Messages begun (their first byte stamped) and not yet fully answered.
    in_flight: Cell<u64>,
    /// The control task waiting in [`Shared::drained`] for `in_flight` to reach zero.
    drain_waiter: RefCell<Option<Waker>>,
    /// Messages completed inside the measured interval.
    messages: Cell<u64>,
    /// Latencies (ns) of those messages.
    latency: RefCell<Histogram<u64>>,
    /// The first connection failure; it ends the run.
    failure: RefCell<Option<String>>,
    /// Connection tasks not yet finished.
    running: Cell<usize>,
    /// Connections that have had at least one reply.
    answered: Cell<usize>,
}

impl Shared {
    pub(super) fn new(spec: &Spec) -> Shared {
        // xorshift64: cheap, deterministic, and no byte pattern a server could fake by accident.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let pattern = (0..spec.size + PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        Shared {
            size: spec.size,
            pipeline: spec.pipeline,
            pattern,
            scratch: RefCell::new(vec![0; SCRATCH].into()),
            measuring: Cell::new(false),
            stopping: Cell::new(false),
            paused: Cell::new(false),
            parked: RefCell::new(Vec::new()),
            in_flight: Cell::new(0),
            drain_waiter: RefCell::new(None),
            messages: Cell::new(0),
            // 1 ns to 100 s at 3 significant digits: about 200 KiB, allocated once.
            latency: RefCell::new(Histogram::new_with_bounds(1, 100_000_000_000, 3).unwrap()),
            failure: RefCell::new(None),
            running: Cell::new(0),
            answered: Cell::new(0),
        }
    }

    fn message(&self, m: u64) -> &[u8] {
        &self.pattern[(m % PERIOD as u64) as usize..][..self.size]
    }

    fn fail(&self, why: String) {
        self.failure.borrow_mut().get_or_insert(why);
        // A failed connection may owe a message for ever: a waiting drain must see the failure.
        self.wake_drain_waiter();
    }

    fn wake_drain_waiter(&self) {
        if let Some(waker) = self.drain_waiter.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Stops the connections beginning new messages; see [`drained`](Self::drained).
    pub(super) fn pause(&self) {
        self.paused.set(true);
    }

    /// Lets the paused connections go on.
    pub(super) fn resume(&self) {
        self.paused.set(false);
        for waker in self.parked.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Ready once no message is in flight (after [`pause`](Self::pause)), or a connection has
    /// failed (the error is then in [`check`](Self::check)).
    pub(super) fn drained(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| {
            if self.in_flight.get() == 0 || self.failure.borrow().is_some() {
                return Poll::Ready(());
            }
            *self.drain_waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    pub(super) fn check(&self) -> Result<(), String> {
        self.failure.borrow().clone().map_or(Ok(()), Err)
    }

    /// Connections that have had no reply yet.
    pub(super) fn starved(&self, spec: &Spec) -> usize {
        spec.connections - self.answered.get()
    }
}

/// The control task: connect, warm up, measure, stop.
async fn drive(
    server: &mut Server,
    spec: &Spec,
    shared: &Rc<Shared>,
) -> Result<LoadFigures, RunError> {
    open(server, spec, shared).await?;
    watch(server, shared, spec.warmup).await?;

    // 3. Measure: snapshot CPU times, count, snapshot again.
    let pid = server.pid();
    let (server0, load0, t0) = (server_cpu(pid)?, measure::thread_cpu(), Instant::now());
    shared.measuring.set(true);
    watch(server, shared, spec.duration).await?;
    shared.measuring.set(false);
    let interval = Interval {
        server_cpu: server_cpu(pid)?.saturating_sub(server0),
        load_cpu: measure::thread_cpu().saturating_sub(load0),
        wall: t0.elapsed(),
    };
    let (rss, starved) = (server_rss(pid)?, shared.starved(spec));

    finish(server, shared, spec).await?;
    figures(shared, spec, &interval, rss, starved)
}

/// Phases 1 and 2 up to the warm-up: opens the connections to `server` (each starts its loop
/// at once) and waits until each has had a reply, or FIRST_REPLY_WAIT has passed.
pub(super) async fn open(
    server: &mut Server,
    spec: &Spec,
    shared: &Rc<Shared>,
) -> Result<(), RunError> {
    // 1. Open the connections; each starts sending as soon as it is open.
    let addr = server.addr();
    for id in 0..spec.connections {
        let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("connection {id}: cannot connect: {e}").into()),
            Err(_) => return Err(format!("connection {id}: connect timed out").into()),
        };
        stream.set_nodelay(true).map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        shared.running.set(shared.running.get() + 1);
        let conn = Conn::new(id, stream, Rc::clone(shared));
        // The handle is dropped: the task runs detached until it ends or the runtime is dropped.
        mini::spawn(conn.run());
    }

    // 2. The warm-up, unmeasured, begins once every connection has had its first reply: a
    //    server may take a while to accept them all, and that is not what the interval
    //    measures. But a server may also starve some connections for good (`threaded`'s
    //    accepting thread gets 1/C of the core): after FIRST_REPLY_WAIT, go on and count them.
    let first = Instant::now();
    while shared.answered.get() < spec.connections && first.elapsed() < FIRST_REPLY_WAIT {
        watch(server, shared, CHECK_EVERY).await?;
    }
    Ok(())
}

/// Phase 4: no new messages; every connection finishes its messages in flight (their replies
/// are checked too), except the starved ones, which are left to the runtime's drop.
pub(super) async fn finish(
    server: &mut Server,
    shared: &Shared,
    spec: &Spec,
) -> Result<(), RunError> {
    shared.stopping.set(true);
    shared.resume();
    let drained = Instant::now();
    let owing = || shared.running.get().saturating_sub(shared.starved(spec));
    while owing() > 0 {
        shared.check()?;
        server.check()?;
        if drained.elapsed() > DRAIN_TIMEOUT {
            let stuck = owing();
            return Err(format!(
                "{stuck} connections still owed replies {DRAIN_TIMEOUT:?} after the run"
            )
            .into());
        }
        sleep(Duration::from_millis(5)).await;
    }
    // A connection that failed while draining is no longer running: its error is here.
    Ok(shared.check()?)
}

/// What a measured interval cost: the server's and the load generator's CPU, and wall time.
pub(super) struct Interval {
    pub(super) server_cpu: Duration,
    pub(super) load_cpu: Duration,
    pub(super) wall: Duration,
}

/// The figures of a run whose measured interval cost `interval`, from what `shared` counted.
pub(super) fn figures(
    shared: &Shared,
    spec: &Spec,
    interval: &Interval,
    rss_kib: u64,
    starved: usize,
) -> Result<LoadFigures, RunError> {
    let messages = shared.messages.get();
    let secs = interval.wall.as_secs_f64();
    if messages == 0 {
        return Err(format!("no reply completed in {secs:.1} s").into());
    }
    let latency = shared.latency.borrow();
    let quantile_us = |q: f64| latency.value_at_quantile(q) as f64 / 1e3;
    let server_cpu = interval.server_cpu.as_secs_f64();
    Ok(LoadFigures {
        messages: messages as f64,
        msgs_per_s: messages as f64 / secs,
        mb_per_s: (messages * spec.size as u64) as f64 / secs / 1e6,
        p50_us: quantile_us(0.5),
        p99_us: quantile_us(0.99),
        p999_us: quantile_us(0.999),
        server_cpu_per_msg_us: server_cpu / messages as f64 * 1e6,
        server_busy: server_cpu / secs,
        server_rss_kib: rss_kib as f64,
        load_busy: interval.load_cpu.as_secs_f64() / secs,
        starved: starved as f64,
    })
}

/// The server's CPU time so far, all threads.
pub(super) fn server_cpu(pid: u32) -> Result<Duration, String> {
    measure::process_cpu(pid).map_err(|e| format!("cannot read the server's CPU: {e}"))
}

/// The server's resident memory now.
pub(super) fn server_rss(pid: u32) -> Result<u64, String> {
    measure::rss_kib(pid).map_err(|e| format!("cannot read the server's RSS: {e}"))
}

/// Lets the connections run for `period`, returning early with the error if one of them failed
/// or the server died.
pub(super) async fn watch(
    server: &mut Server,
    shared: &Shared,
    period: Duration,
) -> Result<(), RunError> {
    let end = Instant::now() + period;
    loop {
        shared.check()?;
        server.check()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        sleep(CHECK_EVERY.min(end - now)).await;
    }
}
