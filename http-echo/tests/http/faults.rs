//! Hostile and broken clients: one that sends its headers a byte a second is closed at the
//! header timeout while others are served as usual; one that resets mid-body, and a malformed
//! request (which gets hyper's 400), leave the server serving.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{assert_serves, connect, exchange, set_linger_zero, Server, RUNTIMES};

#[test]
fn a_client_sending_its_headers_a_byte_a_second_is_closed_at_the_header_timeout() {
    let timeout = Duration::from_secs(2);
    for runtime in RUNTIMES {
        let mut server = Server::start(runtime, &["--header-timeout", "2"]);
        let addr = server.addr();
        let start = Instant::now();
        let slow = connect(addr);
        // The slow client: a byte a second (the pace is the behaviour under test, not a
        // synchronisation), until the server closes the connection on it.
        let mut writer = slow.try_clone().unwrap();
        let dribble = thread::spawn(move || {
            let mut sent = 0;
            for byte in b"GET / HTTP/1.1\r\nHost: slow\r\n\r\n" {
                if writer.write_all(&[*byte]).is_err() {
                    break;
                }
                sent += 1;
                thread::sleep(Duration::from_secs(1));
            }
            sent
        });
        // Meanwhile others are served as usual, each promptly.
        let closed = Arc::new(AtomicBool::new(false));
        let others = thread::spawn({
            let closed = closed.clone();
            move || {
                let mut served = 0;
                while !closed.load(Ordering::SeqCst) {
                    let asked = Instant::now();
                    assert_serves(addr);
                    let took = asked.elapsed();
                    assert!(took < Duration::from_secs(1), "a normal request took {took:?}");
                    served += 1;
                }
                served
            }
        });
        // The server closes without a reply (a reset, if our bytes were unread, is a close too).
        let mut reply = Vec::new();
        let _ = (&slow).read_to_end(&mut reply);
        let waited = start.elapsed();
        closed.store(true, Ordering::SeqCst);
        let served = others.join().expect("the other clients' thread");
        let sent = dribble.join().unwrap();
        assert!(
            reply.is_empty(),
            "{runtime}: the slow client got {:?}",
            String::from_utf8_lossy(&reply)
        );
        assert!(waited >= timeout, "{runtime}: closed after {waited:?}, before the timeout");
        assert!(
            waited < timeout + Duration::from_secs(3),
            "{runtime}: closed only after {waited:?}"
        );
        assert!(sent < 10, "{runtime}: the slow client sent {sent} bytes before it was closed");
        assert!(served > 0, "{runtime}: nobody else was served meanwhile");
        server.assert_running();
    }
}

#[test]
fn a_client_that_resets_mid_body_leaves_the_server_serving() {
    for runtime in RUNTIMES {
        let mut server = Server::start(runtime, &[]);
        for _ in 0..20 {
            let mut client = connect(server.addr());
            client
                .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n")
                .unwrap();
            client.write_all(&[7; 64 * 1024]).unwrap();
            // The echo has begun: the reply's head is on its way back.
            let mut head = [0; 15];
            client.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200 OK", "{runtime}");
            set_linger_zero(&client);
            drop(client); // a RST, with most of the body never sent
        }
        assert_serves(server.addr());
        server.assert_running();
    }
}

#[test]
fn a_malformed_request_gets_hyper_s_400_and_the_server_keeps_serving() {
    for runtime in RUNTIMES {
        let mut server = Server::start(runtime, &[]);
        for garbage in
            [&b"GARBAGE\r\n\r\n"[..], b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"\x00\xff\r\n\r\n"]
        {
            let reply = exchange(server.addr(), garbage);
            assert!(
                reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{runtime}: {garbage:?} got {reply:?}"
            );
        }
        assert_serves(server.addr());
        server.assert_running();
    }
}
