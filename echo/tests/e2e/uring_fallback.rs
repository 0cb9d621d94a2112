//! The `mini` server of a `uring` build where io_uring is refused (a seccomp filter, see
//! [`seccomp`](crate::seccomp)): left to choose, it warns once, naming the cause, and serves on
//! epoll; told to use uring (`--backend uring`, `MINI_BACKEND=uring`), it exits with status 1
//! and an `error:` line naming the cause.
//!
//! Compiled only in a build with the `uring` feature.

use std::io::Write;
use std::net::Shutdown;
use std::process::Command;
use std::thread;

use crate::seccomp::deny_io_uring;
use crate::util::{
    assert_same_bytes, connect, random_bytes, read_to_eof, wait_until, Server, IO_TIMEOUT,
};

/// The child must choose for itself: CI runs this suite with `MINI_BACKEND` set.
fn no_backend_env(command: &mut Command) {
    command.env_remove("MINI_BACKEND");
}

/// Sends `len` random bytes on one connection and checks that exactly those come back.
fn echoes_every_byte(server: &Server, len: usize) {
    let stream = connect(server.addr());
    let sent = random_bytes(len, 13);
    let mut writer = stream.try_clone().expect("clone the stream");
    let data = sent.clone();
    let writing = thread::spawn(move || {
        writer.write_all(&data).expect("send");
        writer.shutdown(Shutdown::Write).expect("shut down the sending side");
    });
    let got = read_to_eof(&stream, len).expect("read the echo");
    writing.join().expect("the writer thread");
    assert_same_bytes("echo under the filter", &got, &sent);
}

#[test]
fn without_io_uring_mini_warns_once_and_serves_on_epoll() {
    let mut server = Server::start_with("mini", &[], |command| {
        no_backend_env(command);
        deny_io_uring(command);
    });
    echoes_every_byte(&server, 1 << 20);
    server.assert_running();
    wait_until(IO_TIMEOUT, || server.log().contains("mini runtime on the"));
    let log = server.log();
    assert_eq!(log.matches("falling back to the epoll backend").count(), 1, "{log}");
    assert!(log.contains("EPERM") && log.contains("seccomp"), "the cause is not named: {log}");
    assert!(log.contains("mini runtime on the epoll backend"), "{log}");
}

#[test]
fn with_io_uring_the_same_build_runs_on_uring() {
    let server = Server::start_with("mini", &[], no_backend_env);
    echoes_every_byte(&server, 1 << 16);
    wait_until(IO_TIMEOUT, || server.log().contains("mini runtime on the"));
    let log = server.log();
    assert!(log.contains("mini runtime on the uring backend"), "{log}");
    assert!(!log.contains("falling back"), "{log}");
}

/// Starts the server with `args` and `configure` under the filter; it must exit with status 1
/// and an `error:` line that names the cause, without falling back.
fn refuses(args: &[&str], configure: impl FnOnce(&mut Command)) {
    let mut server = Server::start_with("mini", args, |command| {
        no_backend_env(command);
        configure(command);
        deny_io_uring(command);
    });
    let status = server.wait_exit(IO_TIMEOUT).expect("the server exits by itself");
    // Its stderr is read by a thread, which may not have caught up with the exit yet.
    wait_until(IO_TIMEOUT, || server.log().contains("error:"));
    let log = server.log();
    assert_eq!(status.code(), Some(1), "{log}");
    let error = log.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{log}"));
    assert!(error.contains("io_uring is unavailable") && error.contains("EPERM"), "{error}");
    assert!(!log.contains("falling back"), "{log}");
}

#[test]
fn asking_for_uring_where_it_is_refused_is_an_error() {
    refuses(&["--backend", "uring"], |_| {});
}

#[test]
fn mini_backend_uring_where_it_is_refused_is_an_error() {
    refuses(&[], |command| {
        command.env("MINI_BACKEND", "uring");
    });
}
