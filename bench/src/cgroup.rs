//! `--server-cpu PERCENT`: every server child runs in a cgroup whose CPU bandwidth is capped at
//! PERCENT of one core.
//!
//! # Why cap the server
//!
//! On a 2-core machine the load generator owns one core and the server the other, and on
//! loopback the generator spends about as much CPU per message as the leanest server: both
//! saturate together, and the pace is set by the pair, not by the server. Worse, a server that
//! is not saturated sleeps in `epoll_wait` between bursts and pays a wake-up for every few
//! messages; the faster the server, the more it sleeps and the more wake-ups it pays per
//! message, which compresses the differences between servers. Capping the server at, say, 50%
//! of a core makes it the bottleneck at every point: it uses all of its allowance, the load
//! generator has twice the headroom it needs, and messages/s and CPU per message compare servers
//! at saturation.
//!
//! # CFS bandwidth control
//!
//! The kernel's fair scheduler (CFS) can give a cgroup a *quota* of CPU time per *period*: once
//! the cgroup's threads have used the quota within the current period, they are *throttled*
//! (not run at all) until the next period starts. Quota 5 ms per 10 ms period is 50% of one
//! core, however many threads the server has. The files are `cpu.max` ("QUOTA PERIOD", in µs)
//! in cgroup v2, `cpu.cfs_quota_us` and `cpu.cfs_period_us` in cgroup v1. The period here is
//! 10 ms (below 10% the period grows so that the quota stays at the kernel's minimum of 1 ms).
//!
//! A capped server's latency figures therefore include throttling pauses of up to one period: a
//! message that arrives just after the server ran out of quota waits for the next period.
//!
//! # Where the cgroup lives
//!
//! The bench finds the hierarchy in `/proc/self/mountinfo`: the cgroup v2 mount if `cpu` is in
//! its `cgroup.controllers`, else the cgroup v1 mount with the `cpu` controller. It creates one
//! cgroup per bench process under that mount's root, `echo-bench-PID`, and removes it when done
//! (also after a failed point, and after SIGINT/SIGTERM/SIGHUP; a bench killed with SIGKILL
//! leaves it behind, and the next capped bench removes it). Each server child moves itself into
//! it between `fork` and `exec` ([`join`]), so every thread it starts is in it too.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The CFS period: how long a throttled server may wait at most for its next quota.
pub const PERIOD_US: u64 = 10_000;

/// The smallest quota the kernel accepts (in both cgroup versions).
const MIN_QUOTA_US: u64 = 1_000;

/// The prefix of the cgroups' names; the bench's pid follows.
const PREFIX: &str = "echo-bench-";

/// The cgroup of this bench process while it exists, for [`remove_after_signal`].
static LIVE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A cgroup with a CPU quota, removed when dropped.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// `DIR/cgroup.procs`, ready for [`join`] in a child (no allocation after `fork`).
    procs: CString,
}

/// A mounted cgroup hierarchy, from `/proc/self/mountinfo`.
#[derive(Debug, PartialEq)]
struct Mount {
    /// cgroup v2 (the unified hierarchy), else v1.
    v2: bool,
    point: PathBuf,
    /// The controllers of a v1 mount (its super options, like `rw,cpu,cpuacct`).
    options: Vec<String>,
}

impl Cgroup {
    /// Creates `echo-bench-PID` with a quota of `percent`% of one core. The error names the
    /// file that could not be read or written and why.
    pub fn create(percent: u8) -> Result<Cgroup> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo to find the cgroup mounts")?;
        let (quota, period) = quota_period(percent);
        let mounts = mounts(&mountinfo);
        let (parent, settings) = if let Some(m) = mounts.iter().find(|m| m.v2 && has_cpu(m)) {
            let subtree = m.point.join("cgroup.subtree_control");
            if !read_words(&subtree)?.iter().any(|c| c == "cpu") {
                bail!(
                    "the cgroup v2 `cpu` controller is not enabled for the children of {} (`cpu` \
                     is missing from {}; as root: echo +cpu > {1})",
                    m.point.display(),
                    subtree.display()
                );
            }
            (&m.point, vec![("cpu.max", format!("{quota} {period}"))])
        } else if let Some(m) = mounts.iter().find(|m| !m.v2 && has_cpu(m)) {
            let settings = vec![
                ("cpu.cfs_period_us", period.to_string()),
                ("cpu.cfs_quota_us", quota.to_string()),
            ];
            (&m.point, settings)
        } else {
            bail!(
                "no cgroup hierarchy with the `cpu` controller in /proc/self/mountinfo (neither a \
                 cgroup2 mount listing `cpu` in its cgroup.controllers nor a cgroup v1 `cpu` mount)"
            );
        };
        remove_stale(parent);
        let dir = parent.join(format!("{PREFIX}{}", std::process::id()));
        let procs_path = dir.join("cgroup.procs");
        let procs = path_cstring(&procs_path)?;
        fs::create_dir(&dir)
            .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
        *lock() = Some(dir.clone());
        // From here on, dropping `cgroup` removes the directory.
        let cgroup = Cgroup { dir, procs };
        for (file, value) in settings {
            let path = cgroup.dir.join(file);
            fs::write(&path, &value)
                .with_context(|| format!("cannot write `{value}` to {}", path.display()))?;
        }
        // The children write their own pid there: fail now, not at the first point, if we may not.
        fs::OpenOptions::new()
            .write(true)
            .open(&procs_path)
            .with_context(|| format!("cannot open {} for writing", procs_path.display()))?;
        Ok(cgroup)
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/cgroup.procs`, for [`join`].
    pub fn procs(&self) -> &CStr {
        &self.procs
    }
}

impl Drop for Cgroup {
    /// Removes the cgroup (its servers have all been reaped by now); warns if it cannot.
    fn drop(&mut self) {
        let mut live = lock();
        if let Err(e) = remove(&self.dir) {
            eprintln!("bench: warning: cannot remove the cgroup {}: {e}", self.dir.display());
        }
        *live = None;
    }
}

/// Quota and period in µs for `percent`% of one core: a period of [`PERIOD_US`], longer only if
/// the quota would be under the kernel's minimum (below 10%).
pub fn quota_period(percent: u8) -> (u64, u64) {
    let percent = u64::from(percent.clamp(1, 100));
    let period = PERIOD_US.max((MIN_QUOTA_US * 100).div_ceil(percent));
    (period * percent / 100, period)
}

/// In a server child, between `fork` and `exec`: moves the calling process into the cgroup whose
/// `cgroup.procs` is `procs` (writing "0" there means "the writer", in both cgroup versions).
/// Only `open`, `write` and `close` on memory prepared before the fork: async-signal-safe.
pub fn join(procs: &CStr) -> io::Result<()> {
    // SAFETY: `procs` is a valid NUL-terminated path that outlives the call; open(2) only reads
    // it.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is the descriptor just opened; the buffer is one readable static byte.
    let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let result = if written == 1 { Ok(()) } else { Err(io::Error::last_os_error()) };
    // SAFETY: `fd` is ours and closed once; nothing else uses it.
    unsafe { libc::close(fd) };
    result
}

/// Called by the signal thread once it has killed the servers: removes the cgroup, if any
/// (killed children leave it as they die; zombies do not count as members).
pub fn remove_after_signal() {
    if let Some(dir) = lock().take() {
        if let Err(e) = remove(&dir) {
            eprintln!("bench: cannot remove the cgroup {}: {e}", dir.display());
        }
    }
}

/// `rmdir`, retried for a moment while the last server finishes leaving (EBUSY).
fn remove(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => return other,
        }
    }
}

/// Removes the cgroups that benches killed with SIGKILL left under `parent`: `echo-bench-PID`
/// where no process PID runs (or PID is ours: a leftover of an earlier process with our pid).
/// `rmdir` refuses a cgroup that still has members, so nothing in use is removed.
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX)?.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

/// The cgroup mounts listed in `mountinfo` (the format of `/proc/self/mountinfo`).
fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
            // SUPER-OPTIONS": the mount point is the 5th field, the super options the last.
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let v2 = match right.next()? {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let options = right.nth(1).unwrap_or_default().split(',').map(str::to_owned).collect();
            Some(Mount { v2, point: PathBuf::from(unescape(point)), options })
        })
        .collect()
}

/// Whether `mount` has the `cpu` controller (v2: listed in its root's `cgroup.controllers`).
fn has_cpu(mount: &Mount) -> bool {
    if mount.v2 {
        read_words(&mount.point.join("cgroup.controllers"))
            .is_ok_and(|c| c.iter().any(|c| c == "cpu"))
    } else {
        mount.options.iter().any(|o| o == "cpu")
    }
}

/// The whitespace-separated words of a file.
fn read_words(path: &Path) -> Result<Vec<String>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// Mount points escape space, tab, newline and backslash as `\040`-style octal.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn path_cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} holds a NUL byte", path.display()))
}

/// Locks [`LIVE`], also after a panic elsewhere: the path stays valid.
fn lock() -> std::sync::MutexGuard<'static, Option<PathBuf>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_and_v2_mounts() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
41 31 0:38 / /mnt/my\\040cgroups rw,relatime - cgroup2 cgroup2 rw
";
        let m = mounts(info);
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(!m[0].v2 && has_cpu(&m[0]));
        assert_eq!(m[0].point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(!has_cpu(&m[1]), "cpuset is not cpu");
        assert!(m[2].v2);
        assert_eq!(m[2].point, Path::new("/mnt/my cgroups"));
    }

    #[test]
    fn quota_and_period() {
        assert_eq!(quota_period(50), (5_000, 10_000));
        assert_eq!(quota_period(100), (10_000, 10_000));
        assert_eq!(quota_period(10), (1_000, 10_000));
        assert_eq!(quota_period(9), (1_000, 11_112));
        assert_eq!(quota_period(1), (1_000, 100_000));
    }
}
