//! The command line: bad input gets a clear error and a non-zero exit; a busy port is named;
//! SIGINT and SIGTERM end the server with status 0.

use crate::util::{run, Server, HTTP_ECHO, IO_TIMEOUT};

/// Runs `http-echo ARGS...`, expecting it to fail with `code` and `message` on stderr.
fn fails(args: &[&str], code: i32, message: &str) {
    let done = run(HTTP_ECHO, args, b"");
    assert_eq!(done.status.code(), Some(code), "{args:?}: {}", done.stderr);
    assert!(done.stderr.contains(message), "{args:?}: stderr {:?} lacks {message:?}", done.stderr);
}

#[test]
fn bad_flags_and_values_are_refused_with_a_clear_message() {
    fails(&["--bogus"], 2, "unexpected argument '--bogus'");
    fails(&["--runtime", "nope"], 2, "invalid value 'nope' for '--runtime");
    fails(&["--addr", "localhost"], 2, "invalid value 'localhost' for '--addr");
    fails(&["--header-timeout", "0"], 2, "expected a positive number of seconds");
    fails(&["--header-timeout", "soon"], 2, "expected a positive number of seconds");
}

/// A build without the peer says which feature it lacks, rather than "invalid value".
#[cfg(not(feature = "tokio"))]
#[test]
fn the_tokio_runtime_names_the_feature_it_needs() {
    fails(&["--runtime", "tokio"], 1, "--runtime tokio needs a build with the `tokio` feature");
}

#[test]
fn a_port_in_use_is_named_in_the_error() {
    let server = Server::start("mini", &[]);
    let addr = server.addr().to_string();
    fails(
        &["--addr", &addr],
        1,
        &format!("error: cannot listen on {addr}: Address already in use"),
    );
}

#[test]
fn sigint_and_sigterm_exit_with_status_0() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut server = Server::start("mini", &[]);
        let _open = crate::util::connect(server.addr());
        server.signal(signal);
        let status = server.wait_exit(IO_TIMEOUT).expect("the server did not exit");
        assert!(status.success(), "signal {signal}: {status}");
    }
}
