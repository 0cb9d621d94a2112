//! The idle phase: what N connections that send nothing cost a server, in memory and in CPU.
//!
//! 1. Start from a fresh server, settled; note its RSS and its open descriptors.
//! 2. Open N plain blocking connections (this phase sends no data, so no runtime is needed), in
//!    batches of [`BATCH`], each within the server's listen backlog.
//! 3. After each batch, wait until the server holds it: each accepted connection is one more
//!    descriptor in its `/proc/PID/fd`. A server that refuses some (the `select` server cannot
//!    hold descriptors past 1023) stops gaining descriptors; after [`SETTLE`] without change the
//!    count is final, and the figures are per connection *held*.
//! 4. Hold them for the point's duration, measuring the server's CPU time over the hold.
//! 5. Read the RSS again: (RSS with N open - RSS before) / N is the memory per connection.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::error::RunError;
use super::measure;
use super::report::IdleFigures;
use super::server::Server;

/// Bound on one connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections opened before waiting for the server to accept them: half the backlog that
/// every echo server listens with (1024, `BACKLOG` in echo's `listen.rs`).
const BATCH: usize = 512;

/// A descriptor count unchanged for this long is taken as final: after a batch, and at the end.
const BATCH_SETTLE: Duration = Duration::from_millis(100);
const SETTLE: Duration = Duration::from_millis(500);

/// Time given to a server between its `listening on` line and the first reading.
const STARTUP_SETTLE: Duration = Duration::from_millis(100);

/// Polling period while waiting for the server to accept, and while holding.
const CHECK_EVERY: Duration = Duration::from_millis(10);
const HOLD_CHECK_EVERY: Duration = Duration::from_millis(50);

/// Runs one idle point: `n` silent connections held for `hold`.
pub fn run(server: &mut Server, n: usize, hold: Duration) -> Result<IdleFigures, RunError> {
    let pid = server.pid();
    let rss = || measure::rss_kib(pid).map_err(|e| format!("cannot read the server's RSS: {e}"));
    let fds = || measure::open_fds(pid).map_err(|e| format!("cannot list the server's fds: {e}"));

    // 1. The server as it starts. It prints its address before it builds its runtime (threads,
    //    poller): give it a moment to finish.
    thread::sleep(STARTUP_SETTLE);
    let (rss_before, fds_before) = (rss()?, fds()?);

    // 2 and 3. Open the connections in batches, each within the listen backlog, and wait after
    //    each batch until the server holds it: a connect that finds the backlog full waits a
    //    whole second for its SYN to be sent again.
    let opening = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut refusing = false;
    while conns.len() < n {
        for _ in 0..BATCH.min(n - conns.len()) {
            match TcpStream::connect_timeout(&server.addr(), CONNECT_TIMEOUT) {
                Ok(stream) => conns.push(stream),
                Err(e) => {
                    server.check()?;
                    return Err(
                        format!("connection {} of {n}: cannot connect: {e}", conns.len()).into()
                    );
                }
            }
        }
        // A server that stopped taking connections (it closes those it cannot hold) keeps
        // accepting quickly: no need to wait for it batch by batch any more.
        if !refusing {
            refusing = wait_for(server, fds_before, conns.len(), BATCH_SETTLE)? < conns.len();
        }
    }
    let held = wait_for(server, fds_before, n, SETTLE)?;
    let open_s = opening.elapsed().as_secs_f64();
    if held == 0 {
        return Err(format!("the server holds none of the {n} connections").into());
    }

    // 4. Hold them, measuring the server's CPU time.
    let cpu =
        || measure::process_cpu(pid).map_err(|e| format!("cannot read the server's CPU: {e}"));
    let (cpu0, t0) = (cpu()?, Instant::now());
    while t0.elapsed() < hold {
        server.check()?;
        thread::sleep(HOLD_CHECK_EVERY.min(hold.saturating_sub(t0.elapsed())));
    }
    let (cpu1, wall) = (cpu()?, t0.elapsed());

    // 5. Memory with the connections open.
    let rss_with = rss()?;
    drop(conns);
    Ok(IdleFigures {
        held: held as f64,
        open_s,
        server_busy: cpu1.saturating_sub(cpu0).as_secs_f64() / wall.as_secs_f64(),
        rss_before_kib: rss_before as f64,
        rss_kib: rss_with as f64,
        rss_per_conn_bytes: (rss_with as f64 - rss_before as f64) * 1024.0 / held as f64,
    })
}

/// Waits until the server holds `target` connections (descriptors beyond `fds_before`), or its
/// count has not changed for `settle`; returns how many it holds.
fn wait_for(
    server: &mut Server,
    fds_before: usize,
    target: usize,
    settle: Duration,
) -> Result<usize, RunError> {
    let (mut held, mut changed) = (usize::MAX, Instant::now());
    loop {
        server.check()?;
        let fds = measure::open_fds(server.pid())
            .map_err(|e| format!("cannot list the server's fds: {e}"))?;
        let now_held = fds.saturating_sub(fds_before).min(target);
        if now_held != held {
            (held, changed) = (now_held, Instant::now());
        }
        if held >= target || changed.elapsed() >= settle {
            return Ok(held);
        }
        thread::sleep(CHECK_EVERY);
    }
}
