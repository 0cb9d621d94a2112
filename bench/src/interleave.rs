//! Interleaved load (`--slice MS`): every server of a load point runs at once, and the load
//! moves from one to the next every few milliseconds, so that all of them are measured over the
//! same stretch of time.
//!
//! # Why
//!
//! On a machine shared with other tenants, a server's CPU per message drifts from one 2-second
//! interval to the next, and two servers measured one after the other see different drifts,
//! wider than the differences the bench is asked to show (docs/benchmarks.md has the figures).
//! Cutting each server's interval into slices of, say, 200 ms and alternating them spreads
//! every server over the same seconds, so a drift slower than a slice hits them all alike and
//! cancels in their ratio.
//!
//! # How
//!
//! 1. Start every server (each pinned and capped as usual; they share the server core and the
//!    cgroup's quota, which works because only one of them has work at any time) and open the C
//!    connections to each, one server after the other; each server's connections are paused
//!    once every one of them has had its first reply.
//! 2. In turns, one server at a time: resume its connections, let them run for one slice, pause
//!    them and wait until every reply in flight has arrived. A server whose connections are
//!    paused has nothing to do and sleeps in its poller, using no CPU, so its CPU time grows
//!    only during its own turns.
//! 3. The turns go round the servers, each pass in an order that never gives a server two turns
//!    in a row ([`turn_order`]), first for the warm-up, then for the measured interval: each
//!    server gets the same number of slices.
//! 4. A server's figures are those of its turns: its CPU time over the whole interval (read
//!    once at each end), the messages and latencies of its turns, and their total time as the
//!    wall time.
//!
//! A slice starts with the server's memory cold in the caches, after another server's turn:
//! one pass over its connections costs what it would at many more connections, in proportion
//! to the memory the server touches (at C = 1000 its lines are mostly cold anyway). The pause
//! at each turn's end means the last few milliseconds run with fewer messages in flight, alike
//! for all.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::error::RunError;
use super::load::{self, Interval, Shared, Spec, DRAIN_TIMEOUT};
use super::measure;
use super::report::LoadFigures;
use super::server::Server;

/// Runs one load point against every server in `servers` at once, moving the load between them
/// every `slice`; their figures, in the same order, or why the run failed.
pub fn run(
    servers: &mut [Server],
    spec: &Spec,
    slice: Duration,
) -> Result<Vec<LoadFigures>, RunError> {
    let runtime = mini::Runtime::builder()
        .backend(mini::Backend::best())
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;
    let shared: Vec<Rc<Shared>> = servers.iter().map(|_| Rc::new(Shared::new(spec))).collect();
    let result = runtime.block_on(drive(servers, spec, slice, &shared));
    drop(runtime);
    result
}

/// What one server's turns have added up to so far.
#[derive(Default, Clone, Copy)]
struct Turns {
    wall: Duration,
    load_cpu: Duration,
}

async fn drive(
    servers: &mut [Server],
    spec: &Spec,
    slice: Duration,
    shared: &[Rc<Shared>],
) -> Result<Vec<LoadFigures>, RunError> {
    // 1. Connect to each server in turn, and pause it once every connection has been answered:
    //    a connection still waiting would hold up every pause.
    for (server, shared) in servers.iter_mut().zip(shared) {
        load::open(server, spec, shared).await.map_err(|e| e.in_server(server))?;
        let starved = shared.starved(spec);
        if starved > 0 {
            let what = format!(
                "{starved} of {} connections had no reply; interleaved turns need every \
                 connection answered",
                spec.connections
            );
            return Err(RunError::from(what).in_server(server));
        }
        shared.pause();
        drained(server, shared).await?;
    }

    // 2. Warm up, then measure, in turns.
    let turns_for = |time: Duration| time.as_nanos().div_ceil(slice.as_nanos()).max(1) as usize;
    take_turns(servers, shared, slice, turns_for(spec.warmup)).await?;
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let cpu0 = pids.iter().map(|&pid| load::server_cpu(pid)).collect::<Result<Vec<_>, _>>()?;
    shared.iter().for_each(|s| s.measuring.set(true));
    let turns = take_turns(servers, shared, slice, turns_for(spec.duration)).await?;
    shared.iter().for_each(|s| s.measuring.set(false));

    // 3. Each server's figures; then stop them all.
    let mut figures = Vec::with_capacity(servers.len());
    for (i, server) in servers.iter_mut().enumerate() {
        let interval = Interval {
            server_cpu: load::server_cpu(pids[i])?.saturating_sub(cpu0[i]),
            load_cpu: turns[i].load_cpu,
            wall: turns[i].wall,
        };
        let rss = load::server_rss(pids[i])?;
        figures.push(load::figures(&shared[i], spec, &interval, rss, 0));
        load::finish(server, &shared[i], spec).await.map_err(|e| e.in_server(server))?;
    }
    figures.into_iter().zip(servers.iter()).map(|(f, s)| f.map_err(|e| e.in_server(s))).collect()
}

/// Gives each server `count` turns of `slice`, in the order of [`turn_order`]; returns what
/// each server's turns added up to.
async fn take_turns(
    servers: &mut [Server],
    shared: &[Rc<Shared>],
    slice: Duration,
    count: usize,
) -> Result<Vec<Turns>, RunError> {
    let mut turns = vec![Turns::default(); servers.len()];
    for pass in 1..=count {
        for i in turn_order(servers.len(), pass) {
            let (server, shared) = (&mut servers[i], &shared[i]);
            let (started, load0) = (Instant::now(), measure::thread_cpu());
            shared.resume();
            load::watch(server, shared, slice).await.map_err(|e| e.in_server(server))?;
            shared.pause();
            drained(server, shared).await?;
            turns[i].wall += started.elapsed();
            turns[i].load_cpu += measure::thread_cpu().saturating_sub(load0);
        }
    }
    Ok(turns)
}

/// The order of the turns in pass `pass` (from 1) over `count` servers: `0, 1, ..., count - 1`
/// in odd passes, `0, count - 1, ..., 1` in even ones.
///
/// No server has two turns in a row, across passes too: a second turn would start with the
/// server's memory still warm from its first, which makes it look cheaper. And each server follows each of the others
/// equally often over two passes with three servers: what one leaves in the caches (tokio
/// touches more memory than the raw loop) weighs on all the others alike.
fn turn_order(count: usize, pass: usize) -> impl Iterator<Item = usize> {
    let forwards = pass % 2 == 1;
    (0..count).map(move |i| if forwards || i == 0 { i } else { count - i })
}

/// Waits until `server` has answered every message in flight (its connections are paused).
async fn drained(server: &mut Server, shared: &Shared) -> Result<(), RunError> {
    let waited = mini::time::timeout(DRAIN_TIMEOUT, shared.drained()).await;
    let checked = shared.check().map_err(RunError::from).and_then(|()| server.check());
    match (checked, waited) {
        (Err(e), _) => Err(e.in_server(server)),
        (Ok(()), Err(_)) => {
            let what = format!("replies still in flight {DRAIN_TIMEOUT:?} after its turn ended");
            Err(RunError::from(what).in_server(server))
        }
        (Ok(()), Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::turn_order;

    #[test]
    fn no_server_has_two_turns_in_a_row_and_each_follows_every_other() {
        for count in 2..=5 {
            let turns: Vec<usize> = (1..=8).flat_map(|pass| turn_order(count, pass)).collect();
            assert!(turns.windows(2).all(|w| w[0] != w[1]), "{count} servers: {turns:?}");
            for pass in 1..=8 {
                let mut order: Vec<usize> = turn_order(count, pass).collect();
                order.sort_unstable();
                assert_eq!(order, (0..count).collect::<Vec<_>>(), "each server once a pass");
            }
        }
        let turns: Vec<usize> = (1..=8).flat_map(|pass| turn_order(3, pass)).collect();
        for (server, other) in [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)] {
            let follows = turns.windows(2).filter(|w| w == &[other, server]).count();
            assert!((3..=4).contains(&follows), "{server} after {other}: {follows} times");
        }
    }
}
