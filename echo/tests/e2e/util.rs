//! Helpers shared by the end-to-end tests: start the `echo` binary and always reap it, connect
//! with timeouts, wait for a condition with a deadline, count a process's open descriptors.
//!
//! The rule behind every helper: no step may block without a bound. Sockets carry read and write
//! timeouts, processes are waited for against deadlines, and a child is killed when its owner is
//! dropped, so a broken server fails one test with a message instead of hanging the whole run or
//! leaving processes behind.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// The binary under test, built by Cargo for this test target.
pub const ECHO: &str = env!("CARGO_BIN_EXE_echo");

/// Every server the binary offers (`--runtime`).
pub const RUNTIMES: &[&str] = &[
    "mini",
    "threaded",
    "spin",
    "select",
    "epoll",
    "sigio",
    "uring",
    #[cfg(feature = "tokio")]
    "tokio-current",
    #[cfg(feature = "tokio")]
    "tokio-multi",
];

/// Bound on any single blocking socket operation, process run or rendezvous.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling period of [`wait_until`]: short, so waits end soon after the condition holds.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// A running `echo` server process, killed and reaped when dropped (also when a test panics).
#[derive(Debug)]
pub struct Server {
    child: Reaped,
    addr: SocketAddr,
    /// What the server printed on stderr (and on stdout after its first line), shown on failure.
    output: Captured,
}

impl Server {
    /// Starts `echo --runtime RUNTIME --addr 127.0.0.1:0 EXTRA_ARGS...` and waits for its
    /// `listening on IP:PORT` line. Panics with the server's stderr if that line does not come.
    pub fn start(runtime: &str, extra_args: &[&str]) -> Server {
        Server::start_with(runtime, extra_args, |_| {})
    }

    /// [`Server::start`], letting `configure` adjust the command first (environment, resource
    /// limits through `pre_exec`, ...).
    pub fn start_with(
        runtime: &str,
        extra_args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let mut args = vec!["--runtime", runtime, "--addr", "127.0.0.1:0"];
        args.extend_from_slice(extra_args);
        let shown = args.join(" ");
        let mut command = Command::new(ECHO);
        command.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        configure(&mut command);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot spawn `echo {shown}`: {e}"));
        let mut child = Reaped(child);
        let output = Captured::new();
        output.drain(child.0.stderr.take().expect("stderr is piped"));

        // A thread reads the first line so that waiting for it can time out; afterwards it keeps
        // the pipe drained, so the server never blocks on (or fails writing to) its stdout.
        let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout is piped"));
        let (line_tx, line_rx) = mpsc::channel();
        let rest = output.clone();
        thread::spawn(move || {
            let mut line = String::new();
            let first = stdout.read_line(&mut line).map(|_| line);
            let _ = line_tx.send(first);
            rest.drain(stdout);
        });

        let line = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(Ok(_)) => {
                let status = child.wait_for(IO_TIMEOUT);
                panic!(
                    "`echo {shown}` closed stdout without printing `listening on` (exit: {}); \
                     stderr:\n{}",
                    describe(status),
                    output.finish()
                )
            }
            Ok(Err(e)) => panic!("reading stdout of `echo {shown}`: {e}"),
            Err(_) => {
                child.kill();
                panic!(
                    "`echo {shown}` printed no line on stdout within {STARTUP_TIMEOUT:?}; \
                     stderr:\n{}",
                    output.finish()
                )
            }
        };
        let addr = parse_listening_line(&line).unwrap_or_else(|| {
            panic!("`echo {shown}` printed {line:?}, expected `listening on 127.0.0.1:PORT`")
        });
        Server { child, addr, output }
    }

    /// The address the server reported (never port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) only reads its two integer arguments. The pid is our own child, which
        // cannot have been reaped (and its pid reused) because only `Reaped` waits for it, and
        // that happens after every use of `self`.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}): {}", io::Error::last_os_error());
    }

    /// What the server has printed on stderr so far (its log).
    pub fn log(&self) -> String {
        self.output.text()
    }

    /// Waits up to `timeout` for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.wait_for(timeout)
    }

    /// Panics (showing stderr) if the server has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.0.try_wait().expect("try_wait") {
            panic!("server exited ({status}); output:\n{}", self.output.finish());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill();
        if thread::panicking() {
            // Printed by the test harness together with the failed test's own output.
            eprintln!("--- server {} stderr ---\n{}", self.addr, self.output.finish());
        }
    }
}

/// Parses `listening on IP:PORT` (with its newline); `None` for anything else or for port 0.
fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let addr: SocketAddr = line.strip_suffix('\n')?.strip_prefix("listening on ")?.parse().ok()?;
    (addr.port() != 0).then_some(addr)
}

/// A child process that is killed and reaped on drop, so no test can leak one.
#[derive(Debug)]
struct Reaped(Child);

impl Reaped {
    /// Polls for the child's exit until `timeout`; `None` if it is still running.
    fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.0.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }

    fn kill(&mut self) {
        // Fails only if the child has already exited, which is what we want anyway.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Bytes read from a child's pipes by background threads, until the pipes close.
#[derive(Debug, Clone, Default)]
struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Captured {
    fn new() -> Captured {
        Captured::default()
    }

    /// Appends everything `pipe` yields, from a new thread that ends at end-of-file.
    fn drain(&self, mut pipe: impl Read + Send + 'static) {
        let bytes = Arc::clone(&self.bytes);
        let reader = thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                bytes.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        self.readers.lock().unwrap().push(reader);
    }

    fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// The complete output; call only once the child has exited, so the pipes are at EOF.
    fn finish(&self) -> String {
        let readers = std::mem::take(&mut *self.readers.lock().unwrap());
        for reader in readers {
            let _ = reader.join();
        }
        self.text()
    }
}

/// How a finished `echo` invocation ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    /// One-line summary for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit: {}; stdout: {:?}; stderr: {:?}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }
}

/// Runs `echo ARGS...` with `stdin` as its input and waits for it to exit (panics after
/// [`IO_TIMEOUT`], killing it).
pub fn run(args: &[&str], stdin: &[u8]) -> Finished {
    run_with(args, stdin, |_| {})
}

/// [`run`], letting `configure` adjust the command first (environment, a seccomp filter
/// through `pre_exec`, ...).
pub fn run_with(args: &[&str], stdin: &[u8], configure: impl FnOnce(&mut Command)) -> Finished {
    let shown = args.join(" ");
    let mut command = Command::new(ECHO);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    configure(&mut command);
    let child = command.spawn().unwrap_or_else(|e| panic!("cannot spawn `echo {shown}`: {e}"));
    let mut child = Reaped(child);
    let (stdout, stderr) = (Captured::new(), Captured::new());
    stdout.drain(child.0.stdout.take().expect("stdout is piped"));
    stderr.drain(child.0.stderr.take().expect("stderr is piped"));
    let mut input = child.0.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // From a thread, so that a child that does not read its input cannot block us; dropping
    // `input` at the end closes the pipe, which the child sees as end-of-file.
    thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });

    let Some(status) = child.wait_for(IO_TIMEOUT) else {
        child.kill();
        panic!(
            "`echo {shown}` did not exit within {IO_TIMEOUT:?}; stdout: {:?}; stderr: {:?}",
            stdout.finish(),
            stderr.finish()
        );
    };
    stdout.finish();
    Finished { status, stdout: stdout.bytes(), stderr: stderr.finish() }
}

/// "exit status: 0", "signal: 9 (SIGKILL)" or "still running".
pub fn describe(status: Option<ExitStatus>) -> String {
    status.map_or_else(|| "still running".to_owned(), |s| s.to_string())
}

/// Calls `condition` every few milliseconds until it returns true or `timeout` has passed;
/// returns its last answer. This is how tests wait for the server: never a fixed sleep.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL_EVERY);
    }
}

/// Number of open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    let dir = format!("/proc/{pid}/fd");
    std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir}: {e}")).count()
}

/// Connects to `addr` with read/write timeouts and `TCP_NODELAY` set.
pub fn try_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// [`try_connect`], panicking on failure.
pub fn connect(addr: SocketAddr) -> TcpStream {
    try_connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// Makes the next close of `stream` abort the connection with a RST instead of a FIN.
pub fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).unwrap();
    // SAFETY: the descriptor is open (borrowed from a live TcpStream), and the option value
    // points to a `linger` that lives across the call, with its exact size as the length.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            len,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER): {}", io::Error::last_os_error());
}

/// Writes `message` and reads back as many bytes (fewer only if the server closes).
pub fn echo_once(mut stream: &TcpStream, message: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(message)?;
    read_n(stream, message.len())
}

/// Reads until `n` bytes have arrived or the peer closes (then returns fewer). Errors (such as a
/// timeout) say how many bytes had arrived.
pub fn read_n(mut stream: &TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut got = vec![0; n];
    let mut filled = 0;
    while filled < n {
        match stream.read(&mut got[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(after(e, filled, n)),
        }
    }
    got.truncate(filled);
    Ok(got)
}

/// Reads until the peer closes its side; errors (such as a timeout) say how much had arrived.
pub fn read_to_eof(mut stream: &TcpStream, expected: usize) -> io::Result<Vec<u8>> {
    let mut got = Vec::with_capacity(expected);
    stream.read_to_end(&mut got).map_err(|e| after(e, got.len(), expected))?;
    Ok(got)
}

/// Adds the progress to a read error, and names a timeout as such (it surfaces as EAGAIN).
fn after(e: io::Error, got: usize, expected: usize) -> io::Error {
    let progress = format!("after {got} of {expected} expected bytes");
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("nothing arrived for {IO_TIMEOUT:?} (read timeout), {progress}"),
        ),
        kind => io::Error::new(kind, format!("{e}, {progress}")),
    }
}

/// `len` pseudo-random bytes; the seed makes failures reproducible.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Asserts `got == want`, reporting lengths and the first difference rather than dumping
/// megabytes.
pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let mut msg = format!("{what}: got {} bytes, expected {}", got.len(), want.len());
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        let window = |b: &[u8]| b[i..b.len().min(i + 16)].to_vec();
        let _ = write!(
            msg,
            "; first difference at byte {i}: got {:02x?}, expected {:02x?}",
            window(got),
            window(want)
        );
    } else {
        let _ = write!(msg, "; the shorter one is a prefix of the longer");
    }
    panic!("{msg}");
}

/// A meeting point for `expected` threads, like `std::sync::Barrier` but with a timeout, so one
/// thread that never arrives cannot hang the others.
#[derive(Debug)]
pub struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
    expected: usize,
}

impl Rendezvous {
    pub fn new(expected: usize) -> Rendezvous {
        Rendezvous { arrived: Mutex::new(0), all_here: Condvar::new(), expected }
    }

    /// Counts this thread in and waits for the rest; false if they did not all come in time.
    pub fn arrive_and_wait(&self, timeout: Duration) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        if *arrived >= self.expected {
            self.all_here.notify_all();
            return true;
        }
        let (arrived, _) =
            self.all_here.wait_timeout_while(arrived, timeout, |n| *n < self.expected).unwrap();
        *arrived >= self.expected
    }

    /// How many threads have arrived so far.
    pub fn arrived(&self) -> usize {
        *self.arrived.lock().unwrap()
    }
}
