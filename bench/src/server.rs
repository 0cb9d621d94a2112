//! A server under test: this very binary started as a child process (`echo --runtime NAME
//! --addr 127.0.0.1:0`), pinned to its own core (with `--server-cpu`, in a cgroup with a CPU
//! quota, see [`super::cgroup`]), and always killed in the end.
//!
//! # Pinning
//!
//! The child pins itself between `fork` and `exec` (`pre_exec`), before it runs a single
//! instruction of the server: every thread it starts later inherits the affinity. Pinning by pid
//! after the spawn would race with servers that start threads at once (a multi-threaded runtime's
//! workers would keep the old affinity, since `sched_setaffinity(pid)` sets one thread's). The
//! child joins the capped cgroup there too, for the same reason.
//!
//! # Never leaving a server behind
//!
//! Three layers, from the common case to the rare one:
//! 1. [`Server`] kills and reaps its child when dropped: after every point, and on every error path.
//! 2. [`kill_children_on_signals`]: on SIGINT, SIGTERM or SIGHUP a thread kills every child still
//!    listed in [`CHILDREN`], removes the capped cgroup if any, then exits. (Ctrl-C in a
//!    terminal also reaches the children directly: they share the bench's process group, and
//!    exit on SIGINT by themselves.)
//! 3. Each child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), which
//!    covers a bench killed with SIGKILL.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::cgroup::{self, Cgroup};
use super::error::RunError;
use super::measure;

/// How long a server may take to print `listening on ADDR`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of a server's stderr kept to explain its failure.
const STDERR_LINES: usize = 5;

/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The environment variable naming a command to run each server under (a profiler).
pub const WRAP_ENV: &str = "ECHO_BENCH_WRAP";

/// The pids of the children alive now. A pid leaves the list (under the lock) before its child
/// is reaped, so the signal thread never kills a pid that the kernel may have reused.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A running server child; killed and reaped when dropped.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    addr: SocketAddr,
    /// The last lines the server wrote on stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Starts `echo --runtime NAME --addr 127.0.0.1:0` (`mini:BACKEND`: `--runtime mini
    /// --backend BACKEND`), pinned to `cpu` and in `cgroup` if
    /// given, and waits for its `listening on ADDR` line. The error says why it did not start.
    pub fn start(
        name: &str,
        cpu: Option<usize>,
        cgroup: Option<&Cgroup>,
    ) -> Result<Server, RunError> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        // A profiler to run the server under, e.g. ECHO_BENCH_WRAP="valgrind --tool=callgrind":
        // instruction counts compare servers even on a noisy machine (docs/benchmarks.md).
        let wrap = std::env::var(WRAP_ENV).unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        let (runtime, backend) = super::plan::split_backend(name);
        command
            .args(["--runtime", runtime])
            .args(backend.map(|b| ["--backend", b]).iter().flatten());
        command
            .args(["--addr", "127.0.0.1:0"])
            // One log line per connection would be part of what we measure: warnings only.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let set = cpu.map(measure::cpu_set);
        let procs = cgroup.map(|c| c.procs().to_owned());
        // SAFETY: std runs `pre_exec` in the child between fork and exec, where only
        // async-signal-safe calls are allowed: the closure makes only system calls
        // (sched_setaffinity, open, write, close, prctl, getppid, _exit) on values prepared
        // before the fork (the CPU set, the cgroup.procs path), and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if let Some(set) = &set {
                    measure::pin(set)?;
                }
                if let Some(procs) = &procs {
                    cgroup::join(procs)?;
                }
                set_parent_death_signal()
            })
        };
        let mut child = command.spawn().map_err(|e| match cgroup {
            Some(c) => format!("cannot start the server in the cgroup {}: {e}", c.dir().display()),
            None => format!("cannot start the server: {e}"),
        })?;
        lock(&CHILDREN).push(child.id());

        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        keep_tail(child.stderr.take().expect("stderr is piped"), Arc::clone(&stderr));
        let first_line = first_line(child.stdout.take().expect("stdout is piped"));
        let mut server =
            Server { name: name.to_owned(), child, addr: ([0, 0, 0, 0], 0).into(), stderr };
        let line = match first_line.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => return Err(server.failure("did not print `listening on ADDR` in time")),
        };
        match line.trim().strip_prefix("listening on ").map(str::parse) {
            Some(Ok(addr)) => server.addr = addr,
            _ if line.is_empty() => return Err(server.failure("failed to start")),
            _ => return Err(server.failure(&format!("printed {line:?}, not `listening on ADDR`"))),
        }
        Ok(server)
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `--runtime` it runs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's process id, for `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ok while the server runs; else an error that says how it ended and what it said last.
    pub fn check(&mut self) -> Result<(), RunError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(_)) | Err(_) => Err(self.failure("died")),
        }
    }

    /// Like [`check`](Self::check), after an error that a dying server may have caused: gives
    /// the server a moment to finish exiting before calling it alive.
    pub fn check_after_error(&mut self) -> Result<(), RunError> {
        for _ in 0..10 {
            self.check()?;
            thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// "the NAME server WHAT (exit status / signal); its stderr ends: ...".
    fn failure(&mut self, what: &str) -> RunError {
        // A server that has just closed its stdout may not be reaped yet: give it a moment.
        let mut status = None;
        for _ in 0..20 {
            status = self.child.try_wait().ok().flatten();
            if status.is_some() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let mut message = format!("the {} server {what}", self.name);
        if let Some(status) = status {
            message += &format!(" ({status})");
        }
        // Let the stderr thread catch up with the last lines.
        thread::sleep(Duration::from_millis(20));
        let tail = lock(&self.stderr);
        if !tail.is_empty() {
            let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
            message += &format!("; its stderr ends: {}", lines.join(" | "));
        }
        RunError::Server(message)
    }
}

impl Drop for Server {
    /// Asks the server to stop (SIGTERM: the echo servers exit 0 at once, and a profiler
    /// wrapped around one gets to write its report), then kills it if it has not exited within
    /// [`STOP_GRACE`].
    fn drop(&mut self) {
        let pid = self.child.id();
        let deadline = Instant::now() + STOP_GRACE;
        let mut asked = false;
        loop {
            let mut children = lock(&CHILDREN);
            // Under the lock, reaping and leaving the list happen together: the signal thread
            // never sees the pid of a reaped child (which the kernel may reuse).
            if let Ok(Some(_)) = self.child.try_wait() {
                children.retain(|&p| p != pid);
                return;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                children.retain(|&p| p != pid);
                return;
            }
            if !asked {
                // SAFETY: kill(2) takes no pointers; `pid` is our child, not yet reaped (we
                // hold the lock, and only this drop reaps it).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                asked = true;
            }
            drop(children);
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts a thread that, on SIGINT, SIGTERM or SIGHUP, kills every server child, removes the
/// capped cgroup if any, and exits with status 130.
pub fn kill_children_on_signals() -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
    thread::Builder::new()
        .name("bench-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // Held until the process exits: no child is reaped (and its pid reused) meanwhile.
                let children = lock(&CHILDREN);
                for &pid in children.iter() {
                    // SAFETY: kill(2) takes no pointers; `pid` is our child, not yet reaped.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                cgroup::remove_after_signal();
                eprintln!(
                    "\nbench: signal {signal}: stopped {} server(s); exiting",
                    children.len()
                );
                std::process::exit(130);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// In the child, before exec: ask for SIGKILL when the parent dies. Async-signal-safe.
fn set_parent_death_signal() -> io::Result<()> {
    // SAFETY: getppid takes no arguments and cannot fail.
    let parent = unsafe { libc::getppid() };
    // SAFETY: prctl(PR_SET_PDEATHSIG, signal) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The parent may have died before the prctl: then nobody would ever send the signal.
    // SAFETY: as above.
    if unsafe { libc::getppid() } != parent {
        // SAFETY: _exit ends the child at once, without running the parent's copied state.
        unsafe { libc::_exit(1) };
    }
    Ok(())
}

/// Reads the first line of `stdout` on a thread (so that waiting for it can time out), then
/// drains the pipe so that the server never blocks writing to it. An empty line means EOF.
fn first_line(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = tx.send(line);
        let _ = io::copy(&mut stdout, &mut io::sink());
    });
    rx
}

/// Keeps the last [`STDERR_LINES`] lines of `stderr` in `tail`, until the pipe closes.
fn keep_tail(stderr: impl Read + Send + 'static, tail: Arc<Mutex<VecDeque<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut tail = lock(&tail);
            if tail.len() == STDERR_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
}

/// Locks `mutex`, also after a panic elsewhere: the data (pids, lines) stays valid.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
