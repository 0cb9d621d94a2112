//! What the bench reads from the operating system: CPU time, memory and descriptors of a server
//! process (from `/proc`), the load generator's own CPU time (`getrusage`), and the calls that
//! pin processes to cores and raise the open-files limit.
//!
//! # CPU time
//!
//! `/proc/PID/stat` fields 14 and 15 (`utime`, `stime`) count the CPU time of the whole process,
//! every thread included (those that have exited too), in clock ticks of `sysconf(_SC_CLK_TCK)`
//! (100 per second on Linux). A tick is 10 ms, so a figure over a 2-second interval is good to
//! about half a percent of a core; the bench always takes a *difference* of two readings over the
//! measured interval, never a total since the process started.
//!
//! The load generator is one thread, so it reads its own time with `getrusage(RUSAGE_THREAD)`,
//! which the kernel keeps in nanoseconds.

use std::fs;
use std::io;
use std::mem;
use std::time::Duration;

/// CPU time (user + system) the process `pid` has used so far, all threads included.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Field 2, the command name, is in parentheses and may itself hold spaces or parentheses:
    // the fields after the *last* ')' are plain numbers, starting with field 3 (the state).
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields.get(n - 3).and_then(|f| f.parse().ok()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: no field {n}"))
        })
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
}

/// The resident set size of process `pid` in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
}

/// How many descriptors process `pid` has open: how the idle phase sees that the server holds
/// its connections (an accepted socket is a descriptor in every server).
pub fn open_fds(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// CPU time (user + system) the calling thread has used so far.
pub fn thread_cpu() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD asks about this thread only.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the times in `/proc/PID/stat`.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is a bit array, for which all zeroes is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size we pass; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET only reads the set; every `cpu` is below the set's size in bits.
    Ok((0..max).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect())
}

/// A CPU set holding only `cpu`, for [`pin`] (built before `fork`, used in the child).
pub fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is a bit array, for which all zeroes is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of `set`; it ignores a `cpu` beyond the set's size.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set
}

/// Pins the calling thread (and so every thread it starts later, and a child it forks) to the
/// CPUs in `set`. Only a system call: safe to call between `fork` and `exec`.
pub fn pin(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size we pass; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft open-files limit to the hard one and returns the new soft limit. The server
/// children inherit it, so `threaded`, `mini` and the others can hold the idle connections too.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // An unlimited hard limit cannot be the soft one (the kernel caps it at fs.nr_open).
    let target = if limit.rlim_max == libc::RLIM_INFINITY { 1 << 20 } else { limit.rlim_max };
    if target > limit.rlim_cur {
        let raised = libc::rlimit { rlim_cur: target, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit that only moves the soft limit up to the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit.rlim_cur = target;
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(open_fds(me).unwrap() >= 3);
        process_cpu(me).unwrap();
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
