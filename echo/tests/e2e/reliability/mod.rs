//! The server faults every `echo` server must survive (see `docs/reliability.md`): each test
//! states what must hold as a number and fails when it does not.
//!
//! A test runs its case against every server at once, one thread each (the cases spend most of
//! their time waiting on timers, a descriptor limit or a CPU window, so running them side by side
//! keeps the wall time of the whole test near that of one case). A failure names the servers
//! that failed and shows the end of their logs; each server's measured figures are printed (run
//! with `--nocapture` to see them when all pass).
//!
//! The descriptor limit of a server is set in the child between `fork` and `exec`
//! (`Command::pre_exec` calling `setrlimit(RLIMIT_NOFILE)`), so this process keeps its own.
//!
//! One module per group of faults, numbered as in `docs/reliability.md`:
//! - `descriptors`: 1. running out of descriptors, 2. descriptor leaks;
//! - `flow`: 3. a client that never reads, 4. large transfers with short writes;
//! - `resets`: 5. a peer that resets while the server writes;
//! - `limits`: 9. `--max-connections` and `--idle-timeout`;
//! - `signals`: 11. the `sigio` server's signal queue overflowing;
//! - `measure`: what the tests read of a server process (descriptors, CPU, memory) and its
//!   descriptor limit.
//!
//! This file holds what they share: [`on_every_server`] and the failure report, and the clients
//! that probe a limit: [`try_client`], which tells a served client from a closed or an ignored
//! one, and [`served_again`].

mod descriptors;
mod flow;
mod limits;
mod measure;
mod resets;
mod signals;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{echo_once, try_connect, wait_until, Server, IO_TIMEOUT};

/// The servers these tests run: all but the tokio peers, which are benchmark peers.
const SERVERS: [&str; 6] = ["mini", "threaded", "spin", "select", "epoll", "sigio"];

/// How long a client past a limit (the descriptor limit, `--max-connections`) may wait to see
/// its connection closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);
/// How long after room is made under a limit (descriptors freed, a connection gone) a new client
/// must be served.
const SERVED_AGAIN_WITHIN: Duration = Duration::from_secs(1);

/// Runs `case` against each of `servers` at once, one thread each; prints each server's figures
/// and fails naming every server whose case failed.
fn on_every_server(servers: &[&str], case: impl Fn(&str) -> Result<String, String> + Sync) {
    let started = Instant::now();
    let results: Vec<(&str, Result<String, String>)> = thread::scope(|s| {
        let running: Vec<_> = servers.iter().map(|&rt| (rt, s.spawn(|| case(rt)))).collect();
        running
            .into_iter()
            .map(|(rt, h)| (rt, h.join().unwrap_or_else(|p| Err(panic_message(&*p)))))
            .collect()
    });
    let mut failures = Vec::new();
    for (runtime, result) in results {
        match result {
            Ok(figures) => println!("{runtime}: {figures}"),
            Err(e) => failures.push(format!("{runtime}: {e}")),
        }
    }
    println!("({} servers in {:.1?})", servers.len(), started.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    format!("panicked: {text}")
}

/// A client thread's result; a panic becomes an error.
fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    handle.join().unwrap_or_else(|p| Err(panic_message(&*p)))
}

/// Whether the server's log has (or soon gets: it is read by another thread) a line with `text`.
fn logged(server: &Server, text: &str) -> bool {
    wait_until(IO_TIMEOUT, || server.log().contains(text))
}

/// `message` and the end of the server's log, for a failure.
fn fail(server: &Server, message: &str) -> String {
    format!("{message}\n{}", tail(&server.log()))
}

/// The last lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let shown = &lines[lines.len().saturating_sub(15)..];
    format!("--- last {} of {} log lines ---\n{}", shown.len(), lines.len(), shown.join("\n"))
}

/// What became of a client that connected and sent a line.
enum Fate {
    /// Echoed: the connection, still open.
    Served(TcpStream),
    /// Closed by the server (end-of-file or reset).
    Closed,
    /// Neither within the patience given.
    Ignored,
}

impl Fate {
    fn name(&self) -> &'static str {
        match self {
            Fate::Served(_) => "served",
            Fate::Closed => "closed",
            Fate::Ignored => "neither served nor closed",
        }
    }
}

/// Connects clients, right after room was made under a limit, until one is served; returns how
/// long that took. A client closed within [`SERVED_AGAIN_WITHIN`] is tried again (the server may
/// not have seen the room yet); any other fate fails the case, worded by `failure` from the
/// fate's name.
fn served_again(server: &Server, failure: impl FnOnce(&str) -> String) -> Result<Duration, String> {
    let freed = Instant::now();
    loop {
        match try_client(server.addr(), CLOSE_WITHIN)? {
            (Fate::Served(_), _) => return Ok(freed.elapsed()),
            (Fate::Closed, _) if freed.elapsed() < SERVED_AGAIN_WITHIN => {}
            (fate, _) => return Err(fail(server, &failure(fate.name()))),
        }
    }
}

/// Connects, sends a line and waits up to `patience` for its echo or a close; returns the fate
/// and how long it took to learn it.
fn try_client(addr: SocketAddr, patience: Duration) -> Result<(Fate, Duration), String> {
    const LINE: &[u8] = b"are you there?\n";
    let started = Instant::now();
    let stream = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(patience)).unwrap();
    let fate = match echo_once(&stream, LINE) {
        Ok(reply) if reply == LINE => Fate::Served(stream),
        Ok(reply) if reply.is_empty() => Fate::Closed,
        Ok(reply) => return Err(format!("a wrong or partial echo: {reply:?}")),
        Err(e) if closed(&e) => Fate::Closed,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Fate::Ignored,
        Err(e) => return Err(format!("unexpected error: {e}")),
    };
    Ok((fate, started.elapsed()))
}

/// Whether an error says the peer closed the connection.
fn closed(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
}
