//! Making io_uring unavailable for real, in one child process: a seccomp filter that answers
//! `io_uring_setup` with `EPERM`, as the default seccomp profiles of Docker and containerd do.
//!
//! The filter is a classic BPF program the kernel runs on every system call of the process (and
//! of its children, since filters are inherited and cannot be removed). It reads the call's
//! architecture and number from `struct seccomp_data` and returns a verdict. It is installed
//! between `fork` and `exec` ([`deny_io_uring`], for `Server::start_with`), so the test process
//! itself keeps io_uring.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `AUDIT_ARCH_*` of this build's architecture (from `<linux/audit.h>`; not in `libc`). A call
/// made through another ABI (e.g. 32-bit `int 0x80` on x86_64) carries another architecture,
/// and its numbers mean other calls: the filter lets those through untouched.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Offsets in `struct seccomp_data`: `int nr; __u32 arch; ...`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// The filter: `io_uring_setup` on this architecture fails with `EPERM`, all else is allowed.
fn filter() -> [libc::sock_filter; 6] {
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jump_eq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = |offset: u32| stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    [
        load(ARCH_OFFSET),
        jump_eq(AUDIT_ARCH, 0, 3), // another ABI: allow
        load(NR_OFFSET),
        jump_eq(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// A `Server::start_with` step (or any `Command`'s) that installs the filter in the child
/// between `fork` and `exec`: from then on, `io_uring_setup` fails there with `EPERM`.
pub fn deny_io_uring(command: &mut Command) {
    // Built here, before the fork: the child only reads it.
    let program = filter();
    let install = move || {
        let fprog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: prctl with integer arguments only. Without "no new privileges" an
        // unprivileged process may not install a filter (root may, but then setuid programs
        // it runs would be filtered too; the flag makes that moot).
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fprog` points to `program`, a live array of `len` instructions, which the
        // kernel copies during the call.
        if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe work is allowed: two system calls (prctl) on values built before the
    // fork; it neither allocates nor takes locks.
    unsafe {
        command.pre_exec(install);
    }
}
