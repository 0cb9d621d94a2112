//! The ring of the io_uring server: setting it up (and saying why it cannot be), queueing
//! entries, the one system call of a turn, and the `user_data` that names each operation.
//!
//! A ring is two queues shared with the kernel: the program writes submission entries (SQEs)
//! and reads completion entries (CQEs). [`Ring::wait`] is the only `io_uring_enter(2)` of a turn:
//! it hands the kernel everything queued since the last one and sleeps until at least one
//! completion is there (or a deadline passes). Entries queued while the submission queue is full
//! cost one extra `io_uring_enter` that only submits ([`Ring::push`]).

use std::io;
use std::time::Duration;

use io_uring::{cqueue, squeue, types, IoUring};

/// Submission queue entries: room for a turn that sends to a thousand connections.
const SQ_ENTRIES: u32 = 4096;
/// Completion queue entries. Multishot operations post many completions per submission; if the
/// queue overflows anyway, the kernel keeps the rest (`IORING_FEAT_NODROP`) and posts them later.
const CQ_ENTRIES: u32 = 4 * SQ_ENTRIES;

/// What an operation is, packed into its `user_data` and handed back in its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// The listener's multishot accept.
    Accept,
    /// A connection's multishot receive.
    Recv(Key),
    /// A connection's send.
    Send(Key),
    /// A cancellation; its own completion says only whether it found its target.
    Cancel,
}

/// A connection's slot in the table and the serial of the connection that holds it, so that a
/// late completion is never taken for a newer connection's in the same slot (see
/// [`Conns`](super::table::Conns) for why it cannot happen, and this for a second line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) slot: u32,
    /// The connection's serial, modulo 2^30.
    pub(super) serial: u32,
}

const KIND_SHIFT: u32 = 62;
const SERIAL_MASK: u64 = (1 << 30) - 1;

impl Key {
    /// The key of the connection numbered `serial` in `slot`.
    pub(super) fn new(slot: u32, serial: u64) -> Key {
        Key { slot, serial: (serial & SERIAL_MASK) as u32 }
    }
}

impl Op {
    /// Packs `self`: the kind in the top 2 bits, the serial in the next 30, the slot below.
    pub(super) fn user_data(self) -> u64 {
        let (kind, key) = match self {
            Op::Accept => (0, None),
            Op::Recv(key) => (1, Some(key)),
            Op::Send(key) => (2, Some(key)),
            Op::Cancel => (3, None),
        };
        let key = key.map_or(0, |k| u64::from(k.serial) << 32 | u64::from(k.slot));
        kind << KIND_SHIFT | key
    }

    /// Unpacks what [`Op::user_data`] packed.
    pub(super) fn from_user_data(data: u64) -> Op {
        let key = Key::new(data as u32, data >> 32);
        match data >> KIND_SHIFT {
            0 => Op::Accept,
            1 => Op::Recv(key),
            2 => Op::Send(key),
            _ => Op::Cancel,
        }
    }
}

/// One completion, copied out of the queue so that handling it may queue new entries.
#[derive(Debug, Clone, Copy)]
pub(super) struct Completion {
    pub(super) op: Op,
    /// The operation's result: bytes, a descriptor, or a negated `errno`.
    pub(super) result: i32,
    /// `IORING_CQE_F_*`: whether more completions follow, which buffer was used.
    pub(super) flags: u32,
}

impl Completion {
    /// The error, if the result is one.
    pub(super) fn error(&self) -> Option<io::Error> {
        (self.result < 0).then(|| io::Error::from_raw_os_error(-self.result))
    }

    /// Whether the operation goes on (a multishot one that will post again).
    pub(super) fn more(&self) -> bool {
        cqueue::more(self.flags)
    }
}

/// The ring, set up for one thread.
pub(super) struct Ring {
    ring: IoUring,
}

impl Ring {
    /// Sets up a ring for this thread only: `SINGLE_ISSUER` (no locking between submitters) and
    /// `DEFER_TASKRUN` (the kernel finishes operations when this thread enters the ring, instead
    /// of interrupting it whenever one completes). A kernel without them (before 6.1) gets a
    /// plain ring. Never `SQPOLL`: a kernel thread polling the queue would spend a core.
    pub(super) fn new() -> io::Result<Ring> {
        let tuned = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(SQ_ENTRIES);
        let ring = match tuned {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                IoUring::builder().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES)?
            }
            ring => ring?,
        };
        if !ring.params().is_feature_ext_arg() {
            // The wait's timeout needs IORING_FEAT_EXT_ARG (Linux 5.11).
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(Ring { ring })
    }

    /// The ring, for registering resources.
    pub(super) fn uring(&self) -> &IoUring {
        &self.ring
    }

    /// Queues `entry`; if the submission queue is full, first submits what it holds.
    ///
    /// # Safety
    ///
    /// Every buffer and descriptor the entry names must stay valid until its (last) completion
    /// has been taken from the completion queue: the kernel reads or writes them meanwhile.
    pub(super) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller promises the entry's resources outlive the operation.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Submits the queued entries and waits until a completion is ready, or `timeout` passes
    /// (`None`: no limit). The one system call of a turn.
    pub(super) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let done = match timeout {
            None => self.ring.submit_and_wait(1),
            Some(timeout) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match done {
            Ok(_) => Ok(()),
            // The deadline passed, or a signal came: the loop looks at its clocks and waits again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves the ready completions into `into` (which it clears first).
    pub(super) fn completions(&mut self, into: &mut Vec<Completion>) {
        into.clear();
        into.extend(self.ring.completion().map(|cqe| Completion {
            op: Op::from_user_data(cqe.user_data()),
            result: cqe.result(),
            flags: cqe.flags(),
        }));
    }
}

/// Rewords a failed setup as the cause a user can act on, and what to run instead.
pub(super) fn explain(e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::EPERM) => {
            "io_uring is not permitted here: a seccomp filter (the default of Docker and \
             containerd) or the sysctl kernel.io_uring_disabled blocks it"
        }
        Some(libc::ENOSYS) => "this kernel has no io_uring",
        Some(libc::ENOMEM) => {
            "not enough locked memory for the ring: raise RLIMIT_MEMLOCK (ulimit -l)"
        }
        Some(libc::EINVAL) => {
            "this kernel lacks what the server needs (multishot accept and receive, provided \
             buffer rings: Linux 6.0 or later)"
        }
        _ => "unexpected error",
    };
    io::Error::new(
        e.kind(),
        format!("cannot set up io_uring: {e}: {why}; use --runtime epoll instead"),
    )
}

#[cfg(test)]
mod tests {
    use super::{Key, Op};

    #[test]
    fn user_data_round_trips() {
        let keys = [Key::new(0, 0), Key::new(7, 3), Key::new(u32::MAX, (1 << 30) - 1)];
        for key in keys {
            for op in [Op::Accept, Op::Recv(key), Op::Send(key), Op::Cancel] {
                assert_eq!(Op::from_user_data(op.user_data()), op);
            }
        }
    }

    #[test]
    fn serials_wrap_but_tell_neighbours_apart() {
        assert_eq!(Key::new(3, 1 << 30), Key::new(3, 0));
        assert_ne!(Key::new(3, 41), Key::new(3, 42));
        assert_ne!(Op::Recv(Key::new(3, 42)).user_data(), Op::Send(Key::new(3, 42)).user_data());
    }
}
