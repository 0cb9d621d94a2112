//! The `mini` server on each poller backend, at the limit that sets them apart: `select` cannot
//! hold a descriptor at or above `FD_SETSIZE` (1024), epoll and poll (and uring) can.
//!
//! Compiled only when the binary carries all three backends (`--all-features`, as CI builds it
//! for its per-backend runs).

use std::net::TcpStream;

use crate::util::{connect, echo_once, Server};

/// More connections than an `fd_set` can hold, so the server's descriptors pass 1024.
const CONNECTIONS: usize = 1100;

/// Raises this process's descriptor limit (inherited by the server) to what the tests need.
fn raise_descriptor_limit() {
    let needed = (2 * CONNECTIONS + 100) as libc::rlim_t;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live rlimit the call writes into.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    assert!(limit.rlim_max >= needed, "these tests need a hard descriptor limit of {needed}");
    if limit.rlim_cur < needed {
        limit.rlim_cur = needed;
        // SAFETY: `limit` is a live, initialised rlimit the call only reads.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    }
}

/// Opens `CONNECTIONS` connections one by one, each echoing one message; returns the ones the
/// server served and how many it closed instead.
fn open_many(server: &Server) -> (Vec<TcpStream>, usize) {
    let mut served = Vec::new();
    let mut refused = 0;
    for i in 0..CONNECTIONS {
        let stream = connect(server.addr());
        let message = format!("hello {i}\n");
        match echo_once(&stream, message.as_bytes()) {
            Ok(reply) if reply == message.as_bytes() => served.push(stream),
            Ok(reply) if reply.is_empty() => refused += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => refused += 1,
            other => panic!("connection {i}: unexpected answer {other:?}"),
        }
    }
    (served, refused)
}

/// Every served connection still echoes, after all the others were opened (and some refused).
fn all_still_echo(served: &[TcpStream]) {
    for (i, stream) in served.iter().enumerate() {
        let message = format!("again {i}\n");
        let reply = echo_once(stream, message.as_bytes()).expect("a served connection answers");
        assert_eq!(reply, message.as_bytes(), "connection {i} echoed wrongly");
    }
}

#[test]
fn select_refuses_what_it_cannot_hold_and_keeps_serving() {
    raise_descriptor_limit();
    let mut server = Server::start("mini", &["--backend", "select"]);
    let (served, refused) = open_many(&server);
    assert!(refused > 0, "all {CONNECTIONS} served: the server never passed descriptor 1024?");
    assert!(
        served.len() > 1000 && served.len() < 1024,
        "select should serve nearly every descriptor below 1024, served {}",
        served.len()
    );
    server.assert_running();
    all_still_echo(&served);
    // And a new client is still refused cleanly, not hung or crashed on.
    let late = connect(server.addr());
    assert!(echo_once(&late, b"late\n").map_or(true, |r| r.is_empty()));
    server.assert_running();
}

#[test]
fn epoll_and_poll_serve_past_descriptor_1024() {
    raise_descriptor_limit();
    for backend in [
        "epoll",
        "poll",
        #[cfg(feature = "uring")]
        "uring",
    ] {
        let mut server = Server::start("mini", &["--backend", backend]);
        let (served, refused) = open_many(&server);
        assert_eq!(refused, 0, "{backend} refused connections");
        assert_eq!(served.len(), CONNECTIONS);
        all_still_echo(&served);
        server.assert_running();
    }
}
