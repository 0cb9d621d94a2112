//! `mini::uring`, the completion-based sockets: bytes arrive whole and in order whatever
//! happens to the futures that wait for them; on another backend they refuse clearly.

use std::io::{Read, Write};
use std::net::TcpStream as StdStream;
use std::thread;
use std::time::Duration;

use mini::time::timeout;
use mini::uring::{TcpListener, TcpStream};
use mini::{Backend, Runtime};

use crate::util;

/// Runs `make()` on a runtime on the uring backend, under the watchdog.
fn run_uring<F, Fut>(make: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future,
    Fut::Output: Send + 'static,
{
    util::watchdog(util::LIMIT, move || {
        let runtime = Runtime::builder().backend(Backend::Uring).build().expect("io_uring");
        runtime.block_on(make())
    })
}

/// Receives are dropped by timeouts thousands of times while a peer sends; every byte still
/// arrives, once, in order (the chunks wait in the stream, not in the dropped future).
#[test]
fn reads_dropped_by_timeouts_lose_nothing() {
    const LEN: usize = 4 << 20;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let data = util::pattern(LEN, 14);
    let sent = data.clone();
    let writer = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // Paced, so that the reader often finds nothing queued and its receive is dropped
        // while armed in the kernel (the pace is not synchronisation: any pace must pass).
        for (i, piece) in sent.chunks(1000).enumerate() {
            conn.write_all(piece).unwrap();
            if i % 2 == 0 {
                thread::sleep(Duration::from_micros(100));
            }
        }
    });
    let (received, dropped) = run_uring(move || async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let (mut received, mut dropped) = (Vec::with_capacity(LEN), 0u32);
        let mut round = 0u64;
        loop {
            round += 1;
            // Zero to 60 µs: many time out with the receive armed in the kernel.
            let limit = Duration::from_micros(round * 7 % 61);
            match timeout(limit, stream.recv()).await {
                Ok(Ok(Some(chunk))) => received.extend_from_slice(&chunk),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => panic!("recv failed: {e}"),
                Err(_) => dropped += 1,
            }
        }
        (received, dropped)
    });
    writer.join().unwrap();
    assert_eq!(received.len(), LEN);
    assert!(received == data, "bytes lost, doubled or reordered");
    assert!(dropped >= 1000, "only {dropped} receives were dropped: the test tests little");
}

/// An echo on the completion path: chunks sent back as they came, many connections at once,
/// with a peer that does not read until it has sent everything (flow control must hold the
/// server's receives, not lose or reorder bytes).
#[test]
fn chunks_echoed_back_arrive_whole_with_flow_control() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        run_uring(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (mut stream, _) = listener.accept().await.unwrap();
                tasks.push(mini::spawn(async move {
                    while let Some(chunk) = stream.recv().await.unwrap() {
                        let (res, _chunk) = stream.write_all(chunk).await;
                        res.unwrap();
                    }
                    stream.close().await;
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        })
    });
    let addr = addr_rx.recv().unwrap();
    let clients: Vec<_> = (0..8u64)
        .map(|seed| {
            thread::spawn(move || {
                let data = util::pattern(1 << 20, seed);
                let mut conn = StdStream::connect(addr).unwrap();
                let reader = conn.try_clone().unwrap();
                // Sends a little more than the socket buffers hold before reading anything.
                let echoed = thread::spawn(move || {
                    let mut reader = reader;
                    let mut back = Vec::new();
                    reader.read_to_end(&mut back).unwrap();
                    back
                });
                conn.write_all(&data).unwrap();
                conn.shutdown(std::net::Shutdown::Write).unwrap();
                assert!(echoed.join().unwrap() == data, "client {seed}: echo differs");
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    server.join().unwrap();
}

/// Sends of owned buffers larger than the socket buffer are resubmitted until all is sent, and
/// the buffer comes back.
#[test]
fn a_large_owned_send_arrives_whole_and_gives_its_buffer_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let data = util::pattern(8 << 20, 3);
    let expected = data.clone();
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    let back = run_uring(move || async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (res, back) = stream.write_all(data).await;
        res.unwrap();
        back
    });
    assert_eq!(back.len(), 8 << 20);
    assert!(reader.join().unwrap() == expected);
}

/// On a readiness backend the completion sockets say why they cannot work.
#[test]
fn on_another_backend_the_sockets_refuse_with_unsupported() {
    util::watchdog(util::LIMIT, || {
        let runtime = Runtime::builder().backend(Backend::Epoll).build().unwrap();
        runtime.block_on(async {
            let err = TcpListener::bind("127.0.0.1:0").unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
            assert!(err.to_string().contains("uring backend"), "{err}");
        });
    });
}
