//! Sockets under load: a large burst through a small buffer (the edge-triggered drain), both
//! directions at once on split halves, many connections at once, and descriptor numbers reused
//! while other tasks wait.

use std::io::Write;
use std::net::Shutdown;
use std::os::fd::AsRawFd;

use mini::net::{OwnedReadHalf, TcpStream};

use crate::util::{self, pattern, run};

/// Where two byte strings first differ, for a failure message worth reading.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// A std thread writes 4 MiB in one call and closes; the runtime reads it all through a
/// `chunk`-byte buffer. Edge-triggered readiness is reported once per arrival, so a reader that
/// forgot readiness too early, or missed the end of the stream, would hang or lose bytes.
fn burst_through_a_small_buffer(chunk: usize) {
    const LEN: usize = 4 << 20;
    run(move || async move {
        let (listener, addr) = util::listener();
        let data = pattern(LEN, chunk as u64);
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(&sent).unwrap();
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let received = util::read_to_end(&mut stream, chunk).await.unwrap();
        writer.join().unwrap();
        assert_eq!(received.len(), LEN, "bytes received");
        assert_eq!(first_difference(&received, &data), None, "the bytes differ");
    });
}

#[test]
fn a_large_burst_through_a_7_byte_buffer_loses_nothing() {
    burst_through_a_small_buffer(7);
}

#[test]
fn a_large_burst_through_a_100_byte_buffer_loses_nothing() {
    burst_through_a_small_buffer(100);
}

async fn read_half_to_end(reader: &mut OwnedReadHalf) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match reader.read(&mut buf).await.unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn split_halves_move_a_mebibyte_each_way_at_once() {
    const LEN: usize = 1 << 20;
    run(|| async {
        let (client, server) = util::pair().await.unwrap();
        // Each side writes in one task and reads in another, both at the same time: neither
        // side reads only after writing, so the halves must really work independently.
        let start = |stream: TcpStream, out: Vec<u8>| {
            let (mut reader, mut writer) = stream.into_split();
            let writing = mini::spawn(async move {
                writer.write_all(&out).await.unwrap();
                writer.shutdown().unwrap();
            });
            let reading = mini::spawn(async move { read_half_to_end(&mut reader).await });
            (writing, reading)
        };
        let (to_server, from_client) = (pattern(LEN, 10), pattern(LEN, 11));
        let (client_writes, client_reads) = start(client, to_server.clone());
        let (server_writes, server_reads) = start(server, from_client.clone());
        client_writes.await.unwrap();
        server_writes.await.unwrap();
        let at_server = server_reads.await.unwrap();
        let at_client = client_reads.await.unwrap();
        assert_eq!(first_difference(&at_server, &to_server), None, "client to server");
        assert_eq!(first_difference(&at_client, &from_client), None, "server to client");
    });
}

#[test]
fn two_hundred_connections_echo_at_once() {
    const CONNECTIONS: usize = 200;
    run(|| async {
        let (listener, addr) = util::listener();
        util::spawn_echo_server(listener);
        // Connect one by one, so the accept queue (std's backlog is 128) never overflows (an
        // overflow costs a one-second SYN retry, not a failure); then talk on all at once.
        let mut streams = Vec::new();
        for _ in 0..CONNECTIONS {
            streams.push(TcpStream::connect(addr).await.unwrap());
        }
        let clients: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                mini::spawn(async move {
                    let message = pattern(1000 + i * 37, i as u64);
                    // Ping-pong in four chunks, so that the conversations interleave.
                    for chunk in message.chunks(message.len().div_ceil(4)) {
                        stream.write_all(chunk).await.unwrap();
                        let mut echo = vec![0; chunk.len()];
                        stream.read_exact(&mut echo).await.unwrap();
                        assert!(echo == chunk, "connection {i}: the echo differs");
                    }
                    stream.shutdown(Shutdown::Write).unwrap();
                    let mut rest = [0; 1];
                    assert_eq!(stream.read(&mut rest).await.unwrap(), 0, "connection {i}");
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
    });
}

#[test]
fn reused_descriptors_never_confuse_waiting_tasks() {
    const WAITERS: usize = 15;
    const CYCLES: usize = 300;
    run(|| async {
        // Tasks that each wait to read their own tag on a connection of their own.
        let (listener, addr) = util::listener();
        let mut pokes = Vec::new();
        let mut waiters = Vec::new();
        for _ in 0..WAITERS {
            pokes.push(TcpStream::connect(addr).await.unwrap());
            let (mut stream, _) = listener.accept().await.unwrap();
            waiters.push(mini::spawn(async move {
                let mut tag = [0; 8];
                stream.read_exact(&mut tag).await.unwrap();
                stream.write_all(&tag).await.unwrap();
                let mut rest = [0; 1];
                (u64::from_le_bytes(tag), stream.read(&mut rest).await.unwrap())
            }));
        }
        mini::yield_now().await;

        // Meanwhile, connections opened and closed again and again. Made with std and handed
        // over with from_std, so that their descriptor numbers are known; the kernel gives a
        // new socket the lowest free number, so each cycle tends to reuse the last one's.
        let churn = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let churn_addr = churn.local_addr().unwrap();
        let mut freed = Vec::new();
        let mut reused = 0;
        for cycle in 0..CYCLES {
            // Both are immediate on loopback: the kernel completes the handshake itself.
            let client = std::net::TcpStream::connect(churn_addr).unwrap();
            let (server, _) = churn.accept().unwrap();
            let fds = [client.as_raw_fd(), server.as_raw_fd()];
            if fds.iter().any(|fd| freed.contains(fd)) {
                reused += 1;
            }
            let mut client = TcpStream::from_std(client).unwrap();
            let mut server = TcpStream::from_std(server).unwrap();
            let message = (cycle as u64).to_le_bytes();
            client.write_all(&message).await.unwrap();
            let mut got = [0; 8];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, message, "cycle {cycle}: a new socket read stale data");
            // Leave unread data behind, so the closing sockets still have events coming.
            server.write_all(b"unread").await.unwrap();
            client.write_all(b"unread").await.unwrap();
            if cycle % 2 == 0 {
                drop(client);
                drop(server);
            } else {
                drop(server);
                drop(client);
            }
            freed = fds.to_vec();

            // Now and then, poke one waiter and check it, and only it, answers correctly.
            if cycle % (CYCLES / WAITERS) == 0 {
                let w = cycle / (CYCLES / WAITERS);
                let tag = 1000 + w as u64;
                pokes[w].write_all(&tag.to_le_bytes()).await.unwrap();
                let mut ack = [0; 8];
                pokes[w].read_exact(&mut ack).await.unwrap();
                assert_eq!(u64::from_le_bytes(ack), tag, "waiter {w} answered wrongly");
            }
            for (w, waiter) in waiters.iter().enumerate() {
                assert!(!waiter.is_finished(), "cycle {cycle}: waiter {w} finished early");
            }
        }
        assert!(reused > 0, "no descriptor number was reused: the test exercised nothing");

        drop(pokes);
        for (w, waiter) in waiters.into_iter().enumerate() {
            assert_eq!(waiter.await.unwrap(), (1000 + w as u64, 0), "waiter {w}");
        }
    });
}
