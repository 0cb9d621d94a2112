//! The programs in `runtime/examples/` run to completion and print what they teach.
//!
//! Each example is run as the user would run it, as a process, and must exit with status 0
//! within [`LIMIT`] and print the lines listed here. The binaries are the ones cargo built next
//! to this test: `cargo test` builds every example before it runs any test, and puts them in
//! `target/<profile>/examples/`, while this test binary lives in `target/<profile>/deps/`.
//! (With a filter such as `cargo test --test runtime` cargo builds no examples: build them with
//! `cargo build -p mini --examples`, or this test fails and says so.)
//!
//! The examples inherit the environment, so `MINI_BACKEND=poll` runs them on that backend too.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one example may take. They take well under a second; this turns a hang into a
/// failure.
const LIMIT: Duration = Duration::from_secs(30);

/// Examples this test does not run, with the reason.
const NOT_RUN: &[(&str, &str)] =
    &[("turn_cost", "a measurement that takes minutes and 10 000 descriptors")];

/// Each example run, with lines its stdout must hold.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "timer",
        &["1. slept 50 ms", "2. two 100 ms sleeps in two tasks took", "3. interval of 20 ms"],
    ),
    ("echo_server", &["server: accepted", "client: got back hello, mini"]),
    (
        "cross_thread_wake",
        &[
            "helper: the runtime thread is asleep (state S)",
            "runtime: the future was polled 2 times",
        ],
    ),
    (
        "timeout",
        &[
            "1. no data within 100 ms: deadline has elapsed",
            "2. the next read got \"ping\"",
            "kind TimedOut",
        ],
    ),
    (
        "trace",
        &["executor: polling the main future", "would block; the task waits", "got \"ping\" back"],
    ),
];

#[test]
fn timer() {
    run_example("timer");
}

#[test]
fn echo_server() {
    run_example("echo_server");
}

#[test]
fn cross_thread_wake() {
    run_example("cross_thread_wake");
}

#[test]
fn timeout() {
    run_example("timeout");
}

#[test]
fn trace() {
    run_example("trace");
}

/// Every file in `runtime/examples/` is in [`EXAMPLES`] or in [`NOT_RUN`].
#[test]
fn every_example_is_run_or_excused() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(&dir).expect("read runtime/examples") {
        let path = entry.expect("read runtime/examples").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let name = path.file_stem().and_then(|s| s.to_str()).expect("a UTF-8 file name");
        assert!(
            EXAMPLES.iter().any(|(n, _)| *n == name) || NOT_RUN.iter().any(|(n, _)| *n == name),
            "runtime/examples/{name}.rs is not run by this test: add it to EXAMPLES (and a \
             #[test] that runs it), or to NOT_RUN with the reason"
        );
    }
}

/// Runs the built example `name`; checks its exit status and that stdout holds its lines.
fn run_example(name: &str) {
    let (_, expected) = EXAMPLES.iter().find(|(n, _)| *n == name).expect("listed in EXAMPLES");
    let exe = example_path(name);
    let mut child = Command::new(&exe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {name} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // The outputs are small (a few KiB at most), so they fit in the pipes until read here.
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut stdout).expect("read stdout");
    child.stderr.take().expect("piped").read_to_string(&mut stderr).expect("read stderr");
    assert!(
        status.success(),
        "example {name} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for line in *expected {
        assert!(
            stdout.contains(line),
            "example {name} did not print {line:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
}

/// `target/<profile>/examples/NAME`, found from this test binary's own path.
fn example_path(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps/");
    let exe = profile_dir.join("examples").join(name);
    assert!(
        exe.is_file(),
        "example binary {} is missing: `cargo test` builds examples, but not with a filter such \
         as `--test runtime`; run `cargo build -p mini --examples` first",
        exe.display()
    );
    exe
}
