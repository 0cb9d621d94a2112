//! Faults 1 and 2: a server out of descriptors, and one that could leak them. Both start the
//! servers with a descriptor limit of 64 ([`fd_limit`]), so that the limit is reached, or a leak
//! would exhaust it, within a few dozen connections.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::measure::{cpu_during, fd_baseline, fd_limit, fds_settled};
use super::{
    fail, on_every_server, served_again, try_client, Fate, CLOSE_WITHIN, SERVED_AGAIN_WITHIN,
    SERVERS,
};
use crate::util::{
    echo_once, read_n, read_to_eof, set_linger_zero, try_connect, Server, IO_TIMEOUT,
};

/// The most CPU a server may use while it has nothing to do but wait: 5% of one core.
const IDLE_CPU: f64 = 0.05;

/// The descriptor limit given to servers in the descriptor tests.
const LOW_FD_LIMIT: libc::rlim_t = 64;

// ----------------------------------------------------------------------------------------------
// 1. Descriptor exhaustion
// ----------------------------------------------------------------------------------------------

/// How long the CPU of a server out of descriptors is watched.
const EXHAUSTED_WINDOW: Duration = Duration::from_secs(10);

/// With `RLIMIT_NOFILE` at 64, clients are opened until one is closed instead of served; then,
/// for 10 s, a new client every 250 ms must be closed within 1 s, the served ones must keep
/// echoing, and the server must use under 5% CPU (not asserted for `spin`, which burns a core by
/// design). Once 4 served clients leave, a new client must be served within 1 s.
#[test]
fn descriptor_exhaustion() {
    on_every_server(&SERVERS, |runtime| {
        let mut server = Server::start_with(runtime, &[], fd_limit(LOW_FD_LIMIT));
        let addr = server.addr();

        // 1. Fill the descriptor table.
        let mut served = Vec::new();
        loop {
            if served.len() as u64 >= LOW_FD_LIMIT {
                return Err(format!(
                    "{} clients served: the descriptor limit did not apply",
                    served.len()
                ));
            }
            match try_client(addr, IO_TIMEOUT)? {
                (Fate::Served(stream), _) => served.push(stream),
                (Fate::Closed, _) => break,
                (Fate::Ignored, _) => {
                    return Err(fail(&server, "a client past the limit got no answer and no close"))
                }
            }
        }
        let held = served.len();
        if held < 8 {
            return Err(fail(&server, &format!("only {held} clients served below the limit")));
        }

        // 2. Out of descriptors for a while: clients keep coming and must be closed promptly,
        //    the served ones keep echoing, and the CPU stays low.
        let mut slowest_close = Duration::ZERO;
        let mut extras = 0;
        let (cpu, outcome) = cpu_during(server.pid(), EXHAUSTED_WINDOW, |deadline| {
            let pace = Duration::from_millis(250);
            let mut next = Instant::now();
            while next < deadline {
                match try_client(addr, CLOSE_WITHIN)? {
                    (Fate::Closed, took) => slowest_close = slowest_close.max(took),
                    (Fate::Served(_), _) => return Err("a client past the limit was served".into()),
                    (Fate::Ignored, _) => {
                        return Err(format!(
                            "a client past the limit was not closed within {CLOSE_WITHIN:?}"
                        ))
                    }
                }
                let stream = &served[extras % held];
                let message = format!("still here {extras}\n");
                match echo_once(stream, message.as_bytes()) {
                    Ok(reply) if reply == message.as_bytes() => {}
                    other => return Err(format!("a served client stopped echoing: {other:?}")),
                }
                extras += 1;
                next += pace;
                // Pacing within the measured window, not synchronisation.
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            Ok(())
        });
        outcome.map_err(|e| fail(&server, &e))?;
        if runtime != "spin" && cpu >= IDLE_CPU {
            return Err(fail(&server, &format!(
                "{:.1}% CPU over {EXHAUSTED_WINDOW:?} out of descriptors (limit {:.0}%): a busy loop",
                cpu * 100.0,
                IDLE_CPU * 100.0
            )));
        }

        // 3. Free a few descriptors: a new client must be served soon.
        served.truncate(held - 4);
        let served_after = served_again(&server, |fate| {
            format!(
                "no client served within {SERVED_AGAIN_WITHIN:?} of freeing 4 descriptors (last: {fate})"
            )
        })?;
        server.assert_running();
        Ok(format!(
            "{held} served at the limit; {extras} extra clients, slowest close {slowest_close:.0?}; \
             CPU {:.2}% over {EXHAUSTED_WINDOW:?}; served again {served_after:.0?} after freeing",
            cpu * 100.0
        ))
    });
}

// ----------------------------------------------------------------------------------------------
// 2. No descriptor leaks
// ----------------------------------------------------------------------------------------------

/// Connect/echo/close cycles per server.
const CYCLES: usize = 5000;
/// How long the CPU of a server left alone is watched.
const IDLE_WINDOW: Duration = Duration::from_secs(2);

/// With `RLIMIT_NOFILE` at 64, 5000 cycles mixing a clean close, a reset after the echo, a reset
/// in the middle of the echo and a half-close; each must be served (a leak would soon exhaust
/// the table). Then the server's descriptor count must return to its baseline and it must idle
/// under 5% CPU over 2 s (not asserted for `spin`).
#[test]
fn no_descriptor_leaks() {
    on_every_server(&SERVERS, |runtime| {
        let server = Server::start_with(runtime, &[], fd_limit(LOW_FD_LIMIT));
        let addr = server.addr();
        let baseline = fd_baseline(&server);
        let started = Instant::now();
        for cycle in 0..CYCLES {
            one_cycle(addr, cycle).map_err(|e| fail(&server, &format!("cycle {cycle}: {e}")))?;
        }
        let cycles_took = started.elapsed();
        let now = fds_settled(&server, baseline);
        if now > baseline {
            return Err(fail(
                &server,
                &format!("{now} descriptors open after {CYCLES} cycles, baseline {baseline}"),
            ));
        }
        let (cpu, ()) = cpu_during(server.pid(), IDLE_WINDOW, |_| ());
        if runtime != "spin" && cpu >= IDLE_CPU {
            return Err(fail(&server, &format!("{:.1}% CPU idle after the cycles", cpu * 100.0)));
        }
        Ok(format!(
            "{CYCLES} cycles in {cycles_took:.1?}; descriptors {now} (baseline {baseline}); idle CPU {:.2}%",
            cpu * 100.0
        ))
    });
}

/// One connection, ended one of four ways depending on `cycle`.
fn one_cycle(addr: SocketAddr, cycle: usize) -> Result<(), String> {
    let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    let message = format!("cycle {cycle}\n");
    let echo = |client: &TcpStream| match echo_once(client, message.as_bytes()) {
        Ok(reply) if reply == message.as_bytes() => Ok(()),
        other => Err(format!("echo: {other:?}")),
    };
    match cycle % 4 {
        // A clean close (FIN) after the echo.
        0 => echo(&client)?,
        // A reset (RST) after the echo.
        1 => {
            echo(&client)?;
            set_linger_zero(&client);
        }
        // A reset while the server is still sending the echo.
        2 => {
            (&client).write_all(&[b'r'; 32 << 10]).map_err(|e| format!("write: {e}"))?;
            read_n(&client, 1024).map_err(|e| format!("read: {e}"))?;
            set_linger_zero(&client);
        }
        // A half-close: the echo, then end-of-file from the server.
        _ => {
            (&client).write_all(message.as_bytes()).map_err(|e| format!("write: {e}"))?;
            client.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            let got = read_to_eof(&client, message.len()).map_err(|e| format!("read: {e}"))?;
            if got != message.as_bytes() {
                return Err(format!("half-close: got {:?}", String::from_utf8_lossy(&got)));
            }
        }
    }
    Ok(())
}
