//! Helpers: start `http-echo` and always reap it, run it to completion, raw sockets with
//! timeouts. As in the `echo` package's end-to-end tests, no step blocks without a bound.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const HTTP_ECHO: &str = env!("CARGO_BIN_EXE_http-echo");

/// Every runtime the binary offers in this build.
pub const RUNTIMES: &[&str] = &[
    "mini",
    #[cfg(feature = "tokio")]
    "tokio",
];

/// Bound on any single blocking step: a socket operation, a process run, a server's start.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `http-echo`, killed and reaped when dropped (also when a test panics).
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// Its stderr (its log), shown when a test fails.
    log: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts `http-echo --runtime RUNTIME --addr 127.0.0.1:0 EXTRA...` and waits for its
    /// `listening on` line.
    pub fn start(runtime: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--runtime", runtime, "--addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = Command::new(HTTP_ECHO)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn http-echo {args:?}: {e}"));
        let log = drain(child.stderr.take().expect("stderr is piped"));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = tx.send(stdout.read_line(&mut line).map(|_| line));
            let _ = io::copy(&mut stdout, &mut io::sink());
        });
        let mut server = Server { child, addr: ([0, 0, 0, 0], 0).into(), log };
        let line = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(Ok(line)) => line,
            other => panic!(
                "http-echo {args:?} did not say where it listens ({other:?}): {}",
                server.log()
            ),
        };
        server.addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("http-echo printed {line:?}, not `listening on IP:PORT`"));
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) reads only its two integers; the pid is our unreaped child (only
        // `Drop` and `wait_exit` reap it), so it cannot name another process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Panics, showing the log, if the server has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("the server exited ({status}); its log:\n{}", self.log());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- http-echo log ---\n{}", self.log());
        }
    }
}

/// Copies `pipe` into a shared buffer from a thread of its own, until end of file.
fn drain(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let sink = bytes.clone();
    thread::spawn(move || {
        let mut chunk = [0; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    bytes
}

/// How a finished command ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `program ARGS...` with `stdin` as its input; panics if it runs past [`IO_TIMEOUT`]
/// (killing it).
pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> Finished {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {program} {args:?}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let mut input = child.stdin.take().expect("piped");
    let stdin = stdin.to_vec();
    // From a thread, so a child that does not read cannot block us; the drop closes the pipe.
    thread::spawn(move || input.write_all(&stdin));
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} ran past {IO_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    // The pipes close when the child exits; wait for the readers to see it.
    let taken = |bytes: &Arc<Mutex<Vec<u8>>>| {
        while Arc::strong_count(bytes) > 1 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        std::mem::take(&mut *bytes.lock().unwrap())
    };
    let stdout = taken(&stdout);
    let stderr = String::from_utf8_lossy(&taken(&stderr)).into_owned();
    Finished { status, stdout, stderr }
}

/// Whether `program` can be run (`program --version` succeeds); tests of an absent client say
/// so and skip.
pub fn have(program: &str) -> bool {
    let found = Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: `{program}` is not installed");
    }
    found
}

/// Connects with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Sends `request` (raw bytes) on a new connection and reads until the server closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(request).expect("send the request");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read the reply");
    String::from_utf8_lossy(&reply).into_owned()
}

/// `GET /` with `Connection: close`: shows the server still serves. Panics unless it says hello.
pub fn assert_serves(addr: SocketAddr) {
    let reply = exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "reply: {reply:?}");
    assert!(reply.ends_with("\r\n\r\nHello, World!"), "reply: {reply:?}");
}

/// Makes the next close of `stream` reset the connection (RST) instead of closing it (FIN).
pub fn set_linger_zero(stream: &TcpStream) {
    socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
}

/// `len` pseudo-random bytes (xorshift), so a body that comes back shifted or truncated cannot
/// pass for the original.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Asserts `got == want`, naming the lengths and the first difference rather than dumping
/// megabytes.
pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(g, w)| g != w);
        panic!(
            "{what}: got {} bytes, expected {}; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}
