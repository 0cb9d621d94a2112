//! `TcpListener` and `TcpStream`, one property per test: connecting, the end of a stream,
//! readiness, errors, and the `futures` I/O traits.

use std::io::{ErrorKind, IoSlice};
use std::net::Shutdown;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures::channel::oneshot;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use mini::net::{TcpListener, TcpStream};
use mini::time::timeout;

use crate::util::{self, run};

/// How long a network step may take before the test calls it a hang.
const STEP: Duration = Duration::from_secs(5);

#[test]
fn accept_connect_and_echo_round_trip() {
    run(|| async {
        let (listener, addr) = util::listener();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(server.local_addr().unwrap(), addr);

        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());

        client.write_all(b"hello, mini").await.unwrap();
        client.flush().await.unwrap();
        let mut buf = [0; 11];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello, mini");
        server.write_all(&buf).await.unwrap();
        let mut reply = [0; 11];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"hello, mini");
    });
}

#[test]
fn a_listener_taken_from_std_accepts() {
    run(|| async {
        // Left blocking on purpose: from_std must switch it to non-blocking itself, or the
        // accept below would block the runtime's only thread and the connect never happen.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listener = TcpListener::from_std(std_listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = mini::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            util::read_to_end(&mut stream, 16).await.unwrap()
        });
        mini::yield_now().await; // the accept now waits
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"from std").await.unwrap();
        drop(client);
        assert_eq!(timeout(STEP, server).await.unwrap().unwrap(), b"from std");
    });
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    run(|| async {
        // A port that was just ours and is now closed.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let result = timeout(STEP, TcpStream::connect(addr)).await.expect("connect hung");
        let err = result.expect_err("connected to a closed port");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn connect_tries_each_address_until_one_accepts() {
    run(|| async {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let (listener, open) = util::listener();
        let addrs = [closed, open];
        let client = timeout(STEP, TcpStream::connect(&addrs[..])).await.unwrap().unwrap();
        assert_eq!(client.peer_addr().unwrap(), open);
        let (_server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // By name, through the system resolver.
        let by_name = TcpStream::connect(("localhost", open.port())).await;
        assert_eq!(by_name.unwrap().peer_addr().unwrap().port(), open.port());
    });
}

#[test]
fn a_writer_blocked_by_a_full_peer_resumes_when_the_peer_reads() {
    run(|| async {
        let (mut client, server) = util::pair().await.unwrap();
        let chunk = vec![7u8; 64 * 1024];
        // Write without reading on the other side until a write has to wait: the socket
        // buffers are full. (Bounded, in case a write never waits.)
        let mut sent = 0usize;
        let mut reader = None;
        while sent < 1 << 30 {
            let mut write = pin!(client.write(&chunk));
            if let Poll::Ready(n) = futures::poll!(write.as_mut()) {
                sent += n.unwrap();
                continue;
            }
            // `Pending` may also mean "yield now, you had your share": after a turn it is
            // ready again. Only a write still waiting after that waits for room.
            mini::yield_now().await;
            if let Poll::Ready(n) = futures::poll!(write.as_mut()) {
                sent += n.unwrap();
                continue;
            }
            // Drain from another task; the waiting write must be woken as room appears.
            let mut server = server;
            reader =
                Some(mini::spawn(async move { util::read_to_end(&mut server, 64 * 1024).await }));
            sent += timeout(STEP, write).await.expect("the blocked write was never woken").unwrap();
            break;
        }
        let reader = reader.expect("1 GiB was written without ever waiting");
        drop(client);
        let received = timeout(STEP, reader).await.unwrap().unwrap().unwrap();
        assert_eq!(received.len(), sent);
        assert!(received.iter().all(|&b| b == 7));
    });
}

#[test]
fn read_returns_zero_at_the_end_of_the_stream() {
    run(|| async {
        // The peer shuts down before the reader looks: data, then the end, then the end again.
        let (mut client, mut server) = util::pair().await.unwrap();
        client.write_all(b"last words").await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut byte = [0];
        for expected in b"last words" {
            server.read_exact(&mut byte).await.unwrap();
            assert_eq!(byte[0], *expected);
        }
        assert_eq!(server.read(&mut byte).await.unwrap(), 0);
        assert_eq!(server.read(&mut byte).await.unwrap(), 0, "the end is reported every time");
        assert_eq!(
            server.read_exact(&mut byte).await.unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );
        // The other direction still works after a write shutdown.
        server.write_all(b"reply").await.unwrap();
        let mut reply = [0; 5];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"reply");

        // The reader already waits (its last read emptied the buffer) when the peer shuts down.
        let (mut client, mut server) = util::pair().await.unwrap();
        let (first_tx, first_rx) = oneshot::channel();
        let reader = mini::spawn(async move {
            let mut buf = [0; 64];
            let n = server.read(&mut buf).await.unwrap();
            first_tx.send(buf[..n].to_vec()).unwrap();
            server.read(&mut buf).await.unwrap()
        });
        client.write_all(b"data").await.unwrap();
        assert_eq!(timeout(STEP, first_rx).await.unwrap().unwrap(), b"data");
        // The reader went straight on to its second read, which now waits.
        client.shutdown(Shutdown::Write).unwrap();
        let end = timeout(STEP, reader).await.expect("the end of stream was missed").unwrap();
        assert_eq!(end, 0);
    });
}

#[test]
fn readable_waits_for_data_once_the_buffer_is_empty() {
    run(|| async {
        let (mut client, mut server) = util::pair().await.unwrap();
        let mut buf = [0; 16];
        // A read with nothing to read waits (and learns the socket is empty); give it up.
        assert!(timeout(Duration::from_millis(10), server.read(&mut buf)).await.is_err());
        let mut readable = Box::pin(server.readable());
        assert!(futures::poll!(readable.as_mut()).is_pending(), "readable with nothing to read");
        client.write_all(b"wake").await.unwrap();
        timeout(STEP, readable).await.expect("readable missed the data").unwrap();
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"wake");
        timeout(STEP, client.writable()).await.unwrap().unwrap();
    });
}

#[test]
fn futures_io_traits_work_on_streams_and_halves() {
    run(|| async {
        let (listener, addr) = util::listener();
        // A server made of futures-io combinators on the split halves.
        let server = mini::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let copied = futures::io::copy(&mut reader, &mut writer).await.unwrap();
            writer.close().await.unwrap();
            copied
        });
        let message = util::pattern(300_000, 1);

        // A client through the traits too: one task writes all and closes (so the echo can
        // flow back meanwhile), the main future reads to the end.
        let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let sent = message.clone();
        let sender = mini::spawn(async move {
            AsyncWriteExt::write_all(&mut writer, &sent).await.unwrap();
            AsyncWriteExt::flush(&mut writer).await.unwrap();
            AsyncWriteExt::close(&mut writer).await.unwrap();
            writer
        });
        let mut echoed = Vec::new();
        let n = timeout(STEP, reader.read_to_end(&mut echoed)).await.expect("echo hung").unwrap();
        assert_eq!(n, message.len());
        assert!(echoed == message, "the echo differs from what was sent");
        assert_eq!(timeout(STEP, server).await.unwrap().unwrap(), message.len() as u64);

        // At the end of the stream, reading through the trait keeps saying so.
        let mut rest = [0; 8];
        assert_eq!(AsyncReadExt::read(&mut reader, &mut rest).await.unwrap(), 0);
        // Writing after our own close is an error, not a panic.
        let mut writer = sender.await.unwrap();
        assert!(AsyncWriteExt::write_all(&mut writer, b"late").await.is_err());

        // The whole stream (not split) through the traits as well.
        let (mut client, mut server) = util::pair().await.unwrap();
        AsyncWriteExt::write_all(&mut client, b"whole").await.unwrap();
        AsyncWriteExt::close(&mut client).await.unwrap();
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut server, &mut got).await.unwrap();
        assert_eq!(got, b"whole");
    });
}

#[test]
fn writing_to_a_reset_connection_is_an_error() {
    run(|| async {
        let (mut client, mut server) = util::pair().await.unwrap();
        // Closing a socket that holds unread data makes the kernel reset the connection.
        // Reading one byte proves the rest has arrived, and leaves it unread.
        client.write_all(b"mostly never read").await.unwrap();
        let mut first = [0];
        timeout(STEP, server.read_exact(&mut first)).await.unwrap().unwrap();
        drop(server);

        let mut buf = [0; 16];
        let read = timeout(STEP, client.read(&mut buf)).await.expect("the reset was missed");
        assert_eq!(read.unwrap_err().kind(), ErrorKind::ConnectionReset);
        let err = client.write_all(b"into the void").await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "unexpected error {err}"
        );
        // Vectored writes take another path (writev, which has no MSG_NOSIGNAL); they must
        // fail as cleanly.
        let bufs = [IoSlice::new(b"once "), IoSlice::new(b"again")];
        let err = AsyncWriteExt::write_vectored(&mut client, &bufs).await.unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset));
    });
}

/// Tasks accepting on one shared listener: a later waiter must not make an earlier one's
/// wake-up disappear, and while nobody connects they must not keep waking each other (a busy
/// loop). Every connection is accepted.
fn accepters_share_a_listener(tasks: usize) {
    run(move || async move {
        let (listener, addr) = util::listener();
        let listener = std::rc::Rc::new(listener);
        let accepters: Vec<_> = (0..tasks)
            .map(|_| {
                let listener = listener.clone();
                mini::spawn(async move { listener.accept().await.map(|_| ()) })
            })
            .collect();
        mini::yield_now().await; // all wait in accept
        let cpu_before = util::thread_cpu();
        mini::time::sleep(Duration::from_millis(300)).await;
        let spent = util::thread_cpu() - cpu_before;
        assert!(spent < Duration::from_millis(100), "idle waiters used {spent:?} of CPU in 300 ms");
        let mut clients = Vec::new();
        for _ in 0..tasks {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        for accepter in accepters {
            timeout(Duration::from_secs(2), accepter)
                .await
                .expect("an accepting task was never woken")
                .unwrap()
                .unwrap();
        }
    });
}

#[test]
fn two_tasks_accepting_on_one_listener_both_get_a_connection() {
    accepters_share_a_listener(2);
}

/// Many more than the one waker a socket keeps inline (an earlier bound on the others made 34
/// waiters evict and wake each other for ever).
#[test]
fn forty_tasks_accepting_on_one_listener_all_get_a_connection() {
    accepters_share_a_listener(40);
}
