//! Where io_uring is refused (a seccomp filter, see [`seccomp`](crate::seccomp)): the `mini`
//! server of a `uring` build, left to choose, warns once, naming the cause, and serves on epoll;
//! told to use uring (`--backend uring`, `MINI_BACKEND=uring`), it exits with status 1 and an
//! `error:` line naming the cause before it announces an address; `echo --runtime uring` does
//! the same and suggests `--runtime epoll`.
//!
//! The `mini` cases need a build with the `uring` feature; the raw server's runs in every build.

use std::process::Command;

use crate::seccomp::deny_io_uring;
use crate::util::run_with;

/// The child must choose for itself: CI runs this suite with `MINI_BACKEND` set.
fn no_backend_env(command: &mut Command) {
    command.env_remove("MINI_BACKEND");
}

/// Runs `echo ARGS` under the filter (after `configure`): it must exit with status 1 before
/// announcing an address, with an `error:` line that names the cause; returns that line.
fn refused(args: &[&str], configure: impl FnOnce(&mut Command)) -> String {
    let mut args = args.to_vec();
    args.extend(["--addr", "127.0.0.1:0"]);
    let done = run_with(&args, b"", |command| {
        no_backend_env(command);
        configure(command);
        deny_io_uring(command);
    });
    assert_eq!(done.status.code(), Some(1), "{}", done.describe());
    assert!(done.stdout.is_empty(), "announced an address: {}", done.describe());
    assert!(!done.stderr.contains("falling back"), "{}", done.describe());
    let error = done.stderr.lines().find(|l| l.starts_with("error:"));
    error.unwrap_or_else(|| panic!("no error line: {}", done.describe())).to_owned()
}

#[test]
fn the_raw_uring_server_where_io_uring_is_refused_says_why_and_suggests_epoll() {
    let error = refused(&["--runtime", "uring"], |_| {});
    assert!(error.contains("Operation not permitted"), "the cause is not named: {error}");
    assert!(error.contains("--runtime epoll"), "no suggestion: {error}");
}

/// The `mini` server of a `uring` build under the filter.
#[cfg(feature = "uring")]
mod mini {
    use std::io::Write;
    use std::net::Shutdown;
    use std::process::Command;
    use std::thread;

    use super::{no_backend_env, refused};
    use crate::seccomp::deny_io_uring;
    use crate::util::{
        assert_same_bytes, connect, random_bytes, read_to_eof, wait_until, Server, IO_TIMEOUT,
    };

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

    /// The `mini` server told to use uring under the filter.
    fn refuses(args: &[&str], configure: impl FnOnce(&mut Command)) {
        let mut args = args.to_vec();
        args.extend(["--runtime", "mini"]);
        let error = refused(&args, configure);
        assert!(error.contains("io_uring is unavailable") && error.contains("EPERM"), "{error}");
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
}
