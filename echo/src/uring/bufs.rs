//! The provided buffer ring: the receive buffers of every connection, lent to the kernel.
//!
//! A receive posted with *buffer select* names no buffer. When bytes arrive, the kernel takes
//! the next buffer of the group from this ring, fills it and says in the completion which one it
//! took (its buffer id). From then on the buffer is the program's: the server transforms the
//! bytes in place, sends them from there, and gives the buffer back ([`Buffers::give_back`]) once
//! the send has completed. So an idle connection holds no buffer at all; memory follows the bytes
//! in flight, not the connections open.
//!
//! The ring is an array of `{addr, len, bid}` entries in memory shared with the kernel; the
//! kernel consumes from its head, the program appends at its tail and publishes the tail with a
//! release store. When it is empty, a receive ends with `ENOBUFS`.
//!
//! # Invariant: who owns a buffer
//!
//! Each buffer id is at any moment in exactly one place: in the ring (the kernel's to fill), or
//! held by one connection, from the completion that names it until that connection gives it
//! back. A connection gives a buffer back only when no operation of its own reads from it (its
//! send has completed). The memory itself is leaked: it lives as long as the process, so no
//! path, not even an error that ends the server, frees it under an operation still running.

use std::alloc::{self, Layout};
use std::io;
use std::slice;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::ring::Ring;

/// The buffer group the server's receives select from.
pub(super) const GROUP: u16 = 0;

/// Bytes per buffer: the most one receive completion carries (the read size of every server).
pub(super) const SIZE: usize = crate::BUF_SIZE;

/// Buffers in the ring (a power of two, at most 32768). Enough for a thousand connections each
/// with a message in flight; the memory is touched only as buffers are first used.
const COUNT: u16 = 1024;

/// The buffer ring and the memory it lends; see the [module docs](self) for who owns what.
pub(super) struct Buffers {
    /// The ring's entries, `COUNT` of them, page-aligned, shared with the kernel. Leaked.
    entries: *mut BufRingEntry,
    /// The buffers, `COUNT * SIZE` bytes, buffer `bid` at `bid * SIZE`. Leaked.
    memory: *mut u8,
    /// The next tail to publish: entries before it are the kernel's.
    tail: u16,
    /// How many buffers were given back so far (a receive that found the ring empty may try
    /// again once this moved).
    given_back: u64,
    /// The ledger of the invariant: `true` while buffer `bid` is in the ring. Checked at every
    /// hand-over, so a buffer given back twice, or used while the kernel may fill it, stops the
    /// server with a panic instead of mixing two connections' bytes.
    in_ring: Vec<bool>,
}

impl Buffers {
    /// Allocates the buffers, puts all of them in a new ring and registers it with `ring`.
    pub(super) fn new(ring: &Ring) -> io::Result<Buffers> {
        let ring_bytes = usize::from(COUNT) * size_of::<BufRingEntry>();
        let layout = Layout::from_size_align(ring_bytes, 4096).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        // Zeroed and leaked: the kernel maps untouched pages lazily.
        let memory = vec![0u8; usize::from(COUNT) * SIZE].leak().as_mut_ptr();
        let in_ring = vec![false; usize::from(COUNT)];
        let mut bufs = Buffers { entries, memory, tail: 0, given_back: 0, in_ring };
        for bid in 0..COUNT {
            bufs.give_back(bid);
        }
        // SAFETY: `entries` points to COUNT entries, page-aligned, which are never freed, so they
        // stay valid as long as the ring that reads them.
        unsafe {
            ring.uring().submitter().register_buf_ring_with_flags(entries as u64, COUNT, GROUP, 0)
        }?;
        Ok(bufs)
    }

    /// Records that a completion handed buffer `bid` over: the caller holds it now.
    pub(super) fn take(&mut self, bid: u16) {
        let in_ring = &mut self.in_ring[usize::from(bid)];
        assert!(*in_ring, "buffer {bid} handed over twice");
        *in_ring = false;
    }

    /// The bytes of buffer `bid`, which the caller holds (see the [module docs](self)).
    pub(super) fn get(&mut self, bid: u16) -> &mut [u8] {
        assert!(!self.in_ring[usize::from(bid)], "buffer {bid} used while in the ring");
        // SAFETY: `bid` is in range (`in_ring` has COUNT entries), so the slice lies within the
        // leaked memory; the caller holds the buffer, so the kernel does not write to it, and
        // `&mut self` keeps this the only reference made here.
        unsafe { slice::from_raw_parts_mut(self.memory.add(usize::from(bid) * SIZE), SIZE) }
    }

    /// How many buffers were given back so far.
    pub(super) fn given_back(&self) -> u64 {
        self.given_back
    }

    /// Puts buffer `bid` back in the ring for the kernel to fill. The caller must hold it and
    /// have no operation reading from it.
    pub(super) fn give_back(&mut self, bid: u16) {
        let in_ring = &mut self.in_ring[usize::from(bid)];
        assert!(!*in_ring, "buffer {bid} given back twice");
        *in_ring = true;
        let index = usize::from(self.tail & (COUNT - 1));
        // SAFETY: `index` < COUNT, so the entry lies within the ring. The kernel reads only the
        // entries before the published tail, and this one is at it, so it is ours to write. The
        // setters write its address, length and id, never the tail that the first entry's last
        // field doubles as (the kernel may read that at any time).
        let entry = unsafe { &mut *self.entries.add(index) };
        entry.set_addr(self.memory as u64 + u64::from(bid) * SIZE as u64);
        entry.set_len(SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.given_back += 1;
        // SAFETY: the tail is a u16 field of the ring's first entry (that is where the kernel
        // reads it), valid and aligned for as long as the ring; the kernel only reads it, and an
        // AtomicU16 has the layout of a u16.
        let tail = unsafe { &*BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        // Release: the kernel must see the entry written before it sees the tail move past it.
        tail.store(self.tail, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    //! These set up a real ring: they need io_uring (Linux 5.19 for buffer rings).
    use super::{Buffers, COUNT, SIZE};
    use crate::uring::ring::Ring;

    fn buffers() -> Buffers {
        Buffers::new(&Ring::new().expect("io_uring")).expect("buffer ring")
    }

    #[test]
    fn every_buffer_starts_in_the_ring_and_comes_back() {
        let mut bufs = buffers();
        assert_eq!(bufs.given_back(), u64::from(COUNT));
        bufs.take(5);
        assert_eq!(bufs.get(5).len(), SIZE);
        bufs.get(5)[0] = 42;
        bufs.give_back(5);
        assert_eq!(bufs.given_back(), u64::from(COUNT) + 1);
    }

    #[test]
    #[should_panic(expected = "given back twice")]
    fn a_buffer_given_back_twice_stops_the_server() {
        let mut bufs = buffers();
        bufs.give_back(3);
    }

    #[test]
    #[should_panic(expected = "used while in the ring")]
    fn a_buffer_in_the_ring_cannot_be_read() {
        let mut bufs = buffers();
        bufs.get(3);
    }

    #[test]
    #[should_panic(expected = "handed over twice")]
    fn a_buffer_is_handed_over_once() {
        let mut bufs = buffers();
        bufs.take(9);
        bufs.take(9);
    }
}
