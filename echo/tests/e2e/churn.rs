//! Connections closed with operations in flight, many times, under load.
//!
//! A completion-based server (`uring`) lends the kernel its buffers and descriptors between
//! system calls: a receive may be filling a buffer, a send reading one, when the client resets
//! or closes. If the server freed or reused such a buffer before the operation's completion
//! came back, the kernel would write into another connection's bytes, or send them. Miri cannot
//! see the kernel, so the server checks its own ledger at every hand-over (a buffer given back
//! twice or used while in the ring, a connection released with an operation in flight: each
//! panics, and the server dies), and this test provokes the hand-overs: while a few clients
//! stream random bytes through the server and check every byte of the echo, many more connect,
//! write as much as the socket takes (so the server has receives armed and, with
//! `--send-buffer 4096`, sends stalled on them), and reset or close, again and again. The
//! streams must come back exact, the server must serve a new client afterwards and hold no
//! descriptor of the closed connections.
//!
//! Run against the readiness loops too (`epoll`, `mini`), which must survive the same.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use crate::echo_servers::{fd_baseline, wait_for_fds};
use crate::util::{
    assert_same_bytes, connect, echo_once, random_bytes, set_linger_zero, try_connect, Server,
};

/// Clients whose streams must come back exact.
const SURVIVORS: usize = 4;
/// Bytes each survivor streams through the server, in [`CHUNK`]s.
const STREAM: usize = 4 << 20;
const CHUNK: usize = 16 << 10;
/// Threads that open and abandon connections, and how many each opens.
const CHURNERS: usize = 6;
const CHURNS_EACH: usize = 200;

macro_rules! churn_tests {
    ($($server:ident),+) => {$(
        #[test]
        fn $server() {
            closes_in_flight(stringify!($server));
        }
    )+};
}

churn_tests!(uring, epoll, mini);

fn closes_in_flight(runtime: &str) {
    let mut server = Server::start(runtime, &["--send-buffer", "4096"]);
    let addr = server.addr();
    let baseline = fd_baseline(&server);
    let streaming = AtomicBool::new(true);
    let churned = AtomicUsize::new(0);
    let (streams, churns) = thread::scope(|s| {
        let survivors: Vec<_> =
            (0..SURVIVORS).map(|i| s.spawn(move || stream_exactly(addr, i as u64))).collect();
        let churners: Vec<_> = (0..CHURNERS)
            .map(|i| {
                let (streaming, churned) = (&streaming, &churned);
                s.spawn(move || churn(addr, i, streaming, churned))
            })
            .collect();
        let streams: Vec<_> = survivors.into_iter().map(|h| h.join().expect("survivor")).collect();
        streaming.store(false, Ordering::Relaxed);
        let churns: Vec<_> = churners.into_iter().map(|h| h.join().expect("churner")).collect();
        (streams, churns)
    });
    for (i, stream) in streams.into_iter().enumerate() {
        stream.unwrap_or_else(|e| panic!("{runtime}: survivor {i}: {e}\n{}", server.log()));
    }
    for churn in churns {
        churn.unwrap_or_else(|e| panic!("{runtime}: churner: {e}"));
    }
    let churned = churned.load(Ordering::Relaxed);
    assert!(
        churned >= CHURNERS * 10,
        "{runtime}: only {churned} connections were abandoned while the streams ran"
    );
    println!("{runtime}: {churned} connections abandoned while {SURVIVORS} streams ran exact");
    server.assert_running();
    let after = connect(addr);
    let got = echo_once(&after, b"still there?\n").expect("echo after the churn");
    assert_same_bytes(&format!("{runtime}: echo after the churn"), &got, b"still there?\n");
    drop(after);
    let now = wait_for_fds(&server, baseline);
    assert!(
        now <= baseline,
        "{runtime}: {now} fds open after {churned} closes, baseline {baseline}"
    );
}

/// Streams [`STREAM`] random bytes (seeded by `seed`) from a writer thread and checks every byte
/// of the echo here.
fn stream_exactly(addr: SocketAddr, seed: u64) -> Result<(), String> {
    let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    let data = random_bytes(STREAM, 7000 + seed);
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut client = &client;
            data.chunks(CHUNK).try_for_each(|chunk| client.write_all(chunk))
        });
        let mut got = vec![0; STREAM];
        let read = (&client).read_exact(&mut got);
        if read.is_err() {
            let _ = client.shutdown(Shutdown::Both); // unblocks the writer
        }
        let wrote = writer.join().expect("writer");
        read.map_err(|e| format!("reading the echo: {e}"))?;
        wrote.map_err(|e| format!("writing: {e}"))?;
        match got.iter().zip(&data).position(|(g, d)| g != d) {
            None => Ok(()),
            Some(at) => Err(format!("byte {at} of {STREAM} differs")),
        }
    })
}

/// Opens up to [`CHURNS_EACH`] connections one after another, while `streaming`; each writes
/// what its socket takes without waiting and is then reset (linger 0), closed, or half-closed
/// first, in turn, some after reading a little of the echo.
fn churn(
    addr: SocketAddr,
    id: usize,
    streaming: &AtomicBool,
    churned: &AtomicUsize,
) -> Result<(), String> {
    let payload = random_bytes(256 << 10, 9000 + id as u64);
    for i in 0..CHURNS_EACH {
        if !streaming.load(Ordering::Relaxed) {
            break;
        }
        let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
        client.set_nonblocking(true).map_err(|e| format!("nonblocking: {e}"))?;
        let sent = write_what_fits(&client, &payload[..(16 << 10) * (1 + i % 16)])?;
        if i % 3 == 1 && sent > 0 {
            // Take a little of the echo, so that the server's sends have moved.
            client.set_nonblocking(false).map_err(|e| format!("blocking: {e}"))?;
            let mut some = [0; 512];
            (&client).read(&mut some).map_err(|e| format!("read: {e}"))?;
        }
        match i % 4 {
            0 | 1 => set_linger_zero(&client), // reset on drop
            2 => {
                let _ = client.shutdown(Shutdown::Write);
            }
            _ => {} // a plain close, with unread echo: the kernel resets
        }
        drop(client);
        churned.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Writes as much of `bytes` as the non-blocking socket takes now; returns how much.
fn write_what_fits(client: &TcpStream, bytes: &[u8]) -> Result<usize, String> {
    let mut sent = 0;
    while sent < bytes.len() {
        match (&*client).write(&bytes[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    Ok(sent)
}
