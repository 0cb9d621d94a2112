//! Faults 3 and 4: the byte stream under pressure. A client that sends and never reads must be
//! held back by TCP flow control, with the server's memory bounded; and a gigabyte sent through
//! sockets that take replies in small pieces must come back exact.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::measure::{mib, rss};
use super::{fail, on_every_server, tail, SERVERS};
use crate::util::{connect, echo_once, random_bytes, Server};

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

/// Turns `case(runtime)` into one `#[test]` per server, named `case::<server>`.
macro_rules! one_test_per_server {
    ($case:ident: $($server:ident),+) => {
        mod $case {
            $(
                #[test]
                fn $server() {
                    super::$case(stringify!($server));
                }
            )+
        }
    };
}

one_test_per_server!(large_transfer: mini, threaded, spin, select, epoll, sigio);
