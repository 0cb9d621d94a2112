//! Fault 11: the signal-driven server's real-time signal queue overflows. It is bounded by
//! `RLIMIT_SIGPENDING`; past it the kernel sends a plain `SIGIO` that names no socket, and the
//! server must scan every connection so that nothing is lost. The test makes the bound tiny
//! ([`resource_limit`], set in the server's process only), so that a few hundred busy clients
//! overflow it for real.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use super::measure::{cpu_during, resource_limit};
use super::{fail, join, logged, on_every_server};
use crate::util::{connect, echo_once, random_bytes, try_connect, Server};

/// Signals the server may have queued: far fewer than the signals its clients raise at once.
const SIGPENDING_LIMIT: libc::rlim_t = 8;
/// Clients at once, each echoing [`ROUNDS`] messages of [`MESSAGE`] bytes.
const CLIENTS: usize = 300;
const ROUNDS: usize = 20;
const MESSAGE: usize = 4 << 10;
/// How long the CPU of the server is watched once the clients are gone.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// The most CPU it may use then: nothing is left to do, so nothing but a stray tick.
const IDLE_CPU: f64 = 0.01;

/// With `RLIMIT_SIGPENDING` at 8, 300 clients each echo 20 random 4 KiB messages at once; every
/// byte must come back exact, the log must say the server fell back to a scan (so the overflow
/// happened), a new client must be served, and once the clients are gone the server must idle
/// under 1% CPU over 2 s (a scan that kept itself going would show here).
#[test]
fn signal_queue_overflow_loses_nothing() {
    on_every_server(&["sigio"], |runtime| {
        let limit = resource_limit(libc::RLIMIT_SIGPENDING, SIGPENDING_LIMIT);
        let server = Server::start_with(runtime, &[], limit);
        let addr = server.addr();
        let echoed: Result<Vec<()>, String> = thread::scope(|s| {
            let clients: Vec<_> =
                (0..CLIENTS).map(|i| s.spawn(move || busy_client(addr, i))).collect();
            clients.into_iter().map(join).collect()
        });
        echoed.map_err(|e| fail(&server, &e))?;
        if !logged(&server, "fell back to a scan") {
            return Err(fail(&server, "no overflow logged: the signal queue limit did not apply"));
        }
        let scans = server.log().matches("fell back to a scan").count();

        let late = connect(addr);
        match echo_once(&late, b"after the storm\n") {
            Ok(reply) if reply == b"after the storm\n" => {}
            other => return Err(fail(&server, &format!("a new client afterwards: {other:?}"))),
        }
        drop(late);
        let (cpu, ()) = cpu_during(server.pid(), IDLE_WINDOW, |_| ());
        if cpu >= IDLE_CPU {
            return Err(fail(&server, &format!("{:.1}% CPU idle after the overflow", cpu * 100.0)));
        }
        Ok(format!(
            "{CLIENTS} clients x {ROUNDS} x {MESSAGE} B echoed exactly; {scans} scan log line(s); \
             idle CPU {:.2}% afterwards",
            cpu * 100.0
        ))
    });
}

/// Client `i`: [`ROUNDS`] random messages, each echoed exactly.
fn busy_client(addr: SocketAddr, i: usize) -> Result<(), String> {
    let stream = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    for round in 0..ROUNDS {
        let message = random_bytes(MESSAGE, (i * ROUNDS + round) as u64);
        match echo_once(&stream, &message) {
            Ok(reply) if reply == message => {}
            Ok(reply) => {
                return Err(format!(
                    "client {i}, round {round}: a wrong or short echo ({} of {MESSAGE} bytes)",
                    reply.len()
                ))
            }
            Err(e) => return Err(format!("client {i}, round {round}: {e}")),
        }
    }
    Ok(())
}
