//! Helpers shared by the test modules.
//!
//! The most important is [`run`]: every test body runs on a thread of its own under a
//! watchdog, so that a runtime bug that hangs (a lost wake-up, a poller that never returns)
//! fails that one test with a message instead of stalling the whole run.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::resume_unwind;
use std::rc::Rc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use mini::net::{TcpListener, TcpStream};

/// How long one test body may take. Tests take milliseconds; this only turns a hang into a
/// failure, and is generous because the machine is shared.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Runs `body` on a new thread and fails if it has not returned within `limit`. A panic in
/// `body` is re-raised with its own payload, so `#[should_panic]` and messages work as usual.
pub fn watchdog<R: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    // Named after the test, so that a panic inside says which test it belongs to.
    let name = std::thread::current().name().unwrap_or("test").to_owned();
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _ = tx.send(body());
        })
        .expect("spawn the test thread");
    match rx.recv_timeout(limit) {
        Ok(out) => {
            let _ = thread.join();
            out
        }
        // The sender was dropped without sending: the body panicked.
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => resume_unwind(payload),
            Ok(()) => unreachable!("the body returned without sending its result"),
        },
        // The hung thread is left behind; the test binary ends it when it exits.
        Err(RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}: a hang"),
    }
}

/// `mini::block_on(make())` under the [`watchdog`]. The future is made on the test thread
/// itself, so it need not be `Send`.
pub fn run<F, Fut>(make: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    watchdog(LIMIT, move || mini::block_on(make()))
}

/// The text of a panic payload (`panic!` with a literal gives `&str`, with arguments `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<not a string>".to_owned()
    }
}

/// Counts how many of its [`Guard`]s were dropped: shows that a task's future was dropped.
#[derive(Clone, Debug, Default)]
pub struct DropCounter(Rc<Cell<usize>>);

/// Bumps its [`DropCounter`] when dropped.
#[derive(Debug)]
pub struct Guard(Rc<Cell<usize>>);

impl DropCounter {
    pub fn guard(&self) -> Guard {
        Guard(self.0.clone())
    }

    pub fn dropped(&self) -> usize {
        self.0.get()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// `len` bytes that differ with `seed` and do not repeat with a short period, so that a lost,
/// doubled or reordered chunk shows up in a comparison.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A listener on 127.0.0.1 with a port of the OS's choosing, and its address.
pub fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    (listener, addr)
}

/// Two connected streams: (client, server).
pub async fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let (listener, addr) = listener();
    // The kernel completes the handshake before the accept: connecting first cannot deadlock.
    let client = TcpStream::connect(addr).await?;
    let (server, _) = listener.accept().await?;
    Ok((client, server))
}

/// Reads until the end of the stream.
pub async fn read_to_end(stream: &mut TcpStream, chunk: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; chunk];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// An echo server: one task per connection, each replying with what it reads until the end of
/// the stream, then shutting down its writing side.
pub fn spawn_echo_server(listener: TcpListener) -> mini::JoinHandle<()> {
    mini::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.expect("accept");
            mini::spawn(async move {
                let mut buf = [0; 4096];
                loop {
                    match stream.read(&mut buf).await.expect("server read") {
                        0 => break,
                        n => stream.write_all(&buf[..n]).await.expect("server write"),
                    }
                }
                stream.shutdown(std::net::Shutdown::Write).expect("server shutdown");
            });
        }
    })
}

/// The scheduler state of thread `tid` of this process ('R' running, 'S' sleeping, ...).
pub fn thread_state(tid: &str) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("read stat");
    // The state follows the command name, which is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')').expect("stat has a command name") + 1..];
    after.trim_start().chars().next().expect("stat has a state")
}

/// This thread's id, as /proc names it.
pub fn current_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
    link.file_name().expect("a tid").to_string_lossy().into_owned()
}

/// Blocks (on another thread than the runtime's) until thread `tid` is asleep in the kernel,
/// which for a runtime thread means: parked in the poller. Gives up after `limit`.
pub fn wait_until_asleep(tid: &str, limit: Duration) {
    let start = Instant::now();
    while thread_state(tid) != 'S' {
        assert!(start.elapsed() < limit, "the runtime thread never went to sleep in the poller");
        std::thread::yield_now();
    }
}

/// CPU time (user + system) the calling thread has used so far: a busy loop shows up here.
pub fn thread_cpu() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD asks about this thread only.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}
