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

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    connect, echo_once, open_fds, random_bytes, read_n, read_to_eof, run, set_linger_zero,
    try_connect, wait_until, Server, IO_TIMEOUT,
};

/// The servers of this file: all but the tokio peers, which are benchmark peers.
const SERVERS: [&str; 5] = ["mini", "threaded", "spin", "select", "epoll"];

/// The most CPU a server may use while it has nothing to do but wait: 5% of one core.
const IDLE_CPU: f64 = 0.05;

/// The descriptor limit given to servers in the descriptor tests.
const LOW_FD_LIMIT: libc::rlim_t = 64;

// ----------------------------------------------------------------------------------------------
// 1. Descriptor exhaustion
// ----------------------------------------------------------------------------------------------

/// How long the CPU of a server out of descriptors is watched.
const EXHAUSTED_WINDOW: Duration = Duration::from_secs(10);
/// How long a client past the descriptor limit may wait to see its connection closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);
/// How long after descriptors are freed a new client must be served.
const SERVED_AGAIN_WITHIN: Duration = Duration::from_secs(1);

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
        let freed = Instant::now();
        let served_after = loop {
            match try_client(addr, CLOSE_WITHIN)? {
                (Fate::Served(_), _) => break freed.elapsed(),
                (Fate::Closed, _) if freed.elapsed() < SERVED_AGAIN_WITHIN => {}
                (fate, _) => {
                    return Err(fail(&server, &format!(
                        "no client served within {SERVED_AGAIN_WITHIN:?} of freeing 4 descriptors (last: {})",
                        fate.name()
                    )))
                }
            }
        };
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
        let mut now = usize::MAX;
        wait_until(Duration::from_secs(5), || {
            now = open_fds(server.pid());
            now <= baseline
        });
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

// ----------------------------------------------------------------------------------------------
// 3. Slow reader
// ----------------------------------------------------------------------------------------------

/// What a client that never reads tries to send.
const FLOOD: u64 = 1 << 30;
/// A write that moves nothing for this long means the client is held back.
const STALL: Duration = Duration::from_secs(1);
/// The most the client may get accepted before it is held back.
const MAX_ACCEPTED: u64 = 64 << 20;
/// The most the server's resident memory may grow meanwhile.
const MAX_RSS_GROWTH: u64 = 32 << 20;

/// A client tries to send 1 GiB and never reads. Its writes must stall (no progress for 1 s)
/// before 64 MiB are accepted, the server's RSS must grow by less than 32 MiB, and another client
/// must still be served.
#[test]
fn slow_reader_is_held_back_by_flow_control() {
    on_every_server(&SERVERS, |runtime| {
        let server = Server::start(runtime, &[]);
        let addr = server.addr();
        let warm_up = connect(addr);
        echo_once(&warm_up, b"warm-up\n").map_err(|e| format!("warm-up: {e}"))?;
        let rss_before = rss(server.pid());

        let mut client = connect(addr);
        client.set_write_timeout(Some(STALL)).unwrap();
        let chunk = random_bytes(1 << 20, 3);
        let started = Instant::now();
        let mut accepted = 0u64;
        while accepted < FLOOD {
            match client.write(&chunk) {
                Ok(n) => accepted += n as u64,
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    break
                }
                Err(e) => return Err(fail(&server, &format!("write after {accepted} bytes: {e}"))),
            }
        }
        let stalled_after = started.elapsed();
        let growth = rss(server.pid()).saturating_sub(rss_before);
        if accepted >= MAX_ACCEPTED {
            return Err(fail(
                &server,
                &format!("{} MiB accepted from a client that never reads", accepted >> 20),
            ));
        }
        if growth >= MAX_RSS_GROWTH {
            return Err(fail(&server, &format!("RSS grew by {} MiB", growth >> 20)));
        }
        let other = connect(addr);
        match echo_once(&other, b"and me?\n") {
            Ok(reply) if reply == b"and me?\n" => {}
            other => {
                return Err(fail(
                    &server,
                    &format!("another client while one is held back: {other:?}"),
                ))
            }
        }
        Ok(format!(
            "accepted {:.1} MiB before stalling ({stalled_after:.1?}); RSS +{} KiB",
            mib(accepted),
            growth >> 10
        ))
    });
}

// ----------------------------------------------------------------------------------------------
// 4. Large transfers with short writes
// ----------------------------------------------------------------------------------------------

/// Bytes sent through the server.
const TRANSFER: u64 = 1 << 30;
/// `--send-buffer` of the transfer: the kernel doubles it, so each server socket holds 64 KiB,
/// and a 16 KiB reply is written in pieces whenever the client is behind. (16 KiB or less would
/// leave about one segment in flight; loopback throughput then falls, in some runs, to a few
/// MiB/s, and 1 GiB would take minutes.)
const TRANSFER_SEND_BUFFER: &str = "32768";

/// 1 GiB through a server whose sockets hold 64 KiB of output. A writer thread sends a
/// pseudo-random stream; the reader checks every byte it gets against the same stream (at
/// `memcmp` speed, so that a debug build of the test keeps up) and that exactly 1 GiB arrives
/// before end-of-file.
fn large_transfer(runtime: &str) {
    let server = Server::start(runtime, &["--send-buffer", TRANSFER_SEND_BUFFER]);
    let client = connect(server.addr());
    let stream = Stream::new();
    let started = Instant::now();
    let (wrote, read) = thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut client = &client;
            for k in 0..TRANSFER / Stream::CHUNK as u64 {
                client.write_all(stream.chunk(k))?;
            }
            client.shutdown(Shutdown::Write)
        });
        let read = stream.check(&client);
        if read.is_err() {
            let _ = client.shutdown(Shutdown::Both); // unblocks the writer
        }
        (writer.join().expect("writer thread panicked"), read)
    });
    let took = started.elapsed();
    read.unwrap_or_else(|e| panic!("{runtime}: reading the echo: {e}\n{}", tail(&server.log())));
    wrote.unwrap_or_else(|e| panic!("{runtime}: writing: {e}"));
    println!(
        "{runtime}: 1 GiB echoed exactly through --send-buffer {TRANSFER_SEND_BUFFER} in {took:.1?} \
         ({:.0} MiB/s)",
        mib(TRANSFER) / took.as_secs_f64()
    );
}

/// The byte stream of [`large_transfer`]: chunk `k` is a 64 KiB window of a 1 MiB random
/// pattern, at an offset that differs for every chunk of the transfer, so a lost, repeated or
/// reordered chunk shows.
struct Stream {
    pattern: Vec<u8>,
}

impl Stream {
    const CHUNK: usize = 64 << 10;
    const PATTERN: usize = 1 << 20;

    fn new() -> Stream {
        Stream { pattern: random_bytes(Stream::PATTERN + Stream::CHUNK, 4) }
    }

    fn chunk(&self, k: u64) -> &[u8] {
        // 4099 is odd, so the offsets repeat only after 2^20 chunks (64 GiB).
        let offset = (k as usize).wrapping_mul(4099) % Stream::PATTERN;
        &self.pattern[offset..offset + Stream::CHUNK]
    }

    /// Reads `client` to end-of-file, comparing with the stream as it goes.
    fn check(&self, mut client: &TcpStream) -> Result<(), String> {
        let mut buf = vec![0; Stream::CHUNK];
        let mut at = 0u64;
        loop {
            let n = match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("{e} after {at} bytes")),
            };
            let mut got = &buf[..n];
            while !got.is_empty() {
                let (k, i) = (at / Stream::CHUNK as u64, at as usize % Stream::CHUNK);
                let want = &self.chunk(k)[i..];
                let len = want.len().min(got.len());
                if got[..len] != want[..len] {
                    let first = (0..len).find(|&j| got[j] != want[j]).unwrap_or(0);
                    return Err(format!("byte {} differs", at + first as u64));
                }
                at += len as u64;
                got = &got[len..];
                if at > TRANSFER {
                    return Err(format!("more than {TRANSFER} bytes came back"));
                }
            }
        }
        if at == TRANSFER {
            Ok(())
        } else {
            Err(format!("end-of-file after {at} of {TRANSFER} bytes"))
        }
    }
}

mod large_transfer {
    #[test]
    fn mini() {
        super::large_transfer("mini");
    }
    #[test]
    fn threaded() {
        super::large_transfer("threaded");
    }
    #[test]
    fn spin() {
        super::large_transfer("spin");
    }
    #[test]
    fn select() {
        super::large_transfer("select");
    }
    #[test]
    fn epoll() {
        super::large_transfer("epoll");
    }
}

// ----------------------------------------------------------------------------------------------
// 5. Peer reset while the server writes
// ----------------------------------------------------------------------------------------------

/// What the victim sends: more than the server can pass on to it (its receive buffer is 4 KiB
/// and the server's send buffer 8 KiB), little enough that all of it, and its FIN, reach the
/// server's receive buffer.
const VICTIM_SENDS: usize = 64 << 10;
/// `--send-buffer` of the reset tests: 8 KiB per server socket.
const RESET_SEND_BUFFER: &str = "4096";

/// A client sends 64 KiB, half-closes and never reads, so the server is stuck writing with input
/// left to read and the peer's FIN received (`CLOSE_WAIT`). Then it resets. The server's next
/// write fails with `EPIPE` (the error that comes with `SIGPIPE` to a process that does not
/// ignore it and writes without `MSG_NOSIGNAL`): the server must log an error for that
/// connection, keep running, keep a concurrent conversation exact, and release the descriptor.
#[test]
fn peer_reset_while_server_writes() {
    on_every_server(&SERVERS, |runtime| reset_while_writing(runtime, false));
}

/// The same against the `epoll` server, whose writes with output pending and input waiting are
/// `writev(2)` calls (no `MSG_NOSIGNAL`): the error must be `EPIPE`, so the kernel raised
/// `SIGPIPE`, and the server must survive it.
#[test]
fn peer_reset_during_writev() {
    on_every_server(&["epoll"], |runtime| reset_while_writing(runtime, true));
}

fn reset_while_writing(runtime: &str, want_epipe: bool) -> Result<String, String> {
    let mut server = Server::start_with(runtime, &["--send-buffer", RESET_SEND_BUFFER], |c| {
        c.env("RUST_LOG", "echo=debug");
    });
    let addr = server.addr();
    let baseline = fd_baseline(&server);
    let stop = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    let victim = thread::scope(|s| {
        let talker = s.spawn(|| conversation(addr, &stop, &rounds));
        let victim = if wait_until(IO_TIMEOUT, || rounds.load(Ordering::Relaxed) > 0) {
            reset_a_victim(&server)
        } else {
            Err("the conversation never got its first echo".into())
        };
        stop.store(true, Ordering::Relaxed);
        let talked = talker.join().expect("talker panicked");
        victim.and_then(|v| talked.map(|rounds| (v, rounds)))
    });
    let ((peer, error), rounds) = victim.map_err(|e| fail(&server, &e))?;
    server.assert_running();
    if want_epipe && !error.contains("os error 32") {
        return Err(fail(&server, &format!("the error was {error:?}, not EPIPE")));
    }
    let mut now = usize::MAX;
    wait_until(Duration::from_secs(5), || {
        now = open_fds(server.pid());
        now <= baseline
    });
    if now > baseline {
        return Err(fail(&server, &format!("{now} descriptors open, baseline {baseline}")));
    }
    Ok(format!("{peer}: {error:?}; {rounds} exact rounds meanwhile; descriptors back to {now}"))
}

/// Connects the victim, gets the server stuck writing to it, resets it and returns its address
/// and the error the server logged for it.
fn reset_a_victim(server: &Server) -> Result<(SocketAddr, String), String> {
    let victim = connect_with_small_receive_buffer(server.addr())?;
    let peer = victim.local_addr().unwrap();
    (&victim).write_all(&[b'v'; VICTIM_SENDS]).map_err(|e| format!("victim write: {e}"))?;
    victim.shutdown(Shutdown::Write).map_err(|e| format!("victim shutdown: {e}"))?;
    // Everything, FIN included, has reached the server once nothing is left unacknowledged.
    if !wait_until(IO_TIMEOUT, || queued(&victim, libc::TIOCOUTQ) == 0) {
        return Err(format!("{} bytes never left the victim", queued(&victim, libc::TIOCOUTQ)));
    }
    let echoed = queued(&victim, libc::FIONREAD);
    if echoed >= VICTIM_SENDS {
        return Err(format!("the server echoed all {echoed} bytes: it never had to wait"));
    }
    set_linger_zero(&victim);
    drop(victim);
    let needle = format!("closing {peer} after an error: ");
    let mut error = None;
    wait_until(IO_TIMEOUT, || {
        let log = server.log();
        error = log.lines().find_map(|l| l.split_once(&needle)).map(|(_, e)| e.to_owned());
        error.is_some()
    });
    let error = error.ok_or_else(|| format!("no error logged for {peer} (\"{needle}...\")"))?;
    Ok((peer, error))
}

/// Echo rounds of 4 KiB on one connection until `stop`, then ten more; returns how many.
fn conversation(
    addr: SocketAddr,
    stop: &AtomicBool,
    rounds: &AtomicUsize,
) -> Result<usize, String> {
    let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut after_stop = 0;
    for round in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            if after_stop == 10 {
                return Ok(round);
            }
            after_stop += 1;
        }
        let sent = random_bytes(4096, round as u64);
        match echo_once(&client, &sent) {
            Ok(got) if got == sent => rounds.fetch_add(1, Ordering::Relaxed),
            other => {
                return Err(format!("conversation round {round}: {:?}", other.map(|g| g.len())))
            }
        };
    }
    unreachable!("the rounds are unbounded")
}

/// A client socket whose receive buffer is set small before it connects (so its window is
/// small from the handshake on), with the usual timeouts.
fn connect_with_small_receive_buffer(addr: SocketAddr) -> Result<TcpStream, String> {
    let SocketAddr::V4(v4) = addr else { return Err("the server is not on IPv4".into()) };
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd == -1 {
        return Err(format!("socket: {}", io::Error::last_os_error()));
    }
    // SAFETY: socket(2) just returned this descriptor and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let size: libc::c_int = 4096;
    // SAFETY: the value points to a live c_int and the length is its size; the socket is open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(format!("SO_RCVBUF: {}", io::Error::last_os_error()));
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
        sin_zero: [0; 8],
    };
    // SAFETY: the address points to a live sockaddr_in and the length is its size; the socket
    // is open. The call blocks until the handshake is done (loopback: at once).
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(format!("connect: {}", io::Error::last_os_error()));
    }
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    Ok(stream)
}

/// Bytes in a socket's queue: `TIOCOUTQ`, sent but not acknowledged (FIN included); `FIONREAD`,
/// received but not read.
fn queued(stream: &TcpStream, request: libc::Ioctl) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: both requests write one c_int through the pointer, which points to a live one; the
    // socket is open.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), request, &mut n) };
    assert_eq!(rc, 0, "ioctl: {}", io::Error::last_os_error());
    n as usize
}

// ----------------------------------------------------------------------------------------------
// 9. Connection cap and idle timeout
// ----------------------------------------------------------------------------------------------

/// `--max-connections` in the cap test.
const CAP: usize = 4;

/// With `--max-connections 4`, four clients are served; a fifth must be closed within 1 s while
/// the four keep echoing; once one of them leaves, a new client must be served within 1 s.
#[test]
fn connection_cap() {
    on_every_server(&SERVERS, |runtime| {
        let server = Server::start(runtime, &["--max-connections", &CAP.to_string()]);
        let addr = server.addr();
        let mut served = Vec::new();
        for i in 0..CAP {
            match try_client(addr, IO_TIMEOUT)? {
                (Fate::Served(stream), _) => served.push(stream),
                (fate, _) => {
                    return Err(fail(
                        &server,
                        &format!("client {i} below the cap: {}", fate.name()),
                    ))
                }
            }
        }
        let closed_in = match try_client(addr, CLOSE_WITHIN)? {
            (Fate::Closed, took) => took,
            (fate, _) => {
                return Err(fail(
                    &server,
                    &format!(
                        "client past the cap: {}, not closed within {CLOSE_WITHIN:?}",
                        fate.name()
                    ),
                ))
            }
        };
        for (i, stream) in served.iter().enumerate() {
            match echo_once(stream, b"still served\n") {
                Ok(reply) if reply == b"still served\n" => {}
                other => {
                    return Err(fail(&server, &format!("client {i} after the refusal: {other:?}")))
                }
            }
        }
        if !logged(&server, "--max-connections") {
            return Err(fail(&server, "no log line names --max-connections"));
        }
        served.pop();
        let freed = Instant::now();
        let served_after = loop {
            match try_client(addr, CLOSE_WITHIN)? {
                (Fate::Served(_), _) => break freed.elapsed(),
                (Fate::Closed, _) if freed.elapsed() < SERVED_AGAIN_WITHIN => {}
                (fate, _) => {
                    return Err(fail(&server, &format!("after one left: {}", fate.name())))
                }
            }
        };
        Ok(format!("past the cap closed in {closed_in:.1?}; served again {served_after:.1?} after one left"))
    });
}

/// `--help` documents the three flags of this file, and nonsense values are refused with an
/// error naming the flag.
#[test]
fn limit_flags_are_documented_and_checked() {
    let help = run(&["--help"], b"");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--max-connections", "--idle-timeout", "--send-buffer"] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
    for bad in [["--idle-timeout", "0"], ["--idle-timeout", "soon"], ["--max-connections", "0"]] {
        let out = run(&[bad[0], bad[1], "--addr", "127.0.0.1:0"], b"");
        assert!(!out.status.success(), "{bad:?} was accepted: {}", out.describe());
        assert!(
            out.stderr.contains(bad[0]),
            "{bad:?}: the error does not name it: {}",
            out.describe()
        );
    }
}

/// `--idle-timeout` in the idle test (a fraction, to exercise the parsing).
const IDLE_TIMEOUT: Duration = Duration::from_millis(800);
/// How late an idle connection may be closed.
const IDLE_SLACK: Duration = Duration::from_millis(500);

/// With `--idle-timeout 0.8`: a client that sends nothing and one that sends a little and then
/// stops must each be closed between 0.8 s and 1.3 s after their last byte; a client that talks
/// every 300 ms for 2 s must be served throughout.
#[test]
fn idle_timeout() {
    on_every_server(&SERVERS, |runtime| {
        let secs = format!("{}", IDLE_TIMEOUT.as_secs_f64());
        let server = Server::start(runtime, &["--idle-timeout", &secs]);
        let addr = server.addr();
        let (silent, trickle, talker) = thread::scope(|s| {
            let silent = s.spawn(|| {
                let before = Instant::now();
                let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
                closed_after_idle(&client, before, Instant::now())
            });
            let trickle = s.spawn(|| {
                let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
                let before = Instant::now();
                match echo_once(&client, b"hi") {
                    Ok(reply) if reply == b"hi" => {}
                    other => return Err(format!("trickle echo: {other:?}")),
                }
                closed_after_idle(&client, before, Instant::now())
            });
            let talker = s.spawn(|| {
                let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
                let started = Instant::now();
                let mut rounds = 0;
                while started.elapsed() < Duration::from_secs(2) {
                    match echo_once(&client, b"talking\n") {
                        Ok(reply) if reply == b"talking\n" => rounds += 1,
                        other => {
                            return Err(format!(
                                "talker round {rounds} after {:.1?}: {other:?}",
                                started.elapsed()
                            ))
                        }
                    }
                    // Pacing: the activity under test, below the timeout.
                    thread::sleep(Duration::from_millis(300));
                }
                Ok(rounds)
            });
            (join(silent), join(trickle), join(talker))
        });
        let silent = silent.map_err(|e| fail(&server, &format!("silent client: {e}")))?;
        let trickle = trickle.map_err(|e| fail(&server, &format!("trickling client: {e}")))?;
        let talked = talker.map_err(|e| fail(&server, &e))?;
        if !logged(&server, "--idle-timeout") {
            return Err(fail(&server, "no log line names --idle-timeout"));
        }
        Ok(format!(
            "silent closed after {silent:.2?}, trickling after {trickle:.2?} (timeout {IDLE_TIMEOUT:?}); \
             talker served {talked} rounds over 2 s"
        ))
    });
}

/// Waits for the server to close `client`, which last moved a byte between `earliest` and
/// `latest`; the close must come at least the timeout after `earliest` and at most the timeout
/// plus the slack after `latest`. Returns the time from `latest`.
fn closed_after_idle(
    mut client: &TcpStream,
    earliest: Instant,
    latest: Instant,
) -> Result<Duration, String> {
    client.set_read_timeout(Some(IDLE_TIMEOUT + IDLE_SLACK + Duration::from_secs(1))).unwrap();
    let mut byte = [0; 1];
    match client.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => return Err("got bytes, expected a close".into()),
        Err(e) if closed(&e) => {}
        Err(e) => return Err(format!("no close: {e}")),
    }
    let (since_earliest, since_latest) = (earliest.elapsed(), latest.elapsed());
    if since_earliest < IDLE_TIMEOUT {
        return Err(format!("closed {since_earliest:.2?} after its last byte, before the timeout"));
    }
    if since_latest > IDLE_TIMEOUT + IDLE_SLACK {
        return Err(format!(
            "closed {since_latest:.2?} after its last byte, later than timeout + {IDLE_SLACK:?}"
        ));
    }
    Ok(since_latest)
}

// ----------------------------------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------------------------------

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

/// A `Server::start_with` step that sets the child's descriptor limit (soft and hard) to
/// `limit` between `fork` and `exec`.
fn fd_limit(limit: libc::rlim_t) -> impl FnOnce(&mut Command) {
    move |command| {
        let set_limit = move || {
            let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: `rlimit` is a live, initialised struct the call only reads.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) } == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe work is allowed: it makes one system call (setrlimit) and builds
        // plain values; it neither allocates nor takes locks (`last_os_error` reads errno into an
        // integer).
        unsafe {
            command.pre_exec(set_limit);
        }
    }
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

/// The server's descriptor count with no client, measured after one echo so that anything it
/// creates lazily is counted.
fn fd_baseline(server: &Server) -> usize {
    let at_start = open_fds(server.pid());
    let warm_up = connect(server.addr());
    echo_once(&warm_up, b"warm-up\n").expect("warm-up echo");
    let with_one = open_fds(server.pid());
    at_start.max(with_one - 1)
}

/// Runs `activity` (given the window's end) and sleeps out the rest of `window`, measuring the
/// share of one core that process `pid` used meanwhile.
fn cpu_during<R>(pid: u32, window: Duration, activity: impl FnOnce(Instant) -> R) -> (f64, R) {
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    let result = activity(t0 + window);
    thread::sleep((t0 + window).saturating_duration_since(Instant::now()));
    let (cpu1, wall) = (cpu_time(pid), t0.elapsed());
    ((cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64(), result)
}

/// User plus system CPU time of process `pid`, all threads, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/PID/stat");
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let fields: Vec<&str> =
        stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the name (which ends field 2).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf takes no pointers.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// Resident memory of process `pid` in bytes, from `/proc/PID/status`.
fn rss(pid: u32) -> u64 {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("a VmRSS line");
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
