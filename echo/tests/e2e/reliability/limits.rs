//! Fault 9: the limits a server is given on its command line. `--max-connections` closes a
//! client past the cap at once; `--idle-timeout` closes a connection that moved no byte for that
//! long, and only such a one. `--help` documents both flags and `--send-buffer`.

use std::io::Read;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    closed, fail, join, logged, on_every_server, served_again, try_client, Fate, CLOSE_WITHIN,
    SERVERS,
};
use crate::util::{echo_once, run, try_connect, Server, IO_TIMEOUT};

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
        let served_after = served_again(&server, |fate| format!("after one left: {fate}"))?;
        Ok(format!("past the cap closed in {closed_in:.1?}; served again {served_after:.1?} after one left"))
    });
}

/// `--help` documents the three flags of the reliability tests, and nonsense values are refused
/// with an error naming the flag.
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
