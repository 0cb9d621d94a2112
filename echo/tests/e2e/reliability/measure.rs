//! What the reliability tests read of a server process, from `/proc`: its descriptor count
//! against a baseline, its CPU over a window, its resident memory; and the step that gives it a
//! low descriptor (or other resource) limit.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{connect, echo_once, open_fds, wait_until, Server};

/// A `Server::start_with` step that sets the child's descriptor limit (soft and hard) to
/// `limit` between `fork` and `exec`.
pub(super) fn fd_limit(limit: libc::rlim_t) -> impl FnOnce(&mut Command) {
    resource_limit(libc::RLIMIT_NOFILE, limit)
}

/// A `Server::start_with` step that sets the child's limit of `resource` (soft and hard) to
/// `limit` between `fork` and `exec`.
pub(super) fn resource_limit(
    resource: libc::__rlimit_resource_t,
    limit: libc::rlim_t,
) -> impl FnOnce(&mut Command) {
    move |command| {
        let set_limit = move || {
            let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: `rlimit` is a live, initialised struct the call only reads.
            if unsafe { libc::setrlimit(resource, &rlimit) } == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe work is allowed: it makes one system call (setrlimit) and builds
        // plain values; it neither allocates nor takes locks (`last_os_error` reads errno into an
        // integer).
        unsafe {
            command.pre_exec(set_limit);
        }
    }
}

/// The server's descriptor count with no client, measured after one echo so that anything it
/// creates lazily is counted.
pub(super) fn fd_baseline(server: &Server) -> usize {
    let at_start = open_fds(server.pid());
    let warm_up = connect(server.addr());
    echo_once(&warm_up, b"warm-up\n").expect("warm-up echo");
    let with_one = open_fds(server.pid());
    at_start.max(with_one - 1)
}

/// The server's descriptor count once it is back to `baseline`, or after 5 s if it does not get
/// there: a server closes a socket only after it notices that its client has gone.
pub(super) fn fds_settled(server: &Server, baseline: usize) -> usize {
    let mut now = usize::MAX;
    wait_until(Duration::from_secs(5), || {
        now = open_fds(server.pid());
        now <= baseline
    });
    now
}

/// Runs `activity` (given the window's end) and sleeps out the rest of `window`, measuring the
/// share of one core that process `pid` used meanwhile.
pub(super) fn cpu_during<R>(
    pid: u32,
    window: Duration,
    activity: impl FnOnce(Instant) -> R,
) -> (f64, R) {
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    let result = activity(t0 + window);
    thread::sleep((t0 + window).saturating_duration_since(Instant::now()));
    let (cpu1, wall) = (cpu_time(pid), t0.elapsed());
    ((cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64(), result)
}

/// User plus system CPU time of process `pid`, all threads, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/PID/stat");
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let fields: Vec<&str> =
        stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the name (which ends field 2).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf takes no pointers.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// Resident memory of process `pid` in bytes, from `/proc/PID/status`.
pub(super) fn rss(pid: u32) -> u64 {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("a VmRSS line");
    kib * 1024
}

pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
