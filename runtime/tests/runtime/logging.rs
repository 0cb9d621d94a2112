//! `RUST_LOG=mini=trace`: the runtime narrates every step; doing so must not change what it
//! does. One round trip (a spawn, a timer, a connection, an echo) with trace logging on.

use std::cell::Cell;
use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{LevelFilter, Log, Metadata, Record};

use crate::util::{self, run};

thread_local! {
    /// Set on the thread whose runtime should narrate.
    static NARRATE: Cell<bool> = const { Cell::new(false) };
}

/// env_logger's logger, but only for threads that asked: the logger is global to the process,
/// and the tests running meanwhile on other threads should neither pay for trace output nor
/// bury this test's output in theirs.
struct ThisThreadOnly(env_logger::Logger);

impl Log for ThisThreadOnly {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        NARRATE.with(Cell::get) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Where the log lines go, so the test can read them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_logging_narrates_a_round_trip_without_changing_it() {
    let captured = Captured::default();
    let logger = env_logger::Builder::new()
        .is_test(true)
        .filter_level(LevelFilter::Trace)
        .target(env_logger::Target::Pipe(Box::new(captured.clone())))
        .build();
    log::set_boxed_logger(Box::new(ThisThreadOnly(logger)))
        .expect("no other test installs a logger");
    log::set_max_level(LevelFilter::Trace);

    let echoed = run(|| async {
        NARRATE.with(|narrate| narrate.set(true));
        let (listener, addr) = util::listener();
        util::spawn_echo_server(listener);
        mini::time::sleep(Duration::from_millis(2)).await;
        let mut client = mini::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"narrated").await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        util::read_to_end(&mut client, 3).await.unwrap()
    });
    assert_eq!(echoed, b"narrated");

    log::logger().flush();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for target in ["mini::executor", "mini::reactor"] {
        assert!(text.contains(&format!("TRACE {target}")), "no trace from {target} in:\n{text}");
    }
}
