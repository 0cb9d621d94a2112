//! The same suite run against each server the binary offers (`--runtime mini|threaded|spin|select|epoll|sigio`).
//!
//! Each case is a plain function taking the runtime's name; [`server_suite!`] turns every
//! (server, case) pair into its own `#[test]`, named `echo_servers::<server>::<case>`, so a
//! failure names both and `cargo test threaded` runs one server's suite. Every test starts its
//! own server on port 0, so tests run in parallel and a spinning server lives only as long as
//! the test that needs it.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::util::{
    assert_same_bytes, connect, echo_once, open_fds, random_bytes, read_n, read_to_eof,
    set_linger_zero, try_connect, wait_until, Rendezvous, Server, IO_TIMEOUT,
};

/// Generates one module per server, holding one `#[test]` per case. A server whose `--runtime`
/// name is not an identifier is written `module = "name"`.
macro_rules! server_suite {
    (@name $runtime:ident) => { stringify!($runtime) };
    (@name $runtime:ident $name:literal) => { $name };
    ($($runtime:ident $(= $name:literal)?),* $(,)?) => {$(
        mod $runtime {
            const RUNTIME: &str = server_suite!(@name $runtime $($name)?);

            #[test]
            fn round_trip() {
                super::round_trip(RUNTIME);
            }
            #[test]
            fn concurrent_clients_200() {
                super::concurrent_clients(RUNTIME);
            }
            #[test]
            fn payload_1b() {
                super::payload(RUNTIME, 1);
            }
            #[test]
            fn payload_1kib() {
                super::payload(RUNTIME, 1 << 10);
            }
            #[test]
            fn payload_64kib() {
                super::payload(RUNTIME, 64 << 10);
            }
            #[test]
            fn payload_1mib() {
                super::payload(RUNTIME, 1 << 20);
            }
            #[test]
            fn payload_8mib() {
                super::payload(RUNTIME, 8 << 20);
            }
            #[test]
            fn upper_only_ascii_letters() {
                super::upper_only_ascii_letters(RUNTIME);
            }
            #[test]
            fn half_close_echoes_all_then_eof() {
                super::half_close_echoes_all_then_eof(RUNTIME);
            }
            #[test]
            fn reset_client_does_not_disturb_others() {
                super::reset_client_does_not_disturb_others(RUNTIME);
            }
            #[test]
            fn fds_return_to_baseline() {
                super::fds_return_to_baseline(RUNTIME);
            }
        }
    )*};
}

server_suite!(mini, threaded, spin, select, epoll, sigio);
#[cfg(feature = "tokio")]
server_suite!(tokio_current = "tokio-current", tokio_multi = "tokio-multi");

/// One client, a few messages on one connection, each echoed exactly.
fn round_trip(runtime: &str) {
    let server = Server::start(runtime, &[]);
    let client = connect(server.addr());
    for message in [&b"hello, echo\n"[..], b"x", b"second line on the same connection\n"] {
        let got = echo_once(&client, message).expect("round trip");
        assert_same_bytes(&format!("{runtime}: echo of {message:?}"), &got, message);
    }
}

const CLIENTS: usize = 200;
const ROUNDS_PER_CLIENT: usize = 5;

/// 200 clients, each on its own thread with its own messages. They all meet after their first
/// echo, so the later rounds only complete if the server serves all 200 connections at once.
fn concurrent_clients(runtime: &str) {
    let server = Server::start(runtime, &[]);
    let addr = server.addr();
    let everyone_served = Rendezvous::new(CLIENTS);
    let failures: Vec<String> = thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let everyone_served = &everyone_served;
                s.spawn(move || client_session(addr, id, everyone_served))
            })
            .collect();
        clients
            .into_iter()
            .filter_map(|c| c.join().unwrap_or_else(|_| Err("client thread panicked".into())).err())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{runtime}: {} of {CLIENTS} clients failed; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

fn client_session(addr: SocketAddr, id: usize, everyone: &Rendezvous) -> Result<(), String> {
    // Distinct per client and per round, and of varying lengths.
    let message = |round: usize| format!("client {id} round {round} {}\n", "#".repeat(id % 37));
    let exchange = |stream: &TcpStream, round: usize| {
        let sent = message(round);
        let got = echo_once(stream, sent.as_bytes()).map_err(|e| format!("client {id}: {e}"))?;
        if got == sent.as_bytes() {
            Ok(())
        } else {
            Err(format!("client {id}: sent {sent:?}, got {:?}", String::from_utf8_lossy(&got)))
        }
    };
    let first = try_connect(addr)
        .map_err(|e| format!("client {id}: connect: {e}"))
        .and_then(|stream| exchange(&stream, 0).map(|()| stream));
    // Arrive even after a failure, so that the others are not kept waiting for us.
    if !everyone.arrive_and_wait(IO_TIMEOUT) {
        first?;
        return Err(format!(
            "client {id}: only {} of {CLIENTS} clients had their first echo within {IO_TIMEOUT:?}; \
             the server does not serve them concurrently",
            everyone.arrived()
        ));
    }
    let stream = first?;
    (1..ROUNDS_PER_CLIENT).try_for_each(|round| exchange(&stream, round))
}

/// Random bytes of `len`, written by one thread while this one reads the echo on the same
/// connection (a server must not need the whole message before echoing, nor lose any of it).
fn payload(runtime: &str, len: usize) {
    let server = Server::start(runtime, &[]);
    let client = connect(server.addr());
    let data = random_bytes(len, len as u64);
    let got = echo_concurrently(&client, &data, false);
    assert_same_bytes(&format!("{runtime}: echo of {len} random bytes"), &got, &data);
}

/// With `--upper`, ASCII letters come back upper-cased and every other byte, including each
/// non-ASCII one, unchanged.
fn upper_only_ascii_letters(runtime: &str) {
    let server = Server::start(runtime, &["--upper"]);
    let client = connect(server.addr());
    let mut input =
        "Hello, World! mIxEd CaSe azAZ 09 @[`{ ~ été ÀÉÎõü ß 東京\n".as_bytes().to_vec();
    input.extend(0..=255u8);
    input.extend(random_bytes(64 << 10, 99));
    let want = input.to_ascii_uppercase();
    assert_ne!(want, input, "the test input must contain lower-case letters");
    let got = echo_concurrently(&client, &input, false);
    assert_same_bytes(&format!("{runtime} --upper: reply"), &got, &want);
}

/// The client sends 256 KiB and shuts down its write side: the server must echo all of it and
/// then close its side too (the client reads end-of-file).
fn half_close_echoes_all_then_eof(runtime: &str) {
    let server = Server::start(runtime, &[]);
    let client = connect(server.addr());
    let data = random_bytes(256 << 10, 256);
    let got = echo_concurrently(&client, &data, true);
    assert_same_bytes(&format!("{runtime}: echo before end-of-file"), &got, &data);
}

/// Writes `data` from a second thread while reading the echo here. With `half_close`, the
/// writer then shuts down the write side and the reader expects end-of-file after the data;
/// otherwise it reads exactly `data.len()` bytes.
fn echo_concurrently(client: &TcpStream, data: &[u8], half_close: bool) -> Vec<u8> {
    thread::scope(|s| {
        let writer = s.spawn(move || {
            let mut client = client;
            client.write_all(data)?;
            if half_close {
                client.shutdown(Shutdown::Write)?;
            }
            Ok::<(), std::io::Error>(())
        });
        let read = if half_close {
            read_to_eof(client, data.len())
                .map_err(|e| format!("{e}; no end-of-file: did the server see the shutdown?"))
        } else {
            read_n(client, data.len()).map_err(|e| e.to_string())
        };
        if read.is_err() {
            // Unblocks a writer stuck on a full socket, so the failure is reported at once.
            let _ = client.shutdown(Shutdown::Both);
        }
        let wrote = writer.join().expect("writer thread panicked");
        let got = read.unwrap_or_else(|e| panic!("reading the echo: {e}"));
        wrote.unwrap_or_else(|e| panic!("writing {} bytes: {e}", data.len()));
        got
    })
}

const RESETTING_CLIENTS: usize = 20;

/// While one client holds a long conversation, others send data and abort their connection
/// (RST) mid-stream, some before reading anything, some after reading part of the echo. The
/// conversation must go on exactly, a new client must be served afterwards, and the server must
/// have released the aborted connections' descriptors.
fn reset_client_does_not_disturb_others(runtime: &str) {
    let mut server = Server::start(runtime, &[]);
    let addr = server.addr();
    let baseline = fd_baseline(&server);
    let stop = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    let (talked, resets) = thread::scope(|s| {
        let talker = s.spawn(|| long_conversation(addr, &stop, &rounds));
        // Let the conversation start before the first reset, so that they overlap.
        let resets = if wait_until(IO_TIMEOUT, || rounds.load(Ordering::Relaxed) > 0) {
            (0..RESETTING_CLIENTS).try_for_each(|i| reset_mid_stream(addr, i))
        } else {
            Err("the long conversation never got its first echo".into())
        };
        stop.store(true, Ordering::Relaxed);
        (talker.join().expect("talker thread panicked"), resets)
    });
    resets.unwrap_or_else(|e| panic!("{runtime}: resetting client: {e}"));
    let rounds = talked.unwrap_or_else(|e| panic!("{runtime}: long conversation: {e}"));
    server.assert_running();

    let after = connect(addr);
    let got = echo_once(&after, b"still there?\n").expect("echo after the resets");
    assert_same_bytes(&format!("{runtime}: echo after the resets"), &got, b"still there?\n");
    drop(after);
    let now = wait_for_fds(&server, baseline);
    assert!(
        now <= baseline,
        "{runtime}: {now} fds open after {RESETTING_CLIENTS} reset connections and \
         {rounds} echo rounds, baseline {baseline}"
    );
}

/// Echo rounds of 4 KiB on one connection until `stop`, then a few more.
fn long_conversation(
    addr: SocketAddr,
    stop: &AtomicBool,
    rounds: &AtomicUsize,
) -> Result<usize, String> {
    const ROUNDS_AFTER_STOP: usize = 10;
    let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut after_stop = 0;
    for round in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            if after_stop == ROUNDS_AFTER_STOP {
                return Ok(round);
            }
            after_stop += 1;
        }
        let sent = random_bytes(4096, round as u64);
        let got = echo_once(&client, &sent).map_err(|e| format!("round {round}: {e}"))?;
        if got != sent {
            return Err(format!("round {round}: reply differs ({} of 4096 bytes)", got.len()));
        }
        rounds.fetch_add(1, Ordering::Relaxed);
    }
    unreachable!("the rounds are unbounded")
}

/// Sends 64 KiB, reads part of the echo (for odd `i`), then aborts the connection.
fn reset_mid_stream(addr: SocketAddr, i: usize) -> Result<(), String> {
    let mut client = try_connect(addr).map_err(|e| format!("client {i}: connect: {e}"))?;
    client
        .write_all(&random_bytes(64 << 10, 1000 + i as u64))
        .map_err(|e| format!("client {i}: {e}"))?;
    if i % 2 == 1 {
        read_n(&client, 1000).map_err(|e| format!("client {i}: {e}"))?;
    }
    set_linger_zero(&client);
    Ok(())
}

const CYCLES: usize = 1000;

/// 1000 sequential connect/echo/close cycles; the server's descriptor count must come back down.
fn fds_return_to_baseline(runtime: &str) {
    let server = Server::start(runtime, &[]);
    let baseline = fd_baseline(&server);
    for cycle in 0..CYCLES {
        let client = connect(server.addr());
        let message = format!("cycle {cycle}\n");
        let got = echo_once(&client, message.as_bytes()).expect("echo");
        assert_same_bytes(&format!("{runtime}: cycle {cycle}"), &got, message.as_bytes());
    }
    let now = wait_for_fds(&server, baseline);
    assert!(
        now <= baseline,
        "{runtime}: {now} fds open after {CYCLES} closed connections, baseline {baseline}"
    );
}

/// The server's descriptor count with no client connected. It is measured after one full echo,
/// so that anything the server creates lazily (a poller, a wake-up pipe) is already counted: the
/// count during that echo, less the connection's own descriptor, and at least the count at start.
fn fd_baseline(server: &Server) -> usize {
    let at_start = open_fds(server.pid());
    let warm_up = connect(server.addr());
    let got = echo_once(&warm_up, b"warm-up\n").expect("warm-up echo");
    assert_same_bytes("warm-up echo", &got, b"warm-up\n");
    let with_one_client = open_fds(server.pid());
    at_start.max(with_one_client - 1)
}

/// Waits (a few seconds at most) for the server's fd count to fall to `baseline`; returns it.
fn wait_for_fds(server: &Server, baseline: usize) -> usize {
    let mut now = usize::MAX;
    wait_until(Duration::from_secs(5), || {
        now = open_fds(server.pid());
        now <= baseline
    });
    now
}
