//! The binary's command line: help and version, rejected arguments, start-up errors, signals,
//! and the `echo client` subcommand.
//!
//! Every invocation runs under a deadline ([`run`], [`Server::wait_exit`]), because the typical
//! failure here is not a wrong answer but a process that never exits.

use std::net::TcpListener;
use std::time::Duration;

use crate::util::{connect, describe, echo_once, run, Server, RUNTIMES};

/// How quickly a server must exit after SIGTERM or SIGINT.
const PROMPTLY: Duration = Duration::from_secs(5);

#[test]
fn help_exits_zero_and_documents_each_runtime_and_flag() {
    let out = run(&["--help"], b"");
    assert!(out.status.success(), "--help: {}", out.describe());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in RUNTIMES.iter().chain(&["--runtime", "--addr", "--upper", "client"]) {
        assert!(help.contains(word), "--help does not mention {word:?}:\n{help}");
    }
}

#[test]
fn version_exits_zero_and_prints_the_version() {
    let out = run(&["--version"], b"");
    assert!(out.status.success(), "--version: {}", out.describe());
    let version = env!("CARGO_PKG_VERSION");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(version), "--version printed {printed:?}, expected {version}");
}

#[test]
fn unknown_runtime_is_rejected() {
    // --addr port 0: should the runtime be accepted by mistake, the server binds no fixed port.
    let out = run(&["--runtime", "no-such-runtime", "--addr", "127.0.0.1:0"], b"");
    assert!(!out.status.success(), "an unknown runtime was accepted: {}", out.describe());
    assert!(out.stderr.contains("no-such-runtime"), "stderr does not name it: {}", out.describe());
}

/// A build without the `tokio` feature does not offer the tokio peers: clap rejects their names
/// like any unknown runtime, listing the ones the build has.
#[cfg(not(feature = "tokio"))]
#[test]
fn tokio_runtimes_need_the_tokio_feature() {
    for runtime in ["tokio-current", "tokio-multi"] {
        let out = run(&["--runtime", runtime, "--addr", "127.0.0.1:0"], b"");
        assert!(!out.status.success(), "{runtime} was accepted: {}", out.describe());
        assert!(out.stderr.contains(runtime), "stderr does not name it: {}", out.describe());
    }
    let help = run(&["--help"], b"");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("tokio"), "--help mentions tokio in a build without it:\n{help}");
}

#[test]
fn unknown_flag_is_rejected() {
    let out = run(&["--no-such-flag", "--addr", "127.0.0.1:0"], b"");
    assert!(!out.status.success(), "an unknown flag was accepted: {}", out.describe());
    assert!(out.stderr.contains("--no-such-flag"), "stderr does not name it: {}", out.describe());
}

#[test]
fn unparsable_address_is_an_error() {
    let out = run(&["--addr", "not-an-address"], b"");
    assert!(!out.status.success(), "a bad address was accepted: {}", out.describe());
    assert!(out.stderr.contains("error"), "no error on stderr: {}", out.describe());
}

/// Generates `mod CASE { fn mini(), fn threaded(), ... }`: one `#[test]` per server calling
/// `CASE(runtime)`, so that each server's failure is reported on its own. The tokio peers only
/// with the `tokio` feature.
macro_rules! per_runtime {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn mini() {
                super::$case("mini");
            }
            #[test]
            fn threaded() {
                super::$case("threaded");
            }
            #[test]
            fn spin() {
                super::$case("spin");
            }
            #[test]
            fn select() {
                super::$case("select");
            }
            #[test]
            fn epoll() {
                super::$case("epoll");
            }
            #[test]
            fn sigio() {
                super::$case("sigio");
            }
            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_current() {
                super::$case("tokio-current");
            }
            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_multi() {
                super::$case("tokio-multi");
            }
        }
    )*};
}

per_runtime!(address_in_use_is_an_error, sigterm_exits_zero_promptly, sigint_exits_zero_promptly);

/// The server reports an address in use, naming it, and exits non-zero instead of hanging.
fn address_in_use_is_an_error(runtime: &str) {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a listener on port 0");
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["--runtime", runtime, "--addr", &addr], b"");
    assert!(!out.status.success(), "{runtime}: bound {addr} twice: {}", out.describe());
    assert!(
        out.stderr.contains(&addr),
        "{runtime}: stderr does not name {addr}: {}",
        out.describe()
    );
}

fn sigterm_exits_zero_promptly(runtime: &str) {
    stops_on_signal(runtime, libc::SIGTERM, "SIGTERM");
}

fn sigint_exits_zero_promptly(runtime: &str) {
    stops_on_signal(runtime, libc::SIGINT, "SIGINT");
}

/// The server, with a client connected and idle, gets `signal` and must exit 0 within
/// [`PROMPTLY`].
fn stops_on_signal(runtime: &str, signal: libc::c_int, name: &str) {
    let mut server = Server::start(runtime, &[]);
    let client = connect(server.addr());
    let got = echo_once(&client, b"ping\n").expect("echo before the signal");
    assert_eq!(got, b"ping\n", "{runtime}: echo before the signal");
    server.signal(signal);
    let status = server.wait_exit(PROMPTLY);
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "{runtime}: after {name}: {} within {PROMPTLY:?}, expected exit status 0",
        describe(status)
    );
}

const LINES: &str =
    "hello\nMixed Case Line 42\n\n  spaces and\ttabs  \nnon-ASCII: été 東京\nlast\n";

#[test]
fn client_prints_each_line_back() {
    let server = Server::start("threaded", &[]);
    let out = run(&["client", "--addr", &server.addr().to_string()], LINES.as_bytes());
    assert!(out.status.success(), "echo client: {}", out.describe());
    assert_eq!(String::from_utf8_lossy(&out.stdout), LINES, "{}", out.describe());
}

#[test]
fn client_against_upper_server_prints_lines_upper_cased() {
    let server = Server::start("threaded", &["--upper"]);
    let out = run(&["client", "--addr", &server.addr().to_string()], LINES.as_bytes());
    assert!(out.status.success(), "echo client: {}", out.describe());
    let want = LINES.to_ascii_uppercase();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{}", out.describe());
}

#[test]
fn client_without_server_is_an_error() {
    // A port that was just free: bind port 0, note the address, close the listener.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let out = run(&["client", "--addr", &addr], b"hello\n");
    assert!(!out.status.success(), "client without a server succeeded: {}", out.describe());
    assert!(out.stderr.contains("error"), "no error on stderr: {}", out.describe());
}
