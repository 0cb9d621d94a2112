//! `POST /echo` streams: the body comes back while it is still being sent, so a body of any
//! size costs the server a few buffers, not its length.

use std::io::{Read, Write};

use crate::util::{connect, random_bytes, Server, RUNTIMES};

#[test]
fn the_echo_comes_back_before_the_body_has_all_been_sent() {
    for runtime in RUNTIMES {
        let server = Server::start(runtime, &[]);
        let mut client = connect(server.addr());
        // 64 MiB announced, 256 KiB sent: a server that buffered the body whole would answer
        // nothing, and the read below would time out.
        client
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 67108864\r\n\r\n")
            .unwrap();
        let sent = random_bytes(256 * 1024, 3);
        client.write_all(&sent).unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0; 64 * 1024];
        let body_start = loop {
            let n = client.read(&mut chunk).expect("the echo did not start");
            assert!(n > 0, "{runtime}: the server closed the connection");
            reply.extend_from_slice(&chunk[..n]);
            if let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
                if reply.len() >= end + 4 + 64 * 1024 {
                    break end + 4;
                }
            }
        };
        assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"), "{runtime}");
        let echoed = &reply[body_start..];
        assert!(
            sent.starts_with(echoed),
            "{runtime}: the first {} bytes echoed differ",
            echoed.len()
        );
    }
}
